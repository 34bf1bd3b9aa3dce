"""Several SQL statements in one round trip to PostgreSQL, each with its own snapshot, run in order; and a
transaction whose BEGIN and COMMIT ride in its statements' round trips.

The gate's statements are small; on loopback a round trip (the client's send and parse, the server's wake-up) costs
about as much as the statement itself. PostgreSQL's simple query protocol takes several statements in one message
and answers each one's rows; each statement still takes its own snapshot under READ COMMITTED, so a statement after
a row lock reads what was committed before the lock was granted, exactly as if it had been sent on its own. Django
sends its queries through psycopg's client-side binding cursor, which writes the parameters into the text
(`mogrify`) as it would for one statement.

Each app keeps its own statements (billing.row_store, usage.event_store) and gives them here as `Statement`s; the
one who needs them together (authorization, recording) runs them with `statements_run`, inside its transaction
(outside one, PostgreSQL would run a message's statements as one implicit transaction).

`transaction_in_round_trips` is `transaction.atomic()` for a block whose last statements go through `statements_run`:
COMMIT is sent with the ones run with `commit=True`, one round trip fewer. (BEGIN goes with the first statement of
every transaction: core.postgresql.)

A `Statement(..., prepare=True)` is planned once per connection instead of on every run: the simple query protocol
cannot carry a protocol-level prepared statement, so its SQL is sent once as `PREPARE` (in the round trip of its
first run) and from then on as `EXECUTE name(values)`. Planning the gate's statements cost PostgreSQL more than
running them (docs/PERFORMANCE.md). A value whose type PostgreSQL would otherwise infer from the statement's context
is declared by a cast (a Decimal is `numeric`, an int `int8`, a datetime `timestamptz`), so `%s > 0` with 0.5 stays
0.5; text and NULL are left to the context, as their literals are today. `GATE_PREPARED_STATEMENTS = False` turns
it off (behind a pooler in transaction mode, which cannot keep a session's prepared statements).
"""

from __future__ import annotations

import hashlib
import re
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from psycopg import pq

from core.postgresql.base import begin_defer

_FOLD = "tokenledger_transaction_in_round_trips"  # the open block's _Fold, on the connection it runs on


@dataclass(frozen=True)
class Statement:
    sql: str
    params: Sequence[Any] = ()
    # planned once per connection: for a statement of a fixed shape run on every call, whose text values take their
    # type from where they stand (a column, a comparison), as an untyped literal would
    prepare: bool = False


PREPARED_MAX = 100  # statements prepared per connection; beyond it a statement runs as plain text
_PLACEHOLDER = re.compile(r"%s|%%|%")
_NULL = "NULL"  # a None is written into the prepared SQL as it is into the text: an untyped NULL


class _Prepared:
    """The statements prepared on one PostgreSQL connection. After a failed round trip it is unknown which of the
    PREPAREs sent in it ran, so the next round trip starts with DEALLOCATE ALL."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.unsure = False


# by psycopg connection: a connection Django opens again starts with none prepared
_prepared: weakref.WeakKeyDictionary[Any, _Prepared] = weakref.WeakKeyDictionary()


def _cast(value: Any) -> str:
    """The cast a parameter gets in a prepared statement: its type as its literal would have it ("" for text and
    arrays, which take their type from the statement as their literals do; a None is not a parameter but NULL in
    the SQL); TypeError for another type, whose statement then runs as text."""
    if value is None:
        return _NULL
    if isinstance(value, str):
        return ""
    if isinstance(value, bool):
        return "::boolean"
    if isinstance(value, int):
        return "::int8"
    if isinstance(value, Decimal):
        return "::numeric"
    if isinstance(value, datetime):
        return "::timestamptz" if value.tzinfo is not None else "::timestamp"
    if isinstance(value, date):
        return "::date"
    if isinstance(value, uuid.UUID):
        return "::uuid"
    if isinstance(value, list | tuple):
        return ""  # an array literal takes its element type from the statement, as it does today
    raise TypeError


_named: dict[tuple[str, tuple[str, ...]], tuple[str, str] | None] = {}  # (SQL, casts) -> (name, SQL to prepare)


def _named_sql(statement: Statement) -> tuple[str, str] | None:
    """The prepared statement's name and SQL (`_prepared_sql`), worked out once per SQL and parameter types."""
    try:
        casts = tuple(_cast(value) for value in statement.params)
    except TypeError:
        return None
    key = (statement.sql, casts)
    if key in _named:
        return _named[key]
    if len(_named) >= 10 * PREPARED_MAX:
        _named.clear()
    sql = _prepared_sql(statement.sql, casts)
    named = None if sql is None else ("tl_" + hashlib.blake2b(sql.encode(), digest_size=8).hexdigest(), sql)
    _named[key] = named
    return named


def _prepared_sql(text: str, casts: tuple[str, ...]) -> str | None:
    """The SQL with $1, $2, ... for its parameters, each with its cast (NULL for a None); None when it has other
    placeholders than %s or not one per parameter."""
    each = iter(casts)
    numbers = iter(range(1, len(casts) + 1))

    def placeholder(match: re.Match[str]) -> str:
        if match.group() == "%%":
            return "%"
        if match.group() == "%":
            raise ValueError
        cast = next(each)
        return _NULL if cast == _NULL else f"${next(numbers)}{cast}"

    try:
        sql = _PLACEHOLDER.sub(placeholder, text)
    except (StopIteration, ValueError):
        return None
    if next(each, None) is not None:  # fewer placeholders than parameters
        return None
    return sql


def _prepared_statements(client: Any, statements: Sequence[Statement]) -> tuple[list[str], list[str]]:
    """The PREPAREs this round trip must send first and the text of each statement: EXECUTE for a prepared one,
    its SQL with the values written in for the rest."""
    state = _prepared.setdefault(client.connection, _Prepared()) if settings.GATE_PREPARED_STATEMENTS else None
    preamble: list[str] = []
    if state is not None and state.unsure:
        preamble.append("DEALLOCATE ALL")
        state.names.clear()
        state.unsure = False
    texts = []
    for statement in statements:
        named = _named_sql(statement) if state is not None and statement.prepare else None
        if named is None or state is None:
            texts.append(client.mogrify(statement.sql, statement.params))
            continue
        name, sql = named
        if name not in state.names:
            if len(state.names) >= PREPARED_MAX:
                texts.append(client.mogrify(statement.sql, statement.params))
                continue
            preamble.append(f"PREPARE {name} AS {sql}")
            state.names.add(name)
        texts.append(_execute_text(client, name, statement.params))
    return preamble, texts


def _execute_text(client: Any, name: str, params: Sequence[Any]) -> str:
    """`EXECUTE name(values)`. A number, time, date, boolean, uuid or ASCII string (an enum member's value among
    them), and an array of numbers, dates and such strings, is written here as text (its declared type, from the
    PREPARE, reads it; a string's quotes are doubled); what `_literal` leaves (other text, other arrays) is quoted by
    psycopg, which then parses the whole EXECUTE for its placeholders. psycopg's quoting of every value was an eighth
    of a recorded event's CPU."""
    plain_strings = client.connection.info.parameter_status("standard_conforming_strings") == "on"
    arguments: list[str | None] = []
    quoted: list[Any] = []
    for value in params:
        if value is None:
            continue  # written into the prepared SQL as NULL
        literal = _literal(value, plain_strings=plain_strings)
        arguments.append(literal)
        if literal is None:
            quoted.append(value)
    if not quoted:
        written = ", ".join(literal for literal in arguments if literal is not None)
        return f"EXECUTE {name}({written})" if written else f"EXECUTE {name}"
    # psycopg reads placeholders in the text: a percent sign in a string written here is doubled
    template = ", ".join("%s" if literal is None else literal.replace("%", "%%") for literal in arguments)
    return client.mogrify(f"EXECUTE {name}({template})", quoted)


def _literal(value: Any, *, plain_strings: bool) -> str | None:
    """The value's text for a parameter of the type `_cast` declared for it (or, for an array or a string, its
    statement), or None for psycopg to quote: a string that is not ASCII or holds NUL (psycopg refuses that one) or
    when the server reads backslashes in strings (`plain_strings` off), an array holding anything but ints, finite
    Decimals, dates and such strings, a subclass of one of these types (but a str enum member, written as its
    value), a Decimal that is not a finite number."""
    kind = type(value)
    if kind is str:
        text = _ascii_text(value, plain_strings=plain_strings)
        return None if text is None else "'" + text.replace("'", "''") + "'"
    if kind is int:
        return str(value)
    if kind is Decimal:
        return f"'{value}'" if value.is_finite() else None
    if kind is datetime or kind is date:
        return f"'{value.isoformat()}'"
    if kind is bool:
        return "true" if value else "false"
    if kind is uuid.UUID:
        return f"'{value}'"
    if kind is list:
        elements: list[str] = []
        for element in value:
            text = _array_element(element, plain_strings=plain_strings)
            if text is None:
                return None
            elements.append(text)
        return "'{" + ",".join(elements).replace("'", "''") + "}'"
    if _str_enum(value):
        return _literal(str.__str__(value), plain_strings=plain_strings)
    return None


def _str_enum(value: Any) -> bool:
    """A str that is also an Enum member (Django's TextChoices, StrEnum): psycopg dumps its text, as str comes before
    Enum in its class's MRO."""
    return isinstance(value, str) and isinstance(value, Enum)


def _ascii_text(value: str, *, plain_strings: bool) -> str | None:
    """The string, when it may be written as it is: ASCII without NUL, on a server that reads strings as written."""
    return value if plain_strings and value.isascii() and "\x00" not in value else None


def _array_element(value: Any, *, plain_strings: bool) -> str | None:
    """An array element's text inside the array's braces: an int, a finite Decimal or a date as it is, an ASCII
    string in double quotes with its backslashes and double quotes escaped; None for anything else."""
    kind = type(value)
    if kind is int or kind is date or (kind is Decimal and value.is_finite()):
        return str(value)
    if kind is str:
        text = _ascii_text(value, plain_strings=plain_strings)
        return None if text is None else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if _str_enum(value):
        return _array_element(str.__str__(value), plain_strings=plain_strings)
    return None


def _prepared_unsure(client: Any) -> None:
    state = _prepared.get(client.connection)
    if state is not None:
        state.unsure = True


class _Fold:
    """A transaction_in_round_trips block that may send its COMMIT with its statements: open, or committed."""

    def __init__(self) -> None:
        self.committed = False


def _foldable() -> bool:
    """The block's own atomic is the outermost one, on PostgreSQL with client-side binding."""
    return (
        connection.vendor == "postgresql"
        and len(connection.atomic_blocks) == 1
        and not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding")
    )


@contextmanager
def transaction_in_round_trips() -> Iterator[None]:
    """`transaction.atomic()`, whose COMMIT goes in the round trip of `statements_run(..., commit=True)` (or alone,
    as Django sends it, when the block ends before one). Its BEGIN goes with its first statement, as every
    transaction's does on PostgreSQL (core.postgresql).

    - Folded only when the block is the outermost transaction, on PostgreSQL (as the gate runs, outside a request's
      own transaction); anywhere else (SQLite, inside an atomic block such as a test's, server-side binding)
      `commit=True` is ignored and the block commits when it ends, as `transaction.atomic()` does.
    - After `commit=True` the transaction is over: a statement run after it in the block opens a new transaction,
      which the block commits when it ends; an exception after it rolls back only that one. `on_commit`
      callbacks run when the block ends, after both.
    - Blocks do not nest (a second one inside raises RuntimeError).
    """
    if getattr(connection, _FOLD, None) is not None:
        raise RuntimeError("transaction_in_round_trips blocks do not nest: the outer block owns the transaction")
    with transaction.atomic():
        if not _foldable():
            yield
            return
        setattr(connection, _FOLD, _Fold())
        try:
            yield
        finally:
            setattr(connection, _FOLD, None)


def statements_run(*statements: Statement, commit: bool = False) -> list[list[tuple[Any, ...]]]:
    """Each statement's rows (an empty list for one that answers none), in order. PostgreSQL only.

    In a transaction_in_round_trips block `commit=True` sends COMMIT after the statements, in their round trip
    (elsewhere, or inside an atomic block opened within that block, `commit` is ignored: the transaction commits
    when it ends)."""
    fold: _Fold | None = getattr(connection, _FOLD, None)
    commit = commit and fold is not None and not fold.committed and len(connection.atomic_blocks) == 1
    with connection.cursor() as cursor:
        client = cursor.cursor
        if not hasattr(client, "mogrify"):  # server-side binding: one statement per round trip
            results = []
            for statement in statements:
                cursor.execute(statement.sql, statement.params)
                results.append(_rows(client))
            return results
        preamble, texts = _prepared_statements(client, statements)
        tail = ["COMMIT"] if commit else []
        try:
            cursor.execute(";\n".join([*preamble, *texts, *tail]))
        except Exception:
            _prepared_unsure(client)
            raise
        results = [_rows(client)]
        while client.nextset():
            results.append(_rows(client))
    if commit:
        assert fold is not None
        fold.committed = True
        # Django still holds its atomic block open: a statement run in it from now on opens a new transaction
        begin_defer(client.connection)
    return results[len(preamble) : len(results) - len(tail)]


def _rows(client: Any) -> list[tuple[Any, ...]]:
    # the result's status, not cursor.description, which would build a column object for each of its columns
    result = client.pgresult
    if result is None or result.status != pq.ExecStatus.TUPLES_OK:
        return []
    rows: list[tuple[Any, ...]] = client.fetchall()
    return rows
