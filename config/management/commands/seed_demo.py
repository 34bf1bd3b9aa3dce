"""Seed the demo data `make run` shows: an admin user, the seed catalog with the bundled list prices, a demo account.

Idempotent: a second run keeps the data and the credentials written to var/demo-credentials.json the first time.
"""

from __future__ import annotations

import json
import os
import secrets
from io import StringIO
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

ADMIN_USERNAME = "admin"
DEMO_OWNER = "owner@demo.example"


def _credentials_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-credentials.json"


class Command(BaseCommand):
    help = "Create the demo admin user and demo data; prints and saves the credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--announce", action="store_true", help="print the credentials for a person to read")

    def handle(self, *args: object, announce: bool = False, **options: object) -> None:
        path = _credentials_path()
        credentials: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        with transaction.atomic():
            credentials.update(self._seed(credentials))
        path.write_text(json.dumps(credentials, indent=2) + "\n")
        path.chmod(0o600)
        if not announce:
            self.stdout.write(json.dumps(credentials))
            return
        port = os.environ.get("PORT", "8000")
        lines = [
            "",
            "TokenLedger demo",
            f"  dashboard and API  http://127.0.0.1:{port}/",
            f"  console            http://127.0.0.1:{port}/admin/  "
            f"user {credentials['admin_username']}  password {credentials['admin_password']}",
        ]
        if credentials.get("api_key"):
            lines.append(f"  demo API key       {credentials['api_key']}")
        if credentials.get("demo_owner"):
            lines.append(
                f"  dashboard sign-in  user {credentials['demo_owner']}  password {credentials['demo_owner_password']}"
            )
        lines += [f"  (saved in {path})", ""]
        self.stdout.write("\n".join(lines))

    def _seed(self, credentials: dict[str, Any]) -> dict[str, Any]:
        user_model = get_user_model()
        password = credentials.get("admin_password") or secrets.token_urlsafe(12)
        admin, created = user_model.objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"}
        )
        if created or not admin.check_password(password):
            admin.set_password(password)
            admin.save(update_fields=["password"])
        call_command("seed_catalog", stdout=StringIO())
        # today's models at their public list prices, beside the seed: a model the seed has keeps the seed's price
        call_command("import_model_prices", "--bundled", stdout=StringIO())
        seeded = {"admin_username": ADMIN_USERNAME, "admin_password": password}
        return seeded | self._seed_demo_account(credentials)

    def _seed_demo_account(self, credentials: dict[str, Any]) -> dict[str, Any]:
        """A demo shop on the `jive` credit plan with 50,000 credits, an owner who can sign in, and an API key."""
        from billing.models import Account
        from billing.services.accounts import account_create

        if credentials.get("account_id") and Account.objects.filter(pk=credentials["account_id"]).exists():
            return {}
        password = credentials.get("demo_owner_password") or secrets.token_urlsafe(12)
        account, api_key = account_create(
            name="Demo Shop",
            plan_code="jive",
            owner_email=DEMO_OWNER,
            owner_password=password,
            credits="50000",
            display_currency="ZAR",
        )
        return {"account_id": account.pk, "api_key": api_key, "demo_owner": DEMO_OWNER, "demo_owner_password": password}
