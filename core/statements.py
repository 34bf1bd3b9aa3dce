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

`transaction_in_round_trips` is `transaction.atomic()` for a block whose first statements and last go through
`statements_run`: BEGIN is sent with the first, COMMIT with the one run with `commit=True`, two round trips fewer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from psycopg import pq

_FOLD = "tokenledger_transaction_in_round_trips"  # the open block's _Fold, on the connection it runs on
_IDLE = pq.TransactionStatus.IDLE


@dataclass(frozen=True)
class Statement:
    sql: str
    params: Sequence[Any] = ()


class _Fold:
    """Where a transaction_in_round_trips block stands: BEGIN not sent yet, the transaction open, or committed."""

    PENDING, OPEN, COMMITTED = "pending", "open", "committed"

    def __init__(self) -> None:
        self.state = self.PENDING


def _foldable() -> bool:
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and connection.get_autocommit()
        and not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding")
    )


@contextmanager
def transaction_in_round_trips() -> Iterator[None]:
    """A transaction like `transaction.atomic()`, but BEGIN goes in the round trip of the block's first statement
    and COMMIT in that of `statements_run(..., commit=True)` (or alone when the block ends before one).

    - Folded only on PostgreSQL outside any transaction (a request's own, as the gate runs); anywhere else (SQLite,
      inside an atomic block such as a test's, server-side binding) the block is `transaction.atomic()`.
    - A statement that does not go through `statements_run` first (an ORM query) sends BEGIN alone before it: the
      block is one transaction whatever runs in it.
    - After `commit=True` the transaction is over: what runs afterwards in the block runs in autocommit, which is
      only right for reads.
    - Blocks do not nest (a second one inside raises RuntimeError).
    - An exception rolls the transaction back. Inside the block, Django believes it runs in autocommit, so neither
      `transaction.on_commit` (it would run at once) nor a nested `transaction.atomic()` (psycopg refuses to leave
      autocommit inside an open transaction) may be used.
    """
    if getattr(connection, _FOLD, None) is not None:
        raise RuntimeError("transaction_in_round_trips blocks do not nest: the outer block owns the transaction")
    if not _foldable():
        with transaction.atomic():
            yield
        return
    fold = _Fold()
    setattr(connection, _FOLD, fold)
    try:
        with connection.execute_wrapper(_begin_before(fold)):
            yield
    except BaseException:
        _rollback_if_open()
        raise
    else:
        if fold.state == _Fold.OPEN:
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")
    finally:
        setattr(connection, _FOLD, None)


def _begin_before(fold: _Fold) -> Callable[..., Any]:
    """An execute wrapper: a statement run before the block's first statements_run sends BEGIN first."""

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if fold.state == _Fold.PENDING:
            fold.state = _Fold.OPEN
            context["cursor"].cursor.execute("BEGIN")
        return execute(sql, params, many, context)

    return wrapper


def _rollback_if_open() -> None:
    client = connection.connection
    if client is None or client.info.transaction_status == _IDLE:
        return
    try:
        client.execute("ROLLBACK")
    except Exception:  # the connection is broken: Django discards it at the end of the request
        connection.errors_occurred = True


def statements_run(*statements: Statement, commit: bool = False) -> list[list[tuple[Any, ...]]]:
    """Each statement's rows (an empty list for one that answers none), in order. PostgreSQL only.

    In a transaction_in_round_trips block the first call sends BEGIN with its statements, and `commit=True` sends
    COMMIT after them (elsewhere `commit` is ignored: the caller's transaction commits when it ends)."""
    fold: _Fold | None = getattr(connection, _FOLD, None)
    head: list[Statement] = []
    tail: list[Statement] = []
    if fold is not None:
        if fold.state == _Fold.PENDING:
            head, fold.state = [Statement("BEGIN")], _Fold.OPEN
        if commit and fold.state == _Fold.OPEN:
            tail, fold.state = [Statement("COMMIT")], _Fold.COMMITTED
    with connection.cursor() as cursor:
        client = cursor.cursor
        if not hasattr(client, "mogrify"):  # server-side binding: one statement per round trip
            results = []
            for statement in statements:
                cursor.execute(statement.sql, statement.params)
                results.append(_rows(client))
            return results
        cursor.execute(";\n".join(client.mogrify(s.sql, s.params) for s in (*head, *statements, *tail)))
        results = [_rows(client)]
        while client.nextset():
            results.append(_rows(client))
    return results[len(head) : len(results) - len(tail)]


def _rows(client: Any) -> list[tuple[Any, ...]]:
    # the result's status, not cursor.description, which would build a column object for each of its columns
    result = client.pgresult
    if result is None or result.status != pq.ExecStatus.TUPLES_OK:
        return []
    rows: list[tuple[Any, ...]] = client.fetchall()
    return rows
