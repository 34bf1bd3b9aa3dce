"""The usage history: filters, keyset pages (next / previous, never a count) and the CSV download."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard.selectors import Cursor
from tests.dashboard.conftest import NOW, spread
from usage.models import UsageEvent

pytestmark = pytest.mark.usefixtures("frozen")


def rows_of(page: str) -> list[str]:
    """The request ids in the table, in order."""
    return re.findall(r'<td data-label="Request" class="mono" title="([^"]+)"', page)


def link(page: str, rel: str) -> str | None:
    found = re.search(rf'rel="{rel}" href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


def follow(client, page: str, rel: str) -> str:
    href = link(page, rel)
    assert href is not None, f"no {rel} link"
    return client.get("/usage/" + href).content.decode()


@pytest.fixture
def history(recorded):
    """120 chat events on gpt-4o-mini over 6 days, and 9 summaries on claude-3-5-haiku."""
    recorded(spread([0, 1, 2, 3, 4, 5], per_day=20))
    recorded(spread([1, 2, 3], per_day=3, model="claude-3-5-haiku", operation="summarize"), prefix="sum")


def test_pages_of_fifty_newest_first_with_next_and_previous(owner_client, history):
    first = owner_client.get("/usage/").content.decode()
    ids = rows_of(first)
    assert len(ids) == 50
    newest = UsageEvent.objects.order_by("-occurred_at", "-id").values_list("request_id", flat=True)
    assert ids == list(newest[:50])
    assert link(first, "prev") is None and 'aria-disabled="true">← Newer' in first
    second = follow(owner_client, first, "next")
    assert rows_of(second) == list(newest[50:100])
    third = follow(owner_client, second, "next")
    assert rows_of(third) == list(newest[100:129]) and link(third, "next") is None
    back = follow(owner_client, third, "prev")
    assert rows_of(back) == list(newest[50:100])
    back_to_first = follow(owner_client, back, "prev")
    assert rows_of(back_to_first) == list(newest[:50]) and link(back_to_first, "prev") is None


def test_paging_never_counts_the_events(owner_client, history):
    with CaptureQueriesContext(connection) as queries:
        owner_client.get("/usage/?after=" + Cursor(NOW, 10**9).encode())
    event_queries = [q["sql"] for q in queries.captured_queries if "usage_usageevent" in q["sql"]]
    assert len(event_queries) == 1
    assert "COUNT(" not in event_queries[0].upper() and "LIMIT 51" in event_queries[0].upper()


def test_filter_by_model_operation_and_dates(owner_client, history):
    by_model = rows_of(owner_client.get("/usage/?model=claude-3-5-haiku").content.decode())
    assert len(by_model) == 9 and all(r.startswith("sum-") for r in by_model)
    by_operation = rows_of(owner_client.get("/usage/?operation=summarize").content.decode())
    assert sorted(by_operation) == sorted(by_model)
    day = (NOW - timedelta(days=2)).date().isoformat()
    one_day = rows_of(owner_client.get(f"/usage/?start={day}&end={day}").content.decode())
    assert len(one_day) == 23
    assert all(UsageEvent.objects.get(request_id=r).occurred_at.date().isoformat() == day for r in one_day)
    both = rows_of(owner_client.get(f"/usage/?start={day}&end={day}&model=claude-3-5-haiku").content.decode())
    assert len(both) == 3


def test_filters_are_offered_from_what_the_account_used(owner_client, history):
    page = owner_client.get("/usage/").content.decode()
    assert '<option value="claude-3-5-haiku">' in page and '<option value="gpt-4o-mini">' in page
    assert '<option value="summarize">' in page and "qwen-3-32b" not in page
    assert '<label for="id_start">From</label>' in page and '<label for="id_model">Model</label>' in page


def test_bad_filters_are_explained(owner_client, history):
    response = owner_client.get("/usage/?start=2026-11-10&end=2026-11-01")
    assert response.status_code == 400 and "must be on or after From" in response.content.decode()
    assert owner_client.get("/usage/?model=not-a-model").status_code == 400
    assert owner_client.get("/usage/?start=2024-01-01&end=2026-11-01").status_code == 400  # over a year


def test_a_garbled_cursor_starts_from_the_newest(owner_client, history):
    assert len(rows_of(owner_client.get("/usage/?after=nonsense~x").content.decode())) == 50
    assert Cursor.decode("2026-11-21T10:00:00 00:00~5") == Cursor(
        datetime.fromisoformat("2026-11-21T10:00:00+00:00"), 5
    )


def test_csv_download_follows_the_filters(owner_client, history):
    response = owner_client.get("/usage/export.csv?model=claude-3-5-haiku&start=2026-11-01&end=2026-11-21")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'attachment; filename="usage-' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 9 and {r["model_id"] for r in rows} == {"claude-3-5-haiku"}
    assert rows == sorted(rows, key=lambda r: r["occurred_at"])  # oldest first, like the API's export
    assert "E" not in rows[0]["credits"] and rows[0]["operation_type"] == "summarize"
    everything = owner_client.get("/usage/export.csv")
    assert len(list(csv.DictReader(io.StringIO(b"".join(everything.streaming_content).decode())))) == 129


def test_the_page_links_to_the_csv_with_the_same_filters(owner_client, history):
    page = owner_client.get("/usage/?model=claude-3-5-haiku&start=2026-11-01&end=2026-11-21").content.decode()
    found = re.search(r'href="(/usage/export\.csv\?[^"]+)"', page)
    assert found is not None
    href = html.unescape(found.group(1))
    assert "model=claude-3-5-haiku" in href and "start=2026-11-01" in href and "end=2026-11-21" in href
