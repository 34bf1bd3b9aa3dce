"""Seed the demo `make run` shows: an admin user, the seed catalog with the bundled list prices, and the business of
config/demo (plans with a margin, customers with 60 days of usage, closed periods with invoices, a reconciliation run,
rejected events waiting for replay).

Idempotent: a second run changes nothing (every part is found by its natural key first) and keeps the credentials
written to var/demo-credentials.json the first time.
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
from django.utils import timezone

from config.demo import customers
from config.demo.plans import demo_plans_seed
from config.demo.reconciliation import reconciliation_seed

ADMIN_USERNAME = "admin"


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
        demo_plans_seed()
        now = timezone.now()
        owner_password = credentials.get("demo_owner_password") or customers.new_password()
        seeded = {"admin_username": ADMIN_USERNAME, "admin_password": password}
        seeded |= customers.customers_seed(now=now, main_password=owner_password)
        reconciliation_seed(start=customers.demo_start(now), now=now)
        return seeded
