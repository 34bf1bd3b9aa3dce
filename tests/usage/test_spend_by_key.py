"""Spend by API key and by end user: each event recorded with an account key keeps that key, and the stats and the
CSV export show spend per key (by its prefix, never the secret) and per end user."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from rest_framework.test import APIClient

from billing.services.api_keys import api_key_issue
from billing.services.server_keys import server_key_issue
from tests.factories import EventFactory
from usage.event_store import COPY_FROM_ROWS
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db
needs_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")


def _post(client: APIClient, events: list[dict]) -> dict:
    response = client.post("/api/usage/events", {"events": events}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["rejected"] == 0, response.json()
    return response.json()


def _stats(client: APIClient) -> dict:
    response = client.get("/api/usage/stats")
    assert response.status_code == 200, response.content
    return response.json()


def _keys_of(account, request_ids: list[str]) -> set[str | None]:
    events = UsageEvent.objects.filter(account=account, request_id__in=request_ids)
    return set(events.values_list("api_key__prefix", flat=True))


def test_events_keep_the_account_key_that_sent_them_and_stats_split_spend_by_key(jive_account, api_client_for):
    second, second_raw = api_key_issue(account=jive_account, name="batch jobs")
    first_prefix = jive_account.api_key.split("_")[1]
    _post(api_client_for(jive_account), [EventFactory.build(user="alice"), EventFactory.build(user="bob")])
    _post(api_client_for(second_raw), [EventFactory.build(user="alice", input_tokens=5000)])

    stats = _stats(api_client_for(jive_account))

    by_key = stats["by_api_key"]
    assert set(by_key) == {first_prefix, second.prefix}
    assert by_key[first_prefix]["events"] == 2
    assert by_key[second.prefix]["events"] == 1
    assert by_key[second.prefix]["input_tokens"] == 5000
    assert second_raw not in str(stats)  # named by prefix, never by the secret
    by_user = stats["by_user"]
    assert by_user["alice"]["events"] == 2 and by_user["bob"]["events"] == 1
    assert by_user["alice"]["input_tokens"] == 6000
    total = sum(float(b["charge_usd"]) for b in by_key.values())
    assert total == pytest.approx(float(stats["total_cost_usd"]))
    for bucket in [*by_key.values(), *by_user.values()]:
        assert "." not in bucket["charge_usd"] or not bucket["charge_usd"].endswith("0")  # no trailing zeros


def test_events_without_a_user_or_a_key_fall_in_unspecified(jive_account, api_client_for):
    jive_account.external_id = "shop-1"
    jive_account.save(update_fields=["external_id"])
    _, server_raw = server_key_issue(name="backend", scopes="usage,read")
    server = APIClient()
    server.credentials(HTTP_AUTHORIZATION=f"Bearer {server_raw}", HTTP_TOKENLEDGER_CUSTOMER="shop-1")
    _post(server, [EventFactory.build(request_id="from-server")])

    stats = _stats(api_client_for(jive_account))

    assert _keys_of(jive_account, ["from-server"]) == {None}
    assert stats["by_api_key"]["unspecified"]["events"] == 1
    assert stats["by_user"]["unspecified"]["events"] == 1


def test_a_deleted_key_leaves_its_events_recorded_without_it(jive_account, api_client_for):
    key, raw = api_key_issue(account=jive_account, name="temporary")
    _post(api_client_for(raw), [EventFactory.build(request_id="by-temporary")])
    key.delete()

    assert _keys_of(jive_account, ["by-temporary"]) == {None}
    assert _stats(api_client_for(jive_account))["by_api_key"]["unspecified"]["events"] == 1


def test_the_export_names_the_key_by_its_prefix(jive_account, api_client_for):
    client = api_client_for(jive_account)
    _post(client, [EventFactory.build(request_id="exported")])

    response = client.get("/api/usage/export.csv")

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["api_key"] for r in rows] == [jive_account.api_key.split("_")[1]]


@pytest.mark.parametrize("query", ["from=yesterday", "to=2026-02-30", "from=2026-12-01&to=2026-01-01"])
def test_bad_ranges_answer_400_not_500(jive_account, api_client_for, query):
    response = api_client_for(jive_account).get(f"/api/usage/stats?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


@pytest.mark.parametrize("size", [1, COPY_FROM_ROWS + 5], ids=["insert", "copy"])
def test_every_insert_path_stores_the_key(jive_account, api_client_for, size):
    """On PostgreSQL a small batch is one INSERT, a large one goes through COPY; on SQLite the ORM inserts it."""
    ids = [f"path-{size}-{n}" for n in range(size)]
    _post(api_client_for(jive_account), [EventFactory.build(request_id=i) for i in ids])

    assert _keys_of(jive_account, ids) == {jive_account.api_key.split("_")[1]}


@needs_postgresql
def test_postgresql_raw_insert_stores_the_key(jive_account, api_client_for):
    assert connection.vendor == "postgresql"
    ids = [f"pg-{n}" for n in range(COPY_FROM_ROWS + 1)]
    client = api_client_for(jive_account)
    _post(client, [EventFactory.build(request_id=ids[0])])
    _post(client, [EventFactory.build(request_id=i) for i in ids[1:]])

    stats = _stats(client)
    assert stats["by_api_key"] == {jive_account.api_key.split("_")[1]: stats["by_model"]["qwen-3-32b"]}
