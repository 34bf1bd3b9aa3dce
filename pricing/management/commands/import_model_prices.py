import json
from datetime import UTC
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from pricing.errors import CatalogValidationError
from pricing.litellm_import import PriceMapError, price_map_parse
from pricing.price_import import litellm_prices_import


class Command(BaseCommand):
    help = (
        "Import a LiteLLM price map (model_prices_and_context_window.json): create missing models and add a price "
        "version where a price changed. Prints {created, updated, unchanged, skipped, problems}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path to the LiteLLM JSON price map")
        parser.add_argument(
            "--effective-from", help="ISO 8601 time the new prices apply from (default now; no offset means UTC)"
        )
        parser.add_argument("--reason", help='why the prices change (default "LiteLLM import <file name>")')

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            price_map = price_map_parse(text)
        except PriceMapError as exc:
            raise CommandError(f"{path}: {exc}") from None

        effective_from = None
        if options["effective_from"]:
            try:
                effective_from = parse_datetime(options["effective_from"])
            except ValueError:
                effective_from = None
            if effective_from is None:
                raise CommandError(f"--effective-from: not an ISO 8601 date and time: {options['effective_from']!r}")
            if effective_from.tzinfo is None:
                effective_from = effective_from.replace(tzinfo=UTC)
        reason = options["reason"] if options["reason"] is not None else f"LiteLLM import {path.name}"

        try:
            result = litellm_prices_import(price_map=price_map, effective_from=effective_from, reason=reason)
        except CatalogValidationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            json.dumps(
                {
                    "created": result.created,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                    "skipped": result.skipped,
                    "problems": [{"key": p.key, "reason": p.reason} for p in result.problems],
                }
            )
        )
