import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from billing.errors import BillingError
from billing.models import Account
from billing.services.wallet import wallet_grant


class Command(BaseCommand):
    help = 'Grant credits to an account (a manual ledger entry); prints {"balance"}.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, type=int, help="account id")
        parser.add_argument("--credits", required=True, help="credits to add, > 0")
        parser.add_argument("--reason", required=True)
        parser.add_argument("--expires-at", help="ISO 8601 time after which the unspent part expires")

    def handle(
        self, *args: object, account: int, credits: str, reason: str, expires_at: str | None, **options: object
    ) -> None:
        found = Account.objects.filter(pk=account).first()
        if found is None:
            raise CommandError(f"no account with id {account}")
        expiry = None
        if expires_at:
            expiry = parse_datetime(expires_at)
            if expiry is None or expiry.tzinfo is None:
                raise CommandError("--expires-at must be an ISO 8601 time with a zone, e.g. 2026-12-31T00:00:00Z")
        try:
            posting = wallet_grant(account=found, credits=credits, reason=reason, expires_at=expiry)
        except BillingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps({"balance": str(posting.balance), "entry_id": posting.entry.pk}))
