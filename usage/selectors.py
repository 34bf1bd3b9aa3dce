"""Reads of usage: stats from the daily rollups, the event export streamed from the events."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from io import StringIO

from django.db.models import Sum

from billing.models import Account
from usage.models import DailyUsage, UsageEvent


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
            bucket.cost_usd += Decimal(row["cost_usd"])
            bucket.charge_usd += Decimal(row["charge_usd"])
            bucket.credits += Decimal(row["credits"])
    return stats


EXPORT_COLUMNS = [
    "request_id", "occurred_at", "received_at", "model_id", "model_requested", "operation_type", "user",
    "conversation_id", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "images",
    "multiplier", "cost_usd", "charge_usd", "credits", "plan_code", "over_limit", "reconciliation_status",
    "actual_cost_usd",
]  # fmt: skip


def usage_export_rows(*, account: Account, start: datetime, end: datetime) -> Iterator[str]:
    """The account's events between two times as CSV lines, read in chunks so memory stays flat."""
    buffer = StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    events = (
        UsageEvent.objects.filter(account=account, occurred_at__gte=start, occurred_at__lt=end)
        .order_by("occurred_at", "id")
        .values_list(*EXPORT_COLUMNS)
    )
    for count, row in enumerate(events.iterator(chunk_size=2000), start=1):
        writer.writerow(
            [value.isoformat() if isinstance(value, datetime) else ("" if value is None else value) for value in row]
        )
        if count % 500 == 0:
            yield flush()
    yield flush()
