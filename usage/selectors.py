"""Reads of usage: stats from the daily rollups, the event export streamed from the events."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import chain, islice
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from billing.models import Account
from core.csv_export import csv_lines
from pricing.money import precise
from usage.models import DailyUsage, Reservation, UsageEvent


def reservation_by_request(*, account: Account, request_id: str) -> Reservation | None:
    """The account's reservation of this request id, if it authorized one."""
    return Reservation.objects.filter(account=account, request_id=request_id).first()


@dataclass
class Bucket:
    events: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    charge_usd: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class UsageStats:
    start: date
    end: date
    total: Bucket = field(default_factory=Bucket)
    by_operation_type: dict[str, Bucket] = field(default_factory=dict)
    by_model: dict[str, Bucket] = field(default_factory=dict)
    by_day: dict[str, Bucket] = field(default_factory=dict)
    by_user: dict[str, Bucket] = field(default_factory=dict)
    by_api_key: dict[str, Bucket] = field(default_factory=dict)


def usage_stats(*, account: Account, start: date, end: date) -> UsageStats:
    """Totals and breakdowns between two UTC days inclusive, read from the daily rollups (never the events)."""
    stats = UsageStats(start=start, end=end)
    rows = (
        DailyUsage.objects.filter(account=account, day__gte=start, day__lte=end)
        .values("day", "model_id", "operation_type")
        .annotate(
            events=Sum("events"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost_usd=Sum("cost_usd"),
            charge_usd=Sum("charge_usd"),
            credits=Sum("credits"),
        )
        .order_by("day")
    )
    for row in rows:
        targets = (
            stats.total,
            stats.by_operation_type.setdefault(row["operation_type"] or "unspecified", Bucket()),
            stats.by_model.setdefault(row["model_id"], Bucket()),
            stats.by_day.setdefault(row["day"].isoformat(), Bucket()),
        )
        for bucket in targets:
            bucket.events += row["events"]
            bucket.input_tokens += row["input_tokens"]
            bucket.output_tokens += row["output_tokens"]
            bucket.cost_usd += precise(Decimal(row["cost_usd"]))
            bucket.charge_usd += precise(Decimal(row["charge_usd"]))
            bucket.credits += precise(Decimal(row["credits"]))
    stats.by_user = _events_spend_by(account=account, start=start, end=end, group="user")
    stats.by_api_key = _events_spend_by(account=account, start=start, end=end, group="api_key__prefix")
    return stats


BREAKDOWN_LIMIT = 100  # by_user and by_api_key name the largest spenders only: an account may have many end users
UNSPECIFIED = "unspecified"  # the bucket of events sent without a user, or without an account key


def _events_spend_by(*, account: Account, start: date, end: date, group: str) -> dict[str, Bucket]:
    """Spend between two UTC days per value of `group`, most charged first: the rollups have neither the end user
    nor the key, so this reads the events (the range is at most 366 days, on the account's time index)."""
    first = datetime.combine(start, time.min, tzinfo=UTC)
    after = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    rows = (
        UsageEvent.objects.filter(account=account, occurred_at__gte=first, occurred_at__lt=after)
        .values(group)
        .annotate(
            events=Count("id"), input_sum=Sum("input_tokens"), output_sum=Sum("output_tokens"),
            cost_sum=Sum("cost_usd"), charge_sum=Sum("charge_usd"), credits_sum=Sum("credits"),
        )
        .order_by("-charge_sum", group)[:BREAKDOWN_LIMIT]
    )  # fmt: skip
    return {
        row[group] or UNSPECIFIED: Bucket(
            events=row["events"], input_tokens=row["input_sum"] or 0, output_tokens=row["output_sum"] or 0,
            cost_usd=precise(Decimal(row["cost_sum"] or 0)), charge_usd=precise(Decimal(row["charge_sum"] or 0)),
            credits=precise(Decimal(row["credits_sum"] or 0)),
        )
        for row in rows
    }  # fmt: skip


EXPORT_COLUMNS = [
    "request_id", "occurred_at", "received_at", "model_id", "model_requested", "operation_type", "user",
    "conversation_id", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "images",
    "multiplier", "cost_usd", "charge_usd", "credits", "plan_code", "over_limit", "reconciliation_status",
    "actual_cost_usd", "api_key",
]  # fmt: skip
# what each column reads: the key's prefix (never its secret), the other columns as named
EXPORT_FIELDS = ["api_key__prefix" if column == "api_key" else column for column in EXPORT_COLUMNS]


def _csv_row(row: tuple[object, ...]) -> list[object]:
    return [precise(value) if isinstance(value, Decimal) else value for value in row]


def events_csv_rows(events: QuerySet[UsageEvent]) -> Iterator[str]:
    """Events as CSV text (EXPORT_COLUMNS), oldest first, read in chunks so memory stays flat, and written through
    core.csv_export like every CSV download (an end user id such as "=HYPERLINK(...)" arrives as text); yielded
    500 lines at a time."""
    rows = events.order_by("occurred_at", "id").values_list(*EXPORT_FIELDS)
    lines = csv_lines(chain([EXPORT_COLUMNS], (_csv_row(row) for row in rows.iterator(chunk_size=2000))))
    while chunk := "".join(islice(lines, 500)):
        yield chunk


def usage_export_rows(*, account: Account, start: datetime, end: datetime) -> Iterator[str]:
    """The account's events between two times as CSV lines."""
    return events_csv_rows(UsageEvent.objects.filter(account=account, occurred_at__gte=start, occurred_at__lt=end))


# --- admin reports: read from the daily rollups, never by scanning the events --------------------------------------


@dataclass
class BillingReportRow(Bucket):
    """One line of the monthly billing report: an operation type, or an account (with its plan today)."""

    label: str = ""
    account_id: int | None = None
    plan_code: str = ""


def _report_sums(queryset: Any) -> Any:
    return queryset.annotate(
        events_sum=Sum("events"),
        input_sum=Sum("input_tokens"),
        output_sum=Sum("output_tokens"),
        cost_sum=Sum("cost_usd"),
        charge_sum=Sum("charge_usd"),
        credits_sum=Sum("credits"),
    )


def _money(value: Any) -> Decimal:
    """A summed amount at the stored precision (SQLite sums decimals in binary floating point)."""
    return precise(Decimal(value)) if value is not None else Decimal(0)


def _report_row(row: dict[str, Any], **identity: Any) -> BillingReportRow:
    return BillingReportRow(
        events=row["events_sum"] or 0,
        input_tokens=row["input_sum"] or 0,
        output_tokens=row["output_sum"] or 0,
        cost_usd=_money(row["cost_sum"]),
        charge_usd=_money(row["charge_sum"]),
        credits=_money(row["credits_sum"]),
        **identity,
    )


def billing_report_total(*, rows: list[BillingReportRow]) -> BillingReportRow:
    """The sum of a report's rows (each row is unrounded, so the total is exact)."""
    total = BillingReportRow(label="Total")
    for row in rows:
        total.events += row.events
        total.input_tokens += row.input_tokens
        total.output_tokens += row.output_tokens
        total.cost_usd += row.cost_usd
        total.charge_usd += row.charge_usd
        total.credits += row.credits
    return total


def billing_report_by_operation(*, start: date, end: date) -> list[BillingReportRow]:
    """Every account's usage between two UTC days inclusive, per operation type, highest charge first."""
    rows = _report_sums(
        DailyUsage.objects.filter(day__gte=start, day__lte=end).values("operation_type").order_by("operation_type")
    )
    report = [_report_row(row, label=row["operation_type"] or "unspecified") for row in rows]
    return sorted(report, key=lambda r: (-r.charge_usd, r.label))


def billing_report_by_account(*, start: date, end: date) -> list[BillingReportRow]:
    """Usage between two UTC days inclusive, per account (with the plan it is on now), highest charge first."""
    rows = _report_sums(
        DailyUsage.objects.filter(day__gte=start, day__lte=end)
        .values("account_id", "account__name", "account__subscription__plan__code")
        .order_by("account_id")
    )
    report = [
        _report_row(
            row,
            label=row["account__name"],
            account_id=row["account_id"],
            plan_code=row["account__subscription__plan__code"] or "",
        )
        for row in rows
    ]
    return sorted(report, key=lambda r: (-r.charge_usd, r.account_id or 0))


def month_projection(*, so_far: Decimal, days_elapsed: int, days_in_month: int) -> Decimal:
    """Month-end estimate at the month's pace so far: so_far / days elapsed x days in the month (Decimal only)."""
    if days_elapsed <= 0:
        return Decimal(0)
    return precise(so_far * days_in_month / days_elapsed)


@dataclass(frozen=True)
class AccountMonthProjection:
    """An account's UTC day and calendar month so far, and where the month ends at this pace."""

    account_id: int
    account_name: str
    plan_code: str
    today_events: int
    today_cost_usd: Decimal
    today_charge_usd: Decimal
    month_events: int
    month_cost_usd: Decimal
    month_charge_usd: Decimal
    month_credits: Decimal
    days_elapsed: int
    days_in_month: int
    projected_cost_usd: Decimal
    projected_charge_usd: Decimal
    projected_credits: Decimal


def _month_of(today: date) -> tuple[date, int, int]:
    """The month's first day, the days elapsed (today counts as elapsed) and the days in the month."""
    return today.replace(day=1), today.day, calendar.monthrange(today.year, today.month)[1]


def _projections(*, today: date, account_ids: list[int] | None = None) -> list[AccountMonthProjection]:
    start, elapsed, days = _month_of(today)
    rollups = DailyUsage.objects.filter(day__gte=start, day__lte=today)
    if account_ids is not None:
        rollups = rollups.filter(account_id__in=account_ids)
    rows = (
        rollups.values("account_id", "account__name", "account__subscription__plan__code")
        .order_by("account_id")
        .annotate(
            events_sum=Sum("events"),
            cost_sum=Sum("cost_usd"),
            charge_sum=Sum("charge_usd"),
            credits_sum=Sum("credits"),
            today_events=Sum("events", filter=Q(day=today)),
            today_cost=Sum("cost_usd", filter=Q(day=today)),
            today_charge=Sum("charge_usd", filter=Q(day=today)),
        )
    )
    result = []
    for row in rows:
        cost, charge, credits = _money(row["cost_sum"]), _money(row["charge_sum"]), _money(row["credits_sum"])
        result.append(
            AccountMonthProjection(
                account_id=row["account_id"],
                account_name=row["account__name"],
                plan_code=row["account__subscription__plan__code"] or "",
                today_events=row["today_events"] or 0,
                today_cost_usd=_money(row["today_cost"]),
                today_charge_usd=_money(row["today_charge"]),
                month_events=row["events_sum"] or 0,
                month_cost_usd=cost,
                month_charge_usd=charge,
                month_credits=credits,
                days_elapsed=elapsed,
                days_in_month=days,
                projected_cost_usd=month_projection(so_far=cost, days_elapsed=elapsed, days_in_month=days),
                projected_charge_usd=month_projection(so_far=charge, days_elapsed=elapsed, days_in_month=days),
                projected_credits=month_projection(so_far=credits, days_elapsed=elapsed, days_in_month=days),
            )
        )
    return result


def accounts_projected_month(*, today: date, limit: int | None = None) -> list[AccountMonthProjection]:
    """Every account with usage this calendar month (UTC), with its projected month-end, highest projection first."""
    rows = sorted(_projections(today=today), key=lambda p: (-p.projected_charge_usd, p.account_id))
    return rows if limit is None else rows[:limit]


def accounts_high_cost_today(*, today: date, limit: int = 50) -> list[AccountMonthProjection]:
    """The accounts charged the most on a UTC day, highest first, with their month so far and projected month."""
    top = (
        DailyUsage.objects.filter(day=today)
        .values("account_id")
        .annotate(charge=Sum("charge_usd"))
        .filter(charge__gt=0)
        .order_by("-charge", "account_id")[:limit]
    )
    ids = [row["account_id"] for row in top]
    rows = _projections(today=today, account_ids=ids)
    return sorted(rows, key=lambda p: (-p.today_charge_usd, p.account_id))
