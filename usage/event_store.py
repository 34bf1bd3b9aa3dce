"""Usage's raw SQL, PostgreSQL only: the statements the gate sends on every authorize and recorded event.

Each replaces several ORM statements and has a PostgreSQL test of its own (tests/usage/test_event_store.py). The
services call these by name when billing.services.locks.raw_sql_enabled() and otherwise run the ORM path, which
decides the same (tests/usage/test_gate_parity.py runs the same scenarios through both).
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection

from billing.models import Subscription, Wallet
from billing.services.wallet import wallet_hold_with
from core.statements import Statement, statements_run
from usage.models import DailyUsage, Reservation, UsageEvent

_RESERVATION_FIELDS = Reservation._meta.concrete_fields
_RESERVATION_COLUMNS = ", ".join(f'r."{f.column}"' for f in _RESERVATION_FIELDS)


@dataclass(frozen=True)
class RequestState:
    """What authorize must know about the request id and the subscription, read under the account's lock."""

    subscription_status: str | None
    past_due_since: datetime | None
    existing: Reservation | None
    recorded: bool


def request_state_statement(*, account_id: int, request_id: str) -> Statement:
    """The subscription's status, the reservation already made for this request id (if any) and whether an event
    with this id is recorded, in one statement, read by `request_state_of`. Sent after the account's lock (in the
    same round trip: billing.services.locks.account_rows_lock_then), so it reads as of after any wait for it."""
    sql = (
        f"SELECT s.status, s.past_due_since, "  # noqa: S608 - names from the models
        f"EXISTS (SELECT 1 FROM {UsageEvent._meta.db_table} e WHERE e.account_id = %s AND e.request_id = %s), "
        f"{_RESERVATION_COLUMNS} FROM (SELECT 1) AS one "
        f"LEFT JOIN {Subscription._meta.db_table} s ON s.account_id = %s "
        f"LEFT JOIN {Reservation._meta.db_table} r ON r.account_id = %s AND r.request_id = %s"
    )
    return Statement(sql, [account_id, request_id, account_id, account_id, request_id], prepare=True)


def request_state_of(rows: list[tuple[Any, ...]]) -> RequestState:
    status, past_due_since, recorded, *reservation = rows[0]
    existing = None
    if reservation[0] is not None:
        existing = Reservation.from_db(DEFAULT_DB_ALIAS, [f.attname for f in _RESERVATION_FIELDS], reservation)
    return RequestState(
        subscription_status=status, past_due_since=past_due_since, existing=existing, recorded=bool(recorded)
    )


_INSERTED_FIELDS = [f for f in _RESERVATION_FIELDS if not f.primary_key]
_INSERTED_ATTNAMES = [f.attname for f in _INSERTED_FIELDS]
_INSERTED_COLUMNS = ", ".join(f'"{f.column}"' for f in _INSERTED_FIELDS)
_RESERVATION_INSERT = (
    f"INSERT INTO {Reservation._meta.db_table} ({_INSERTED_COLUMNS}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_INSERTED_FIELDS))}) "
    "ON CONFLICT (account_id, request_id) DO NOTHING RETURNING id"
)


def reservation_insert(*, reservation: Reservation, wallet: Wallet, held: Decimal, commit: bool = False) -> bool:
    """Insert the reservation unless its request id has one (the unique (account, request_id) constraint decides,
    no savepoint) and, when inserted, hold its credits on the wallet (billing's wallet_hold_with), in one
    statement; True when inserted, with its id set. `commit`: the caller's transaction ends with this statement
    (core.statements.transaction_in_round_trips sends COMMIT in the same round trip)."""
    # text, Decimal and aware datetimes go to PostgreSQL as they are (what get_db_prep_save answers for them)
    values = [getattr(reservation, name) for name in _INSERTED_ATTNAMES]
    statement = wallet_hold_with(
        wallet=wallet, credits=held, insert=Statement(_RESERVATION_INSERT, values, prepare=True)
    )
    (rows,) = statements_run(statement, commit=commit)
    if not rows:
        return False
    reservation.pk = rows[0][0]
    reservation._state.adding = False
    return True


_RESERVATIONS_ACTIVE = (
    f"SELECT request_id, held_credits, estimated_units FROM {Reservation._meta.db_table} "  # noqa: S608 - names from the model
    "WHERE account_id = %s AND status = %s AND request_id = ANY(%s)"
)


def reservations_active_statement(*, account_id: int, request_ids: list[str]) -> Statement:
    """The active reservations of these requests, as (request id, credits held, units authorized), for a caller
    that holds the account's lock: every service that creates, settles, releases or expires a reservation takes
    that lock first (billing.services.locks), so they stay as read until the caller's transaction ends and its
    settle statement answers the same rows. Not locked themselves: a row lock would cost PostgreSQL a write."""
    return Statement(_RESERVATIONS_ACTIVE, [account_id, Reservation.Status.ACTIVE, request_ids], prepare=True)


RollupBucket = tuple[int, date, str, str, int, int, int, Decimal, Decimal, Decimal]


def reservations_settle_and_rollup_statement(
    *, account_id: int, request_ids: list[str], at: datetime, buckets: list[RollupBucket]
) -> Statement:
    """Settle the active reservations of these requests and add the batch to the daily rollups, in one statement;
    its rows are (request id, credits held, units authorized) of each reservation settled.

    `buckets` are (account, day, model, operation, events, input tokens, output tokens, cost, charge, credits),
    in one order for every batch (the rollup rows are locked in that order). They travel as one array per column,
    so the statement's text is the same for every batch and is planned once per connection.
    """
    params: list[Any] = [list(column) for column in zip(*buckets, strict=True)] if buckets else [[]] * 10
    params += [Reservation.Status.SETTLED, at, account_id, Reservation.Status.ACTIVE, request_ids]
    return Statement(_SETTLE_AND_ROLLUP, params, prepare=True)


_ROLLUP_TABLE = DailyUsage._meta.db_table
_SETTLE_AND_ROLLUP = (
    f"WITH rollup AS (INSERT INTO {_ROLLUP_TABLE} (account_id, day, model_id, operation_type, events, "  # noqa: S608 - names from the models
    "input_tokens, output_tokens, cost_usd, charge_usd, credits) "
    "SELECT account_id, day, model_id, operation_type, events, input_tokens, output_tokens, cost_usd, charge_usd, "
    "credits FROM unnest(%s::bigint[], %s::date[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], "
    "%s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[]) WITH ORDINALITY AS bucket(account_id, day, "
    "model_id, operation_type, events, input_tokens, output_tokens, cost_usd, charge_usd, credits, n) ORDER BY n "
    "ON CONFLICT (account_id, day, model_id, operation_type) DO UPDATE SET "
    f"events = {_ROLLUP_TABLE}.events + excluded.events, "
    f"input_tokens = {_ROLLUP_TABLE}.input_tokens + excluded.input_tokens, "
    f"output_tokens = {_ROLLUP_TABLE}.output_tokens + excluded.output_tokens, "
    f"cost_usd = {_ROLLUP_TABLE}.cost_usd + excluded.cost_usd, "
    f"charge_usd = {_ROLLUP_TABLE}.charge_usd + excluded.charge_usd, "
    f"credits = {_ROLLUP_TABLE}.credits + excluded.credits), "
    f"settled AS (UPDATE {Reservation._meta.db_table} SET status = %s, closed_at = %s "
    "WHERE account_id = %s AND status = %s AND request_id = ANY(%s) "
    "RETURNING request_id, held_credits, estimated_units) SELECT * FROM settled"
)


_EVENT_FIELDS = [f for f in UsageEvent._meta.concrete_fields if not f.primary_key]
EVENT_ATTNAMES = [f.attname for f in _EVENT_FIELDS]
_EVENT_QUOTED = [f'"{f.column}"' for f in _EVENT_FIELDS]
_EVENT_COLUMNS = ", ".join(_EVENT_QUOTED)
_REQUEST_ID = EVENT_ATTNAMES.index("request_id")
# JSON columns travel as text, encoded the way the model field encodes them (one encoder each, made once)
_JSON_ENCODE = {
    i: (getattr(f, "encoder", None) or json.JSONEncoder)().encode
    for i, f in enumerate(_EVENT_FIELDS)
    if f.get_internal_type() == "JSONField"
}
# DjangoJSONEncoder writes a Decimal as its str(): such a column's dict of amounts is written directly
_DECIMAL_JSON = {
    i for i, f in enumerate(_EVENT_FIELDS) if i in _JSON_ENCODE and getattr(f, "encoder", None) is DjangoJSONEncoder
}
_event_values = operator.attrgetter(*EVENT_ATTNAMES)
COPY_FROM_ROWS = 20  # a batch this large goes through COPY; a smaller one in one INSERT


@functools.cache
def _event_casts() -> list[str]:
    """Each column's PostgreSQL type without its length or scale: "varchar(128)" is "varchar", "numeric(28, 12)"
    "numeric"."""
    return [re.sub(r"\(.*\)$", "", f.cast_db_type(connection) or "") for f in _EVENT_FIELDS]


def _amounts_text(value: Any) -> str | None:
    """A dict of text keys to Decimals (a rating's breakdown) as the text DjangoJSONEncoder writes for it, without
    its call per value; None for any other value. Keys are escaped as the encoder escapes them (ASCII only)."""
    if type(value) is not dict:
        return None
    parts = []
    for key, amount in value.items():
        if type(key) is not str or type(amount) is not Decimal:
            return None
        parts.append(f'{encode_basestring_ascii(key)}: "{amount!s}"')
    return "{" + ", ".join(parts) + "}"


def _event_db_values(row: Any) -> list[Any]:
    values = list(_event_values(row))
    for i, encode in _JSON_ENCODE.items():
        value = values[i]
        if value == {}:
            values[i] = "{}"
        elif value == []:
            values[i] = "[]"
        else:
            text = _amounts_text(value) if i in _DECIMAL_JSON else None
            values[i] = encode(value) if text is None else text
    return values


def events_insert(
    *, rows: Sequence[Any], then: Sequence[Statement] = ()
) -> tuple[dict[str, int], list[list[tuple[Any, ...]]]]:
    """Insert the events (objects carrying UsageEvent's attributes, in request id order), skipping request ids
    their account already has; answer the id of each event inserted now, by request id, and the rows of each of
    `then`, the caller's statements sent in the insert's round trip (core.statements), after it.

    The unique (account, request_id) constraint decides which rows are new: one
    `INSERT ... ON CONFLICT DO NOTHING RETURNING id, request_id`, fed by COPY into a temporary table from
    COPY_FROM_ROWS rows up, names the rows inserted now. Only the columns whose values differ between rows are
    copied (PostgreSQL parses each copied value; a batch shares its account, time, key and most defaults).
    """
    table = UsageEvent._meta.db_table
    conflict = "ON CONFLICT (account_id, request_id) DO NOTHING RETURNING id, request_id"
    if len(rows) < COPY_FROM_ROWS:
        one = "(" + ", ".join(["%s"] * len(EVENT_ATTNAMES)) + ")"
        insert = Statement(
            f"INSERT INTO {table} ({_EVENT_COLUMNS}) VALUES {', '.join([one] * len(rows))} {conflict}",  # noqa: S608 - names from the model
            [value for row in rows for value in _event_db_values(row)],
            prepare=len(rows) == 1,
        )
        return _inserted(insert, then)
    values = [_event_db_values(row) for row in rows]
    # a column holding one value in every row (the batch's account, time, address, key; the columns a batch's
    # events leave at their defaults) is not copied row by row: the INSERT gives that value to each row, cast to
    # the column's type without its length or scale, so the column checks and rounds it as COPY would have
    columns = list(zip(*values, strict=True))
    staged = [i for i, column in enumerate(columns) if i == _REQUEST_ID or column.count(column[0]) != len(column)]
    staged_columns = ", ".join(_EVENT_QUOTED[i] for i in staged)
    casts = _event_casts()
    selected: list[str] = []
    shared: list[Any] = []
    staged_at = set(staged)
    for i, column in enumerate(columns):
        if i in staged_at:
            selected.append(_EVENT_QUOTED[i])
        else:
            selected.append(f"CAST(%s AS {casts[i]})")
            shared.append(column[0])
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE usage_event_stage ON COMMIT DROP AS SELECT {staged_columns} FROM {table} WITH NO DATA"  # noqa: S608 - names from the model
        )
        # COPY goes to psycopg directly: its errors are made Django's, as execute() does
        with (
            connection.wrap_database_errors,
            cursor.cursor.copy(f"COPY usage_event_stage ({staged_columns}) FROM STDIN") as copy,
        ):
            for row_values in zip(*(columns[i] for i in staged), strict=True):
                copy.write_row(row_values)
    # the same order as the rows of a smaller batch: by request id, bytewise (C collation is code point order)
    insert = Statement(
        f"INSERT INTO {table} ({_EVENT_COLUMNS}) SELECT {', '.join(selected)} FROM usage_event_stage "  # noqa: S608 - names from the model
        f'ORDER BY request_id COLLATE "C" {conflict}',
        shared,
    )
    # a second batch in the same transaction makes its own stage
    return _inserted(insert, then, Statement("DROP TABLE usage_event_stage"))


def _inserted(
    insert: Statement, then: Sequence[Statement], *after: Statement
) -> tuple[dict[str, int], list[list[tuple[Any, ...]]]]:
    results = statements_run(insert, *then, *after)
    inserted = {request_id: pk for pk, request_id in results[0]}
    return inserted, results[1 : 1 + len(then)]
