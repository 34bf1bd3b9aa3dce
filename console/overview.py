"""The console's overview: revenue, provider cost and margin for today, this period and the last 12 months, by
day, model, plan and customer, the top customers, and how recorded revenue splits into invoiced and unbilled.

The windows (docs/console.md says the same):
- today: events that occurred since 00:00 UTC;
- this period: events of billing periods not invoiced yet (each account's current period: its usage is unbilled);
- the last 12 months: events of billing periods that started on or after the first day of the month eleven months
  before this one (this month and the eleven before it). A period counts whole, so these figures add up exactly
  with the invoices of the same periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.db.models import DecimalField, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncMonth

from billing.models import Account, Invoice, LateUsageAdjustment
from console.figures import Figures, Group, figures_by, figures_of, groups_by_revenue
from usage.models import UsageEvent

TOP = 10
GROWTH_DAYS = 30
_ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=28, decimal_places=12))


class Window(StrEnum):
    TODAY = "today"
    PERIOD = "period"
    YEAR = "12m"

    @property
    def label(self) -> str:
        return {"today": "Today", "period": "This period", "12m": "Last 12 months"}[self.value]


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def year_start(now: datetime) -> datetime:
    """The first day of the month eleven months before `now`'s: the last 12 months are whole calendar months."""
    first = day_start(now).replace(day=1)
    months = first.year * 12 + first.month - 1 - 11
    return first.replace(year=months // 12, month=months % 12 + 1)


def window_events(window: Window, *, now: datetime) -> QuerySet[UsageEvent]:
    events = UsageEvent.objects.all()
    if window is Window.TODAY:
        return events.filter(occurred_at__gte=day_start(now), occurred_at__lte=now)
    if window is Window.PERIOD:
        return events.filter(period__invoice__isnull=True)
    return events.filter(period__start__gte=year_start(now))


# --- the headline -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    window: Window
    figures: Figures


def headline(*, now: datetime) -> list[Headline]:
    return [Headline(window, figures_of(window_events(window, now=now))) for window in Window]


# --- revenue = invoiced + unbilled ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Billed:
    """The last 12 months' revenue split by where it stands in billing. The parts come from invoices and late-usage
    adjustments, not from the events, so `matches` is a real check that the two books agree."""

    revenue: Decimal
    invoiced: Decimal
    late_invoiced: Decimal
    late_unbilled: Decimal
    unbilled: Decimal
    invoices: int

    @property
    def accounted(self) -> Decimal:
        return self.invoiced + self.late_invoiced + self.late_unbilled + self.unbilled

    @property
    def difference(self) -> Decimal:
        return self.revenue - self.accounted

    @property
    def matches(self) -> bool:
        """Equal to the cent: SQLite stores decimals as floating point, so exact equality is PostgreSQL's alone."""
        return abs(self.difference) < Decimal("0.005")


def _sum(rows: QuerySet[Any], field: str) -> Decimal:
    return Decimal(rows.order_by().aggregate(total=Coalesce(Sum(field), _ZERO))["total"])


def billed(*, now: datetime) -> Billed:
    since = year_start(now)
    invoices = Invoice.objects.filter(period__start__gte=since)
    late = LateUsageAdjustment.objects.filter(period__start__gte=since)
    return Billed(
        revenue=figures_of(window_events(Window.YEAR, now=now)).revenue,
        invoiced=_sum(invoices, "charge_usd"),
        late_invoiced=_sum(late.filter(invoice__isnull=False), "charge_usd"),
        late_unbilled=_sum(late.filter(invoice__isnull=True), "charge_usd"),
        unbilled=figures_of(window_events(Window.PERIOD, now=now).filter(period__start__gte=since)).revenue,
        invoices=invoices.count(),
    )


# --- breakdowns ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Breakdown:
    window: Window
    total: Figures
    by_day: list[Group]  # oldest first; by month over the last 12 months
    by_model: list[Group]
    by_plan: list[Group]
    by_customer: list[Group]


def _account_names(ids: list[int]) -> dict[int, str]:
    return {pk: name for pk, name in Account.objects.filter(pk__in=ids).values_list("pk", "name")}


def by_day(events: QuerySet[UsageEvent], window: Window) -> list[Group]:
    if window is Window.YEAR:
        month = events.annotate(bucket=TruncMonth("occurred_at", tzinfo=UTC))
        rows = figures_by(month, key="bucket")
        return [Group(key, f"{key:%Y-%m}", fig) for key, fig in sorted(rows.items(), key=lambda kv: _as_date(kv[0]))]
    day = events.annotate(bucket=TruncDate("occurred_at", tzinfo=UTC))
    rows = figures_by(day, key="bucket")
    return [Group(key, f"{key:%Y-%m-%d}", fig) for key, fig in sorted(rows.items(), key=lambda kv: _as_date(kv[0]))]


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def breakdown(window: Window, *, now: datetime) -> Breakdown:
    events = window_events(window, now=now)
    customers = figures_by(events, key="account_id")
    return Breakdown(
        window=window,
        total=figures_of(events),
        by_day=by_day(events, window),
        by_model=groups_by_revenue(figures_by(events, key="model_id")),
        by_plan=groups_by_revenue(figures_by(events, key="plan_code")),
        by_customer=groups_by_revenue(customers, _account_names(list(customers))),
    )


# --- top customers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Growth:
    account_id: int
    label: str
    recent: Decimal
    before: Decimal

    @property
    def change(self) -> Decimal:
        return self.recent - self.before

    @property
    def change_pct(self) -> Decimal | None:
        if self.before <= 0:
            return None
        return (self.change * 100 / self.before).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class TopCustomers:
    by_charge: list[Group]
    by_margin: list[Group]  # highest margin first
    lowest_margin: list[Group]  # lowest first: negative margins (customers who cost more than they pay) on top
    by_growth: list[Growth]


def growth(*, now: datetime, limit: int = TOP) -> list[Growth]:
    """Revenue of the last 30 days against the 30 before, per customer, largest increase first."""
    recent_start = now - timedelta(days=GROWTH_DAYS)
    before_start = recent_start - timedelta(days=GROWTH_DAYS)
    events = UsageEvent.objects.filter(occurred_at__lte=now)
    recent = figures_by(events.filter(occurred_at__gt=recent_start), key="account_id")
    before = figures_by(events.filter(occurred_at__gt=before_start, occurred_at__lte=recent_start), key="account_id")
    ids = sorted(set(recent) | set(before))
    names = _account_names(ids)
    rows = [
        Growth(pk, names.get(pk, f"#{pk}"), recent.get(pk, Figures()).revenue, before.get(pk, Figures()).revenue)
        for pk in ids
    ]
    rows.sort(key=lambda row: (-row.change, row.label))
    return rows[:limit]


def top_customers(board: Breakdown, *, now: datetime, limit: int = TOP) -> TopCustomers:
    customers = board.by_customer
    by_margin = sorted(customers, key=lambda group: (-group.figures.margin, group.label))
    return TopCustomers(
        by_charge=customers[:limit],
        by_margin=by_margin[:limit],
        lowest_margin=list(reversed(by_margin))[:limit],
        by_growth=growth(now=now, limit=limit),
    )
