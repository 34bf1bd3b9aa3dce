import json
from datetime import UTC
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from pricing.errors import CatalogValidationError
from pricing.litellm_import import PriceMap, PriceMapError, bundled_snapshot_read, price_map_parse
from pricing.price_import import PriceImportResult, PriceImportRolledBack, litellm_prices_import


class Command(BaseCommand):
    help = (
        "Import a LiteLLM price map (model_prices_and_context_window.json), or with --bundled the shipped snapshot "
        "of public list prices: create missing models, add a price version where a price changed, add aliases, "
        "and report every entry and field that could not be used. Prints one JSON object."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="path to the LiteLLM JSON price map")
        parser.add_argument(
            "--bundled",
            action="store_true",
            help="load the shipped, dated snapshot of list prices (pricing/data/); prices someone set are kept",
        )
        parser.add_argument(
            "--effective-from", help="ISO 8601 time the new prices apply from (default now; no offset means UTC)"
        )
        parser.add_argument("--reason", help='why the prices change (default "LiteLLM import <file name>")')
        parser.add_argument(
            "--strict", action="store_true", help="fail, writing nothing, if any entry or price field is not used"
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["bundled"] == bool(options["file"]):
            raise CommandError("give either a FILE or --bundled")
        as_of = None
        if options["bundled"]:
            if options["effective_from"] or options["reason"] is not None:
                raise CommandError("--bundled sets its own --effective-from (the snapshot's as_of) and --reason")
            try:
                snapshot = bundled_snapshot_read()
            except PriceMapError as exc:
                raise CommandError(str(exc)) from None
            price_map, as_of = snapshot.price_map, snapshot.as_of
            effective_from, reason, keep = snapshot.effective_from(), snapshot.reason, True
        else:
            price_map = self._read(Path(options["file"]))
            effective_from = self._effective_from(options["effective_from"])
            reason = (
                options["reason"] if options["reason"] is not None else f"LiteLLM import {Path(options['file']).name}"
            )
            keep = False

        try:
            result = litellm_prices_import(
                price_map=price_map,
                effective_from=effective_from,
                reason=reason,
                keep_catalog_prices=keep,
                strict=options["strict"],
                dry_run=options["dry_run"],
            )
        except CatalogValidationError as exc:
            raise CommandError(exc.message) from None
        except PriceImportRolledBack as rolled_back:
            if rolled_back.strict_failed:
                raise CommandError(_strict_message(rolled_back.result)) from None
            result = rolled_back.result
        summary = result.summary()
        if as_of is not None:
            summary = {"as_of": as_of.isoformat(), **summary}
        if options["dry_run"]:
            summary = {"dry_run": True, **summary}
        self.stdout.write(json.dumps(summary))

    def _read(self, path: Path) -> PriceMap:
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            return price_map_parse(text)
        except PriceMapError as exc:
            raise CommandError(f"{path}: {exc}") from None

    def _effective_from(self, value: str | None) -> Any:
        if not value:
            return None
        try:
            effective_from = parse_datetime(value)
        except ValueError:
            effective_from = None
        if effective_from is None:
            raise CommandError(f"--effective-from: not an ISO 8601 date and time: {value!r}")
        if effective_from.tzinfo is None:
            effective_from = effective_from.replace(tzinfo=UTC)
        return effective_from


def _strict_message(result: PriceImportResult) -> str:
    """One line: what --strict refused, by reason, with the first few cases; nothing was written."""
    by_reason = ", ".join(f"{code} {count}" for code, count in result.reasons().items())
    cases = [f"{p.key}: {p.reason}" for p in result.problems[:3]]
    cases += [f"{u.model} {u.field}: {u.reason}" for u in result.unused[: max(0, 3 - len(cases))]]
    return (
        f"--strict: {len(result.problems)} entries refused and {len(result.unused)} price fields not used "
        f"({by_reason}); nothing was imported. First: {'; '.join(cases)}. Run without --strict (or with --dry-run) "
        "for the full report."
    )
