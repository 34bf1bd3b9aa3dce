import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reconciliation.parsers import SOURCES, UnreadableFile
from reconciliation.services.runs import reconciliation_run


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None
    if not value.is_finite() or value < 0:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Reconcile a provider export (or a gateway's per-request log) against TokenLedger's rated costs and print "
        "the run summary as JSON. Exits 0 even with discrepancies; 1 only when the file cannot be read at all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the CSV file or JSON page")
        parser.add_argument("--source", choices=SOURCES, help="the file's source (default: told from its header)")
        parser.add_argument("--tolerance-pct", type=_amount, help="percent of the provider's amount (default 5)")
        parser.add_argument("--tolerance-usd", type=_amount, help="USD floor of the tolerance (default 0.05)")
        parser.add_argument("--dry-run", action="store_true", help="match and report, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise CommandError(f"cannot open {path}: {exc.strerror or exc}") from None
        with handle:
            try:
                result = reconciliation_run(
                    source=options["source"],
                    file=handle,
                    file_name=path.name,
                    tolerance_pct=options["tolerance_pct"],
                    tolerance_usd=options["tolerance_usd"],
                    dry_run=options["dry_run"],
                )
            except UnreadableFile as exc:
                raise CommandError(f"{path.name} cannot be read: {exc}") from None
        if result.same_file_as is not None:
            self.stderr.write(f"note: the same file (SHA-256) was reconciled before, in run #{result.same_file_as.pk}")
        self.stdout.write(json.dumps(result.summary))
