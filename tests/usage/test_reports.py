from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone

pytestmark = pytest.mark.usefixtures("catalog")


def _record(client, events):
    client.post("/api/usage/events", {"events": events}, format="json")


def test_stats_sum_the_rollups(jive_account, api_client_for):
    client = api_client_for(jive_account)
    _record(client, [
        {"request_id": "a", "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500, "operation_type": "chat_message"},
        {"request_id": "b", "model": "gpt-4o-mini", "input_tokens": 2000, "cached_input_tokens": 1000, "output_tokens": 100,
         "operation_type": "summary"},
    ])  # fmt: skip
    body = client.get("/api/usage/stats").json()
    assert body["total_tokens"] == 3600
    assert body["total_cost_usd"] == "0.000435"
    assert body["avg_cost_usd"].startswith("0.0002175")
    assert set(body["by_model"]) == {"qwen-3-32b", "gpt-4o-mini"}
    assert body["by_operation_type"]["summary"]["events"] == 1
    assert list(body["by_day"]) == [timezone.now().date().isoformat()]


@pytest.mark.parametrize("query", ["from=yesterday", "from=2026-11-10&to=2026-11-01", "from=2024-01-01&to=2026-01-01"])
def test_bad_ranges_are_400(jive_account, api_client_for, query):
    response = api_client_for(jive_account).get(f"/api/usage/stats?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_export_streams_the_accounts_events_as_csv(jive_account, api_client_for, catalog):
    from tests.factories import AccountFactory

    other = AccountFactory.create(plan="jive", credits="100")
    _record(
        api_client_for(other), [{"request_id": "theirs", "model": "qwen-3-32b", "input_tokens": 1, "output_tokens": 1}]
    )
    client = api_client_for(jive_account)
    _record(
        client,
        [{"request_id": f"r{n}", "model": "qwen-3-32b", "input_tokens": n, "output_tokens": 1} for n in range(1, 4)],
    )
    response = client.get("/api/usage/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["request_id"] for r in rows] == ["r1", "r2", "r3"]
    assert rows[0]["cost_usd"] == "0.000000200000"


def test_the_export_keeps_a_formula_in_an_end_user_id_as_text(jive_account, api_client_for, catalog):
    """An end user id is whatever the customer's product sends: one that a spreadsheet would run as a formula
    downloads as text (core.csv_export's rule), while amounts stay numbers."""
    client = api_client_for(jive_account)
    _record(client, [{"request_id": "f1", "model": "qwen-3-32b", "input_tokens": 5, "output_tokens": 1,
                      "user": '=HYPERLINK("http://evil.test","x")'}])  # fmt: skip
    body = b"".join(client.get("/api/usage/export.csv").streaming_content).decode()
    row = next(csv.DictReader(io.StringIO(body)))
    assert row["user"] == '\'=HYPERLINK("http://evil.test","x")'
    assert not row["cost_usd"].startswith("'")
