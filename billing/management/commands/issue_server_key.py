import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.errors import BillingError
from billing.services.server_keys import SCOPES, server_key_issue


class Command(BaseCommand):
    help = 'Issue a server key for the reseller\'s backend; prints {"key_id", "server_key"} (shown only this once).'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="what the key is for, e.g. 'production backend'")
        parser.add_argument("--scopes", required=True, help=f"comma-separated: {','.join(SCOPES)}")

    def handle(self, *args: object, name: str, scopes: str, **options: object) -> None:
        try:
            key, raw_key = server_key_issue(name=name, scopes=scopes)
        except BillingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps({"key_id": key.pk, "server_key": raw_key, "scopes": key.scopes}))
