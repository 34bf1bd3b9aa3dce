"""Django's PostgreSQL backend, with each transaction's BEGIN sent in the round trip of its first statement.

Django opens a transaction (`transaction.atomic()`, `ATOMIC_REQUESTS`) by turning psycopg's autocommit off, and
psycopg then sends BEGIN on its own, one round trip before the transaction's first statement. On loopback a round
trip costs about what a small statement does, and every transaction paid it.

Here psycopg stays in autocommit and the transaction is marked as begun; the first statement run in it on this
connection goes out as `BEGIN;\\n<statement>` in one message (PostgreSQL's simple query protocol takes several),
and the cursor answers for the statement (its BEGIN's result is skipped). Whatever cannot carry a second statement
(a server-side binding cursor, `executemany`, COPY, a named cursor, a composed query) sends BEGIN alone first, as
psycopg would. Django declares a named cursor WITH HOLD when psycopg is in autocommit, which it now always is: a
`QuerySet.iterator()` inside a transaction is declared WITH HOLD too, which changes nothing but that what it has
not read yet when the transaction commits is kept until the cursor closes. A transaction that runs no statement sends neither BEGIN nor COMMIT (psycopg commits only
a transaction the server has open). Savepoints, `on_commit` and rollbacks are Django's, unchanged: only when BEGIN
leaves changes.

The health check (`CONN_HEALTH_CHECKS`) costs no round trip while the connection is quiet. Django checks a reused
connection before its first statement in each request (`SELECT 1`, a round trip of its own). A connection the
server ended (a restart, `pg_terminate_backend`, `idle_session_timeout`) has something to read: the server's
goodbye, or the end of the stream. So the socket is polled first, without waiting: nothing to read means nothing
happened since the last answer, and the check is done; anything to read gets Django's `SELECT 1`, which replaces a
dead connection before the request uses it. A peer gone without a word (no FIN) is missed by both alike.

SQLite, and everything above the driver, is untouched. tests/platform/test_postgresql_backend.py shows it.
"""

from __future__ import annotations

import select
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq

_IDLE = pq.TransactionStatus.IDLE

# psycopg connections whose transaction Django opened and the server has not seen yet
_begin_pending: weakref.WeakSet[Any] = weakref.WeakSet()


def _quiet(client: Any) -> bool:
    """Nothing to read on the idle connection, without waiting: the server has not spoken or hung up since its last
    answer. False whenever that cannot be told (then Django's `SELECT 1` decides)."""
    if client.closed or client.info.transaction_status != _IDLE:
        return False
    try:
        fd = client.pgconn.socket
    except psycopg.OperationalError:  # libpq has let go of the connection
        return False
    if hasattr(select, "poll"):  # any descriptor number (select() fails above 1023)
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)  # POLLHUP and POLLERR are always reported
        return not poller.poll(0)
    readable, _, broken = select.select([fd], [], [fd], 0)
    return not readable and not broken


def begin_defer(client: Any) -> None:
    """Open a transaction on the psycopg connection (in autocommit) whose BEGIN goes with its next statement."""
    _begin_pending.add(client)


def _begin_now(client: Any) -> None:
    """Send the pending BEGIN alone, for what cannot carry it in front of its statement."""
    if client in _begin_pending:
        _begin_pending.discard(client)
        client.execute("BEGIN")


class _BeginFirst:
    """A psycopg cursor that sends the pending BEGIN of its connection's transaction before its statement."""

    connection: Any

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        client = self.connection
        if client not in _begin_pending:
            return super().execute(query, params, **kwargs)  # type: ignore[misc]
        if not isinstance(query, str) or not self._folds:
            _begin_now(client)
            return super().execute(query, params, **kwargs)  # type: ignore[misc]
        _begin_pending.discard(client)
        try:
            super().execute("BEGIN;\n" + query, params, **kwargs)  # type: ignore[misc]
        except BaseException:
            if client.info.transaction_status == _IDLE:  # the message failed before its BEGIN ran
                _begin_pending.add(client)
            raise
        self.nextset()  # type: ignore[attr-defined]  # BEGIN's result: the cursor answers for the statement
        return self

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        _begin_now(self.connection)
        return super().executemany(query, params_seq, **kwargs)  # type: ignore[misc]

    @contextmanager
    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:
        _begin_now(self.connection)
        with super().copy(statement, params, **kwargs) as copy:  # type: ignore[misc]
            yield copy

    def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:
        _begin_now(self.connection)
        return super().stream(query, params, **kwargs)  # type: ignore[misc]

    _folds = True  # this cursor's execute takes several statements in one message


class Cursor(_BeginFirst, base.Cursor):
    pass


class ServerBindingCursor(_BeginFirst, base.ServerBindingCursor):
    _folds = False  # the extended protocol carries one statement per message


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        server_side = params["cursor_factory"] is base.ServerBindingCursor
        params["cursor_factory"] = ServerBindingCursor if server_side else Cursor
        return params

    health_check_enabled: bool
    health_check_done: bool

    def close_if_health_check_failed(self) -> None:
        due = self.connection is not None and self.health_check_enabled and not self.health_check_done
        if due and not self.pool and _quiet(self.connection):
            self.health_check_done = True  # nothing to read: nothing happened to it since its last answer
            return
        super().close_if_health_check_failed()

    def _start_transaction_under_autocommit(self) -> None:
        # called by Django's set_autocommit(False, force_begin_transaction_with_broken_autocommit=True), which is
        # how transaction.atomic() opens a transaction; psycopg stays in autocommit
        begin_defer(self.connection)

    def _commit(self) -> Any:
        if self._nothing_open():
            return None  # no statement ran, or one already committed (core.statements): nothing is sent or logged
        return super()._commit()  # type: ignore[misc]  # not in the stubs

    def _rollback(self) -> Any:
        if self._nothing_open():
            return None
        return super()._rollback()  # type: ignore[misc]  # not in the stubs

    def _nothing_open(self) -> bool:
        """Forget a pending BEGIN; True when the server has no transaction open on this connection."""
        client = self.connection
        if client is None:
            return False
        pending = client in _begin_pending
        _begin_pending.discard(client)
        return pending or client.info.transaction_status == _IDLE

    def _close(self) -> Any:
        if self.connection is not None:
            _begin_pending.discard(self.connection)
        return super()._close()  # type: ignore[misc]  # not in the stubs

    def create_cursor(self, name: str | None = None) -> Any:
        if name:  # a named cursor (QuerySet.iterator()) is declared in the transaction: BEGIN alone first
            _begin_now(self.connection)
        return super().create_cursor(name)
