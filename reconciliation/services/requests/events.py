"""Our events a gateway log names: read by request id in one query, and the ids of those this run matched."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

from reconciliation.matching import Tokens
from usage.models import UsageEvent

CHUNK = 5000  # rows matched per query, and events read per fetch
EVENT_FIELDS = (
    "id", "request_id", "account_id", "model_id", "occurred_at", "input_tokens", "cached_input_tokens",
    "output_tokens", "cost_usd", "actual_cost_usd", "reconciliation_status",
)  # fmt: skip
ID_TABLE = "reconciliation_matched_event"


class Event(NamedTuple):  # a tuple: a million are made per million rows
    id: int
    request_id: str
    account_id: int
    model_id: str
    occurred_at: datetime  # UTC; naive when read by the PostgreSQL fast path
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    actual_cost_usd: Decimal | None
    reconciliation_status: str

    @property
    def tokens(self) -> Tokens:
        return Tokens(self.input_tokens, self.cached_input_tokens, self.output_tokens, 1)


def event_rows(request_ids: list[str], low: datetime | None, high: datetime | None) -> Any:
    if connection.vendor != "postgresql":
        events = UsageEvent.objects.filter(request_id__in=request_ids)
        if low is not None and high is not None:
            events = events.filter(occurred_at__gte=low, occurred_at__lte=high)
        return events.order_by().values_list(*EVENT_FIELDS)
    # one array literal instead of thousands of placeholders, and rows as the driver reads them
    meta = UsageEvent._meta
    column_of = {f.attname: str(f.column) for f in meta.concrete_fields}
    quote = connection.ops.quote_name
    # occurred_at as UTC wall time: the driver's own loader reads it far faster than the time-zone-aware one
    columns = [
        f"{quote(column_of[name])} AT TIME ZONE 'UTC'" if name == "occurred_at" else quote(column_of[name])
        for name in EVENT_FIELDS
    ]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(meta.db_table)} "  # noqa: S608 - names from the model, values bound
        f"WHERE {quote(column_of['request_id'])} = ANY(%s)"
    )
    params: list[Any] = [request_ids]
    if low is not None and high is not None:
        sql += f" AND {quote(column_of['occurred_at'])} BETWEEN %s AND %s"
        params += [low, high]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class MatchedIds:
    """The ids of the events this run's rows matched, in a temporary table (dropped at the end)."""

    def __init__(self) -> None:
        self.table = connection.ops.quote_name(ID_TABLE)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.table} (event_id bigint NOT NULL)")
        self.pending: list[int] = []

    def add(self, event_id: int) -> None:
        self.pending.append(event_id)

    def flush(self) -> None:
        ids, self.pending = self.pending, []
        if not ids:
            return
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.copy(f"COPY {self.table} (event_id) FROM STDIN") as copy:
                    copy.write("\n".join(map(str, ids)) + "\n")  # COPY's text format: one integer a line
            else:
                cursor.executemany(f"INSERT INTO {self.table} (event_id) VALUES (%s)", [(i,) for i in ids])  # noqa: S608 - a constant name

    def unmatched(self) -> RawSQL:
        """True for an event no row matched (an expression on the events table)."""
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {self.table}")  # so the planner hashes it instead of scanning it per event
        events = connection.ops.quote_name(UsageEvent._meta.db_table)
        return RawSQL(  # noqa: S611 - constant names, no values
            f"NOT EXISTS (SELECT 1 FROM {self.table} m WHERE m.event_id = {events}.id)",  # noqa: S608 - constant names
            [],
            output_field=BooleanField(),
        )

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")


class SeenEvents:
    """The events this run's rows have matched, one bit per event id in 8 KB blocks of 65,536 ids (a million
    matched events cost about 125 KB), so a request id repeated anywhere in the file is caught, not only within
    its chunk."""

    def __init__(self) -> None:
        self.blocks: dict[int, bytearray] = {}

    def add(self, event_id: int) -> bool:
        """Mark the event; True when an earlier row had marked it already."""
        block = self.blocks.get(event_id >> 16)
        if block is None:
            block = self.blocks[event_id >> 16] = bytearray(8192)
        index, bit = (event_id & 0xFFFF) >> 3, 1 << (event_id & 7)
        if block[index] & bit:
            return True
        block[index] |= bit
        return False


def events_by_request_id(request_ids: list[str], low: datetime | None, high: datetime | None) -> dict[str, list[Event]]:
    """The events with these request ids (within [low, high] when given), by request id: one query."""
    found: dict[str, list[Event]] = defaultdict(list)
    make = Event._make
    for values in event_rows(request_ids, low, high):
        event = make(values)
        found[event.request_id].append(event)
    return found
