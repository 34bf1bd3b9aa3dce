import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.errors import CloseInFuture
from billing.services.periods import close_as_of_check
from config import scheduled
from core.jobs import job_run, parse_as_of


class Command(BaseCommand):
    help = 'Close every period that ended by --as-of (default now); prints {"closed", "invoiced", "skipped"}.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="ISO 8601 time with a zone, e.g. 2026-12-01T03:00:00Z")

    def handle(self, *args: object, as_of: str | None = None, **options: object) -> None:
        try:
            moment = parse_as_of(as_of)
            close_as_of_check(as_of=moment)
        except (ValueError, CloseInFuture) as exc:
            raise CommandError(str(exc)) from None
        counts = job_run("close_periods", moment, scheduled.close_periods)
        if counts.get("skipped") is True:
            raise CommandError("another worker is closing periods right now; try again when it has finished")
        self.stdout.write(json.dumps(counts))
