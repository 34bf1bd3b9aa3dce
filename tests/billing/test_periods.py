from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from billing.errors import PeriodNotEnded
from billing.models import BillingPeriod, Invoice, Subscription
from billing.services.periods import add_months, period_bounds, period_close, period_current, subscription_change_plan
from pricing.models import Plan
from pricing.services import plan_terms_set
from tests.factories import AccountFactory

pytestmark = pytest.mark.usefixtures("catalog")

NOV_10 = datetime(2026, 11, 10, 12, tzinfo=UTC)
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)


def _use(period: BillingPeriod, units: int) -> None:
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=Decimal(units))


@pytest.mark.parametrize(
    ("plan", "units", "cents", "total", "cap_applied"),
    [
        ("starter", 1_500, 508, "5.075", False),  # 5.075 rounds half up once, to 5.08
        ("starter", 400_000, 5_000, "50", True),
        ("professional", 250_000, 3_900, "39", False),
    ],
)
def test_invoice_totals_in_cents_for_the_plan_examples(plan, units, cents, total, cap_applied):
    account = AccountFactory.create(plan=plan, as_of=NOV_10)
    period = period_current(account=account, as_of=NOV_10)
    _use(period, units)
    invoice = period_close(period=period, as_of=DEC_1)
    assert invoice.amount_cents == cents
    assert invoice.total == Decimal(total)
    assert invoice.cap_applied is cap_applied
    assert invoice.status == Invoice.Status.OPEN


def test_closing_twice_gives_one_invoice_and_one_next_period():
    account = AccountFactory.create(plan="starter", as_of=NOV_10)
    period = period_current(account=account, as_of=NOV_10)
    first = period_close(period=period, as_of=DEC_1)
    second = period_close(period=period, as_of=DEC_1)
    assert first.pk == second.pk
    assert Invoice.objects.filter(account=account).count() == 1
    periods = list(BillingPeriod.objects.filter(account=account).order_by("start"))
    assert [(p.start, p.status) for p in periods] == [
        (datetime(2026, 11, 1, tzinfo=UTC), "closed"),
        (DEC_1, "open"),
    ]


def test_a_period_cannot_close_before_it_ends():
    account = AccountFactory.create(plan="starter", as_of=NOV_10)
    period = period_current(account=account, as_of=NOV_10)
    with pytest.raises(PeriodNotEnded):
        period_close(period=period, as_of=datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert not Invoice.objects.exists()


def test_credit_plan_period_closes_to_a_settled_zero_invoice():
    account = AccountFactory.create(plan="jive", as_of=NOV_10)
    invoice = period_close(period=period_current(account=account, as_of=NOV_10), as_of=DEC_1)
    assert (invoice.amount_cents, invoice.status) == (0, Invoice.Status.PAID)


def test_plan_change_waits_for_the_next_period():
    account = AccountFactory.create(plan="starter", as_of=NOV_10)
    period = period_current(account=account, as_of=NOV_10)
    subscription_change_plan(account=account, plan=Plan.objects.get(code="professional"), as_of=NOV_10)
    assert BillingPeriod.objects.get(pk=period.pk).plan.code == "starter"
    period_close(period=period, as_of=DEC_1)
    nxt = BillingPeriod.objects.get(account=account, start=DEC_1)
    assert nxt.plan.code == "professional"
    subscription = Subscription.objects.get(account=account)
    assert subscription.plan.code == "professional" and subscription.pending_plan is None
    assert account.audit_entries.filter(action="plan_changed").count() == 1


def test_plan_change_applied_now_switches_the_open_period():
    account = AccountFactory.create(plan="starter", as_of=NOV_10)
    period = period_current(account=account, as_of=NOV_10)
    subscription_change_plan(account=account, plan=Plan.objects.get(code="professional"), apply_now=True, as_of=NOV_10)
    period.refresh_from_db()
    assert period.plan.code == "professional"
    assert period.included_units == Decimal(10_000)


def test_new_plan_terms_apply_from_the_next_period():
    account = AccountFactory.create(plan="starter", as_of=NOV_10)
    period = period_current(account=account, as_of=NOV_10)
    plan_terms_set(
        plan=Plan.objects.get(code="starter"), unit="messages", fee="6", included_units="1000",
        overage_rate="0.00015", monthly_spend_cap="50", effective_from=datetime(2026, 11, 15, tzinfo=UTC),
        now=datetime(2026, 11, 15, tzinfo=UTC),
    )  # fmt: skip
    assert period_close(period=period, as_of=DEC_1).base_charge == Decimal(5)
    nxt = BillingPeriod.objects.get(account=account, start=DEC_1)
    with time_machine.travel(datetime(2027, 1, 1, tzinfo=UTC)):  # a close happens once the period has ended
        assert period_close(period=nxt, as_of=datetime(2027, 1, 1, tzinfo=UTC)).base_charge == Decimal(6)


def test_calendar_and_anniversary_bounds():
    calendar = Subscription(started_at=datetime(2026, 1, 31, 9, tzinfo=UTC), interval="month")
    assert period_bounds(subscription=calendar, as_of=datetime(2026, 2, 14, tzinfo=UTC)) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    anniversary = Subscription(
        started_at=datetime(2026, 1, 31, 9, tzinfo=UTC), interval="month", period_anchor="anniversary"
    )
    # the 31st clamps to the end of shorter months
    assert period_bounds(subscription=anniversary, as_of=datetime(2026, 2, 14, tzinfo=UTC)) == (
        datetime(2026, 1, 31, 9, tzinfo=UTC),
        datetime(2026, 2, 28, 9, tzinfo=UTC),
    )
    assert period_bounds(subscription=anniversary, as_of=datetime(2026, 3, 30, 10, tzinfo=UTC)) == (
        datetime(2026, 2, 28, 9, tzinfo=UTC),
        datetime(2026, 3, 31, 9, tzinfo=UTC),
    )
    assert add_months(datetime(2026, 12, 15, tzinfo=UTC), 1) == datetime(2027, 1, 15, tzinfo=UTC)
