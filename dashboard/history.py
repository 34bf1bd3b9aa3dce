"""Reads for the dashboard's usage history: the filter, keyset pages of events, spend by end user and the CSV.
The history pages through the events on the (account, occurred_at) index by keyset, never counting them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from billing.models import (
    Account,
)
from core.csv_export import csv_lines
from dashboard.forms import NO_KEY
from dashboard.selectors import BreakdownRow, stored_sum
from usage.models import DailyUsage, UsageEvent
from usage.selectors import EXPORT_COLUMNS, EXPORT_FIELDS


@dataclass(frozen=True)
class UsageFilter:
    start: date | None = None
    end: date | None = None  # inclusive
    model: str = ""
    operation: str = ""
    user: str = ""  # the customer's own end user, exactly as sent on the events
    api_key: str = ""  # the prefix of the account key that sent the events; NO_KEY: none

    def events(self, account: Account) -> QuerySet[UsageEvent]:
        events = UsageEvent.objects.filter(account_id=account.pk)
        if self.start:
            events = events.filter(occurred_at__gte=datetime.combine(self.start, datetime.min.time(), tzinfo=UTC))
        if self.end:
            end = datetime.combine(self.end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            events = events.filter(occurred_at__lt=end)
        if self.model:
            events = events.filter(model_id=self.model)
        if self.operation:
            events = events.filter(operation_type="" if self.operation == "unspecified" else self.operation)
        if self.user:
            events = events.filter(user="" if self.user == NO_USER else self.user)
        if self.api_key == NO_KEY:
            events = events.filter(api_key__isnull=True)
        elif self.api_key:
            events = events.filter(api_key__prefix=self.api_key)
        return events


NO_USER = "(none)"  # the filter value for events sent without a `user`

BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Cursor:
    """A position in the history: the (occurred_at, id) of an event. Written `2026-11-20T10:00:00+00:00~123`."""

    occurred_at: datetime
    event_id: int

    def encode(self) -> str:
        return f"{self.occurred_at.isoformat()}~{self.event_id}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        if not text or "~" not in text:
            return None
        stamp, _, ident = text.rpartition("~")
        try:
            at = datetime.fromisoformat(stamp.replace(" ", "+"))  # a "+" in a query string may arrive as a space
            event_id = int(ident[:20])
            if at.tzinfo is None or not 0 < event_id <= BIGINT_MAX:
                return None
            at = at.astimezone(UTC)  # a year-9999 time with an offset may not exist in UTC
        except (ValueError, OverflowError):
            return None  # a cursor that cannot be a position: the first page
        return cls(occurred_at=at, event_id=event_id)


HISTORY_COLUMNS = (
    "id", "request_id", "occurred_at", "model_id", "operation_type", "input_tokens", "cached_input_tokens",
    "output_tokens", "reasoning_tokens", "images", "credits", "charge_usd", "units", "over_limit", "user",
)  # fmt: skip


@dataclass
class HistoryPage:
    rows: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str = ""  # older events
    previous_cursor: str = ""  # newer events


def usage_history_page(
    *, account: Account, usage_filter: UsageFilter, after: Cursor | None = None, before: Cursor | None = None,
    limit: int = 50,
) -> HistoryPage:  # fmt: skip
    """One page of events, newest first, by keyset on (occurred_at, id): `after` a cursor gives the older events
    that follow it, `before` a cursor the newer ones that precede it. Reads `limit + 1` rows to know whether there
    is more, never a COUNT."""
    events = usage_filter.events(account)
    newer_first = ("-occurred_at", "-id")
    if before is not None:
        rows = list(
            events.filter(
                Q(occurred_at__gt=before.occurred_at) | Q(occurred_at=before.occurred_at, id__gt=before.event_id)
            )
            .order_by("occurred_at", "id")
            .values(*HISTORY_COLUMNS)[: limit + 1]
        )
        more_newer = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        page = HistoryPage(rows=rows)
        if rows:
            page.previous_cursor = _cursor(rows[0]) if more_newer else ""
            page.next_cursor = _cursor(rows[-1])  # the page we came from is older than this one
        return page
    if after is not None:
        events = events.filter(
            Q(occurred_at__lt=after.occurred_at) | Q(occurred_at=after.occurred_at, id__lt=after.event_id)
        )
    rows = list(events.order_by(*newer_first).values(*HISTORY_COLUMNS)[: limit + 1])
    more_older = len(rows) > limit
    rows = rows[:limit]
    page = HistoryPage(rows=rows)
    if rows:
        page.next_cursor = _cursor(rows[-1]) if more_older else ""
        page.previous_cursor = _cursor(rows[0]) if after is not None else ""
    return page


def _cursor(row: dict[str, Any]) -> str:
    return Cursor(occurred_at=row["occurred_at"], event_id=row["id"]).encode()


@dataclass(frozen=True)
class FilterChoices:
    models: list[str]
    operations: list[str]


def usage_filter_choices(*, account: Account, since: date) -> FilterChoices:
    """The models and operations the account used since `since`, from the rollups."""
    buckets = DailyUsage.objects.filter(account_id=account.pk, day__gte=since)
    models = sorted(set(buckets.values_list("model_id", flat=True).distinct()))
    operations = sorted({op or "unspecified" for op in buckets.values_list("operation_type", flat=True).distinct()})
    return FilterChoices(models=models, operations=operations)


def spend_by_user(*, account: Account, usage_filter: UsageFilter, limit: int = 20) -> list[BreakdownRow]:
    """The filtered events' spend per end user, most credits first (the rollups have no user: this reads the events
    of the filter's range, at most a year)."""
    return _spend_by(account=account, usage_filter=usage_filter, group="user", missing=NO_USER, limit=limit)


def spend_by_api_key(*, account: Account, usage_filter: UsageFilter, limit: int = 20) -> list[BreakdownRow]:
    """The filtered events' spend per account key (labelled by its prefix), most credits first; read from the
    events, as spend_by_user."""
    return _spend_by(account=account, usage_filter=usage_filter, group="api_key__prefix", missing=NO_KEY, limit=limit)


def _spend_by(
    *, account: Account, usage_filter: UsageFilter, group: str, missing: str, limit: int
) -> list[BreakdownRow]:
    rows = (
        usage_filter.events(account)
        .values(group)
        .annotate(
            events_sum=Count("id"),
            credits_sum=Sum("credits"),
            charge_sum=Sum("charge_usd"),
            input_sum=Sum("input_tokens"),
            output_sum=Sum("output_tokens"),
        )
        .order_by("-credits_sum", group)[:limit]
    )
    return [
        BreakdownRow(
            label=row[group] or missing,
            events=row["events_sum"],
            credits=stored_sum(row["credits_sum"]),
            charge_usd=stored_sum(row["charge_sum"]),
            tokens=(row["input_sum"] or 0) + (row["output_sum"] or 0),
        )
        for row in rows
    ]


def usage_history_csv(*, account: Account, usage_filter: UsageFilter) -> Iterator[str]:
    """The filtered events as CSV (the columns of /api/usage/export.csv), oldest first, streamed row by row through
    the one CSV writer, so an end user id or request id that starts like a formula arrives as text."""
    rows = usage_filter.events(account).order_by("occurred_at", "id").values_list(*EXPORT_FIELDS)
    return csv_lines(itertools.chain([EXPORT_COLUMNS], rows.iterator(chunk_size=2000)))
