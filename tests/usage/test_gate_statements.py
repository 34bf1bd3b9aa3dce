"""How many statements the gate sends per call, counting BEGIN and COMMIT (issue 19): at most 6 per authorize and
8 per recorded single event, once the caches a running server keeps (the key, the catalog) are warm. Counts, not
timings: bench/gate.py measures the time. Django's captured queries include BEGIN and COMMIT; each is one round
trip, which may carry several statements (core.statements), counted one by one."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import AccountFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

AUTHORIZE_MAX = 6
AUTHORIZE_ROUND_TRIPS = 2  # BEGIN + lock + request state, reservation + hold + COMMIT (core.statements)
RECORD_MAX = 8
RECORD_ROUND_TRIPS = 2  # BEGIN + event + locks + reservations, counters + settle and rollups + ledger entry + COMMIT


def _authorize(client, request_id: str):
    body = {"request_id": request_id, "model": "gpt-4o-mini", "input_tokens": 1000, "max_output_tokens": 500}
    return client.post("/api/usage/authorize", body, format="json")


def _record(client, request_id: str):
    body = {"request_id": request_id, "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 300}
    return client.post("/api/usage/events", body, format="json")


def _sent(queries: CaptureQueriesContext) -> list[str]:
    """The first word of each statement sent, in order (several statements in one round trip are split); an
    EXECUTE of a prepared statement (core.statements) counts as the statement it runs."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement FROM pg_prepared_statements")
        # `statement` is the whole message the PREPARE came in
        prepared = {name: text.split(f"PREPARE {name} AS ", 1)[1] for name, text in cursor.fetchall()}
    sent = []
    for query in queries.captured_queries:
        for part in query["sql"].split(";\n"):
            verb, name = [*part.split(), ""][:2]
            if verb.upper() == "EXECUTE":
                verb = prepared[name.split("(")[0].lower()].split()[0]
            sent.append(verb.upper())
    return sent


@pytest.fixture
def warm_client(catalog, api_client_for):
    client = api_client_for(AccountFactory.create(plan="jive", credits="10000"))
    assert _authorize(client, "warm").json()["allowed"] is True
    assert _record(client, "warm").status_code == 201
    return client


def test_an_authorize_sends_at_most_six_statements_in_two_round_trips_and_no_savepoint(warm_client):
    with CaptureQueriesContext(connection) as queries:
        response = _authorize(warm_client, "call-1")
    assert response.json()["allowed"] is True
    sent = _sent(queries)
    assert sent == ["BEGIN", "SELECT", "SELECT", "WITH", "COMMIT"], queries.captured_queries
    assert len(sent) <= AUTHORIZE_MAX
    assert len(queries.captured_queries) == AUTHORIZE_ROUND_TRIPS, queries.captured_queries
    assert "SAVEPOINT" not in sent


def test_a_recorded_event_sends_at_most_eight_statements_in_two_round_trips_and_no_savepoint(warm_client):
    assert _authorize(warm_client, "call-2").json()["allowed"] is True
    with CaptureQueriesContext(connection) as queries:
        response = _record(warm_client, "call-2")
    assert response.status_code == 201 and response.json()["results"][0]["status"] == "recorded"
    sent = _sent(queries)
    # the period in force, read before the account's first batch, is remembered (and checked under its lock)
    assert sent == ["BEGIN", "INSERT", "SELECT", "SELECT", "UPDATE", "WITH", "WITH", "COMMIT"], queries.captured_queries
    assert len(sent) <= RECORD_MAX
    assert len(queries.captured_queries) == RECORD_ROUND_TRIPS, queries.captured_queries
    assert "SAVEPOINT" not in sent


def test_a_balance_read_is_one_statement(warm_client):
    with CaptureQueriesContext(connection) as queries:
        response = warm_client.get("/api/billing/balance")
    assert response.status_code == 200
    assert len(queries.captured_queries) == 1, queries.captured_queries


def test_the_gate_writes_its_values_itself_and_leaves_psycopg_nothing_to_quote(warm_client, monkeypatch):
    """core.statements writes numbers, times, ASCII strings (enum members among them) and arrays of them into an
    EXECUTE; anything else falls back to psycopg, which then parses the whole text again. A value of a new type on
    the hot path (an enum member passed where a str was) would slow every call without changing an answer."""
    quoted: list[str] = []
    mogrify = psycopg.ClientCursor.mogrify

    def spy(self, query, params=None):
        quoted.append(str(query)[:200])
        return mogrify(self, query, params)

    monkeypatch.setattr(psycopg.ClientCursor, "mogrify", spy)
    assert _authorize(warm_client, "call-3").json()["allowed"] is True
    assert _record(warm_client, "call-3").status_code == 201
    assert quoted == []
