"""Several SQL statements in one round trip to PostgreSQL, each with its own snapshot, run in order.

The gate's statements are small; on loopback a round trip (the client's send and parse, the server's wake-up) costs
about as much as the statement itself. PostgreSQL's simple query protocol takes several statements in one message
and answers each one's rows; each statement still takes its own snapshot under READ COMMITTED, so a statement after
a row lock reads what was committed before the lock was granted, exactly as if it had been sent on its own. Django
sends its queries through psycopg's client-side binding cursor, which writes the parameters into the text
(`mogrify`) as it would for one statement.

Each app keeps its own statements (billing.row_store, usage.event_store) and gives them here as `Statement`s; the
one who needs them together (authorization, recording) runs them with `statements_run`, inside its transaction
(outside one, PostgreSQL would run a message's statements as one implicit transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from psycopg import pq


@dataclass(frozen=True)
class Statement:
    sql: str
    params: Sequence[Any] = ()


def statements_run(*statements: Statement) -> list[list[tuple[Any, ...]]]:
    """Each statement's rows (an empty list for one that answers none), in order. PostgreSQL only."""
    with connection.cursor() as cursor:
        client = cursor.cursor
        if not hasattr(client, "mogrify"):  # server-side binding: one statement per round trip
            results = []
            for statement in statements:
                cursor.execute(statement.sql, statement.params)
                results.append(_rows(client))
            return results
        cursor.execute(";\n".join(client.mogrify(s.sql, s.params) for s in statements))
        results = [_rows(client)]
        while client.nextset():
            results.append(_rows(client))
    return results


def _rows(client: Any) -> list[tuple[Any, ...]]:
    # the result's status, not cursor.description, which would build a column object for each of its columns
    result = client.pgresult
    if result is None or result.status != pq.ExecStatus.TUPLES_OK:
        return []
    rows: list[tuple[Any, ...]] = client.fetchall()
    return rows
