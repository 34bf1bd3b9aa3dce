import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.errors import BillingError
from billing.services.accounts import account_create
from pricing.errors import PricingError


class Command(BaseCommand):
    help = 'Create an account on a plan; prints {"account_id", "api_key"} (the key is shown only this once).'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--plan", required=True, help="plan code, e.g. jive or starter")
        parser.add_argument("--owner-email", help="the owner signs in to the dashboard with this as username")
        parser.add_argument("--owner-password", help="password for a new owner")
        parser.add_argument("--credits", help="opening credits, > 0")
        parser.add_argument("--currency", default="USD", help="display currency (default USD)")

    def handle(self, *args: object, **options: str | None) -> None:
        if options["owner_password"] and not options["owner_email"]:
            raise CommandError("--owner-password needs --owner-email")
        try:
            account, api_key = account_create(
                name=options["name"] or "",
                plan_code=options["plan"] or "",
                owner_email=options["owner_email"],
                owner_password=options["owner_password"],
                credits=options["credits"],
                display_currency=(options["currency"] or "USD").upper(),
            )
        except (BillingError, PricingError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps({"account_id": account.pk, "api_key": api_key}))
