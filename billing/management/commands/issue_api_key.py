import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.models import Account
from billing.services.api_keys import api_key_issue


class Command(BaseCommand):
    help = 'Issue a new API key for an account; prints {"api_key"} (shown only this once).'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, type=int, help="account id")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args: object, account: int, name: str, **options: object) -> None:
        found = Account.objects.filter(pk=account).first()
        if found is None:
            raise CommandError(f"no account with id {account}")
        _, raw_key = api_key_issue(account=found, name=name)
        self.stdout.write(json.dumps({"api_key": raw_key}))
