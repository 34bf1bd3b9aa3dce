"""The console's fixtures: a catalog with a round-priced model and two plans (one sold at a loss), two customers
with usage in a closed, invoiced October and an open November, and staff and non-staff users.

Every expected figure is computed here by hand from the events' token counts and the prices below, never read
back from the database, so a test compares the console with arithmetic it did not do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from billing.models import Account, BillingPeriod
from billing.services.periods import period_close
from pricing import services as catalog
from pricing.selectors import catalog_cache_invalidate
from tests.factories import AccountFactory, UserFactory
from usage.services.recording import usage_record_batch

MODEL = "console-test-model"
INPUT_PRICE, OUTPUT_PRICE = Decimal(1), Decimal(2)  # USD per million tokens
MARKUPS = {"resale": Decimal("1.5"), "loss": Decimal("0.8")}
SINCE = datetime(2026, 1, 1, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
OCTOBER_RECORDED = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
# Saturday 21 November 2026, noon UTC: October is closed and invoiced, November is the open period
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
STAFF_PASSWORD = "staff-password-for-tests"


@dataclass(frozen=True)
class Usage:
    """One event as a test sees it: who, when, tokens in and out; its cost and charge by hand."""

    account: str
    at: datetime
    tokens_in: int
    tokens_out: int
    plan: str

    @property
    def cost(self) -> Decimal:
        return (self.tokens_in * INPUT_PRICE + self.tokens_out * OUTPUT_PRICE) / Decimal(1_000_000)

    @property
    def charge(self) -> Decimal:
        return self.cost * MARKUPS[self.plan]


def _day(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


OCTOBER_USAGE = [
    Usage("Alpha", _day(10, 10), 1_000_000, 500_000, "resale"),
    Usage("Alpha", _day(10, 11), 1_000_000, 500_000, "resale"),
    Usage("Beta", _day(10, 12), 1_000_000, 500_000, "loss"),
]
NOVEMBER_USAGE = [
    Usage("Alpha", _day(11, 5), 2_000_000, 1_000_000, "resale"),
    Usage("Alpha", _day(11, 21, 9), 1_000_000, 0, "resale"),  # today
    Usage("Beta", _day(11, 20), 500_000, 250_000, "loss"),
]


def sums(usage: list[Usage]) -> tuple[Decimal, Decimal]:
    """(revenue, cost) of some usage, by hand."""
    return sum((u.charge for u in usage), Decimal(0)), sum((u.cost for u in usage), Decimal(0))


def usd(amount: Decimal) -> str:
    """An amount as the console shows it: dollars, cents rounded half up, thousands grouped."""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount).quantize(Decimal('0.01')):,}"


@pytest.fixture
def console_catalog(db: Any) -> None:
    with open(os.devnull, "w") as sink:
        call_command("seed_catalog", verbosity=0, stdout=sink)
    model = catalog.model_create(model_id=MODEL, display_name="Console test model", provider="openai")
    catalog.model_price_set(model=model, input_per_million=INPUT_PRICE, output_per_million=OUTPUT_PRICE,
                            effective_from=SINCE, reason="the console tests' round prices")  # fmt: skip
    for code, markup in MARKUPS.items():
        plan = catalog.plan_create(code=code, name=code.title(), family="credits")
        catalog.plan_terms_set(plan=plan, unit="credits", fee="0", included_units=None, overage_rate="0",
                               markup=markup, effective_from=SINCE, reason="the console tests' plans")  # fmt: skip
    catalog_cache_invalidate()


def record(account: Account, usage: list[Usage], *, prefix: str) -> None:
    raw = [
        {"request_id": f"{prefix}-{index}", "model": MODEL, "input_tokens": u.tokens_in,
         "output_tokens": u.tokens_out, "occurred_at": u.at.isoformat()}
        for index, u in enumerate(usage)
    ]  # fmt: skip
    result = usage_record_batch(account=account, raw_events=raw)
    assert result.count("rejected") == 0, [r for r in result.results if r.status == "rejected"]


@pytest.fixture
def customers(console_catalog: None) -> Iterator[dict[str, Account]]:
    """Alpha (resale, markup 1.5) and Beta (loss, markup 0.8): October recorded and closed, November recorded; the
    clock stays at NOW for the test."""
    with time_machine.travel(OCTOBER_RECORDED, tick=False):
        catalog_cache_invalidate()
        accounts = {
            "Alpha": AccountFactory.create(name="Alpha", plan="resale", credits="1000000", as_of=OCTOBER),
            "Beta": AccountFactory.create(name="Beta", plan="loss", credits="1000000", as_of=OCTOBER),
        }
        for name, account in accounts.items():
            record(account, [u for u in OCTOBER_USAGE if u.account == name], prefix="oct")
    with time_machine.travel(NOW, tick=False):
        catalog_cache_invalidate()
        for period in BillingPeriod.objects.filter(end__lte=NOW, status=BillingPeriod.Status.OPEN):
            period_close(period=period, as_of=NOW)
        for name, account in accounts.items():
            record(account, [u for u in NOVEMBER_USAGE if u.account == name], prefix="nov")
        yield accounts
    catalog_cache_invalidate()


@pytest.fixture
def staff(db: Any) -> User:
    return UserFactory.create(username="staff@example.com", is_staff=True, is_superuser=True,
                              password=STAFF_PASSWORD)  # fmt: skip


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def member_client(db: Any) -> Client:
    """Signed in, but not staff."""
    client = Client()
    client.force_login(UserFactory.create(username="member@example.com"))
    return client
