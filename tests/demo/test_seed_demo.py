"""The demo `make run` seeds shows a consistent business: balances are their ledgers, each invoice is its events,
and the customers' charges are the revenue (invoiced plus the open period's unbilled usage); a second seed changes
nothing (issue 21)."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Count, Max, Min

from billing.models import Account, BillingPeriod, Invoice, LedgerEntry, Wallet
from pricing.models import ModelPrice, PlanTerms
from reconciliation.models import ReconciliationRun
from usage.models import RejectedEvent, UsageEvent

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)


@pytest.fixture
def seeded(db, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=io.StringIO())
    return tmp_path


def _sum(queryset, field: str) -> Decimal:
    """Summed in Python: SQLite's SUM of decimals goes through floats."""
    return sum(queryset.values_list(field, flat=True), ZERO)


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Account, UsageEvent, RejectedEvent, BillingPeriod, Invoice, LedgerEntry, ReconciliationRun)
    }


def customers_have_60_days_of_varied_usage() -> None:
    customers = Account.objects.filter(metadata__demo=True)
    assert 3 <= customers.count() <= 5
    for account in customers:
        events = UsageEvent.objects.filter(account=account)
        shape = events.aggregate(first=Min("occurred_at"), last=Max("occurred_at"), n=Count("id"))
        assert (shape["last"] - shape["first"]).days >= 58, account.name
        assert events.values("model_id").distinct().count() >= 2
        assert events.values("user").distinct().count() >= 5
        assert events.values("operation_type").distinct().count() >= 2
    plans = {account.subscription.plan.name for account in customers}
    assert plans == {"Prepaid", "Starter", "Growth", "Scale"}


def plans_mark_up_the_provider_cost_at_sensible_unit_prices() -> None:
    for terms in PlanTerms.objects.filter(
        plan__code__in=["prepaid", "starter_tokens", "growth_tokens", "scale_tokens"]
    ):
        assert Decimal("1.3") <= terms.markup <= Decimal(2), terms
        if terms.unit == "tokens":
            assert Decimal("0.5") <= terms.overage_rate * MILLION <= Decimal(10), terms  # USD per 1M tokens
    # every demo event charges more than it costs
    assert not UsageEvent.objects.filter(charge_usd__lte=0).exists()
    # the seed catalog's own provider prices are unchanged
    assert list(
        ModelPrice.objects.filter(model__model_id="gpt-4o-mini").values_list("input_per_million", flat=True)
    ) == [Decimal("0.15")]


def numbers_are_consistent() -> None:
    for wallet in Wallet.objects.all():
        assert wallet.balance == _sum(LedgerEntry.objects.filter(wallet=wallet), "credits"), wallet
    invoices = Invoice.objects.select_related("period")
    assert invoices.count() >= 4  # every demo customer has at least one closed month
    for invoice in invoices:
        events = UsageEvent.objects.filter(period=invoice.period)
        assert invoice.charge_usd == _sum(events, "charge_usd"), invoice
        assert invoice.api_cost_usd == _sum(events, "cost_usd"), invoice
        assert invoice.input_tokens == _sum(events, "input_tokens")
    charges = _sum(UsageEvent.objects.all(), "charge_usd")
    unbilled = _sum(BillingPeriod.objects.filter(status=BillingPeriod.Status.OPEN), "charge_usd")
    assert charges == _sum(Invoice.objects.all(), "charge_usd") + unbilled
    assert unbilled > 0
    out = io.StringIO()
    call_command("check_integrity", stdout=out)
    assert '"ok": true' in out.getvalue()


def reconciliation_discrepancy_and_events_to_replay() -> None:
    run = ReconciliationRun.objects.get()
    assert run.discrepancy == 3 and run.matched > 50 and run.not_in_export == 1
    reasons = set(run.lines.filter(status="discrepancy").values_list("reason_code", flat=True))
    assert reasons == {"price_drift"}
    waiting = RejectedEvent.objects.filter(status=RejectedEvent.Status.PENDING)
    assert waiting.count() >= 3
    assert set(waiting.values_list("error_code", flat=True)) == {"unknown_model"}


# one seed takes seconds, so one test checks the whole demo with the checks above


def test_the_demo_is_a_consistent_business(seeded):
    customers_have_60_days_of_varied_usage()
    plans_mark_up_the_provider_cost_at_sensible_unit_prices()
    numbers_are_consistent()
    reconciliation_discrepancy_and_events_to_replay()


def test_seeding_twice_changes_nothing(seeded):
    before = _counts()
    credentials = (seeded / "demo-credentials.json").read_text()
    call_command("seed_demo", stdout=io.StringIO())
    assert _counts() == before
    assert (seeded / "demo-credentials.json").read_text() == credentials
