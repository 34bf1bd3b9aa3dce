"""Customer 360: everything about one account on one page, read in a fixed number of queries.

Its figures use the overview's definitions (console.overview): revenue is the events' charge, cost their provider
cost, "this period" the account's events not invoiced yet, the last 12 months its events of periods that started
in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db.models.functions import TruncDate

from billing.models import (
    Account,
    ApiKey,
    AuditEntry,
    BillingPeriod,
    Invoice,
    LedgerEntry,
    Membership,
    Subscription,
    TopUp,
    Wallet,
)
from console.figures import Figures, Group, figures_by, figures_of
from console.overview import Window, window_events
from usage.models import Alert, RejectedEvent, UsageEvent

CHART_DAYS = 30
LIST_LENGTH = 10
LEDGER_LENGTH = 20


@dataclass(frozen=True)
class Customer360:
    account: Account
    wallet: Wallet | None
    subscription: Subscription | None
    period: BillingPeriod | None
    this_period: Figures
    last_12_months: Figures
    daily: list[Group]  # the last 30 days, oldest first, every day (zero where there was no usage)
    invoices: list[Invoice]
    topups: list[TopUp]
    alerts: list[Alert]
    keys: list[ApiKey]
    members: list[Membership]
    rejected: list[RejectedEvent]
    rejected_pending: int
    ledger: list[LedgerEntry]
    audit: list[AuditEntry]


def daily_figures(*, account: Account, now: datetime, days: int = CHART_DAYS) -> list[Group]:
    """The account's figures per UTC day over the last `days` days, today included."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    events = UsageEvent.objects.filter(account=account, occurred_at__gte=start, occurred_at__lte=now)
    per_day: dict[date, Figures] = figures_by(events.annotate(day=TruncDate("occurred_at", tzinfo=UTC)), key="day")
    days_shown = [first + timedelta(days=offset) for offset in range(days)]
    return [Group(day, f"{day:%m-%d}", per_day.get(day, Figures())) for day in days_shown]


def customer_360(*, account: Account, now: datetime) -> Customer360:
    mine = {"account": account}
    rejected = RejectedEvent.objects.filter(**mine, status=RejectedEvent.Status.PENDING)
    return Customer360(
        account=account,
        wallet=Wallet.objects.filter(**mine).first(),
        subscription=Subscription.objects.filter(**mine).select_related("plan", "pending_plan").first(),
        period=BillingPeriod.objects.filter(**mine, status=BillingPeriod.Status.OPEN).order_by("-start").first(),
        this_period=figures_of(window_events(Window.PERIOD, now=now).filter(**mine)),
        last_12_months=figures_of(window_events(Window.YEAR, now=now).filter(**mine)),
        daily=daily_figures(account=account, now=now),
        invoices=list(Invoice.objects.filter(**mine).select_related("period").order_by("-period__start")[:12]),
        topups=list(TopUp.objects.filter(**mine)[:LIST_LENGTH]),
        alerts=list(Alert.objects.filter(**mine).prefetch_related("deliveries")[:LIST_LENGTH]),
        keys=list(ApiKey.objects.filter(**mine).order_by("-created_at")),
        members=list(Membership.objects.filter(**mine).select_related("user").order_by("role", "user__username")),
        rejected=list(rejected[:LIST_LENGTH]),
        rejected_pending=rejected.count(),
        ledger=list(LedgerEntry.objects.filter(wallet__account=account)[:LEDGER_LENGTH]),
        audit=list(AuditEntry.objects.filter(**mine).select_related("actor")[:LIST_LENGTH]),
    )
