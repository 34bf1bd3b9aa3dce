"""Issue 21: spend by end user on the usage page, a filter by end user, and a CSV that guards formula-like cells."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from billing.models import Account
from tests.dashboard.conftest import NOW
from tests.factories import AccountFactory
from usage.models import UsageEvent
from usage.services.recording import usage_record_batch

pytestmark = pytest.mark.usefixtures("frozen")


def _record(account: Account, user: str, count: int, *, prefix: str, at: datetime | None = None) -> None:
    at = at or NOW - timedelta(hours=2)
    raw = [
        {"request_id": f"{prefix}-{n}", "model": "gpt-4o-mini", "input_tokens": 10_000, "output_tokens": 1_000,
         "user": user, "occurred_at": (at - timedelta(minutes=n)).isoformat()}
        for n in range(count)
    ]  # fmt: skip
    assert usage_record_batch(account=account, raw_events=raw).count("rejected") == 0


def _credits(account: Account, user: str) -> Decimal:
    return sum((e.credits for e in UsageEvent.objects.filter(account=account, user=user)), Decimal(0))


def test_the_usage_page_ranks_end_users_by_spend(account: Account, owner_client: Client):
    _record(account, "alice", 3, prefix="a")
    _record(account, "bob", 1, prefix="b")
    _record(account, "", 2, prefix="n")
    assert 'href="/usage/users/?' in owner_client.get("/usage/").content.decode()
    page = owner_client.get("/usage/users/").content.decode()
    table = page[page.index('data-testid="by-user-table"') : page.index("</table>", page.index("by-user-table"))]
    assert table.index('data-user="alice"') < table.index('data-user="(none)"') < table.index('data-user="bob"')
    assert _credits(account, "alice") == 3 * _credits(account, "bob")  # same events, three of them


def test_the_end_user_filter_shows_only_that_users_requests(account: Account, owner_client: Client):
    _record(account, "alice", 2, prefix="a")
    _record(account, "bob", 1, prefix="b")
    page = owner_client.get("/usage/", {"user": "bob"}).content.decode()
    assert "b-0" in page
    assert "a-0" not in page and "a-1" not in page
    none = owner_client.get("/usage/", {"user": "(none)"}).content.decode()
    assert "No requests match these filters." in none


def test_the_csv_keeps_formula_like_cells_as_text_and_follows_the_user_filter(account: Account, owner_client: Client):
    _record(account, '=HYPERLINK("http://evil.example","x")', 1, prefix="=1+1")
    _record(account, "carol", 1, prefix="c")
    response = owner_client.get("/usage/export.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    by_request = {row["request_id"]: row for row in rows}
    evil = by_request["'=1+1-0"]  # the request id too: a spreadsheet shows it, never runs it
    assert evil["user"] == '\'=HYPERLINK("http://evil.example","x")'
    assert by_request["c-0"]["user"] == "carol"
    assert Decimal(by_request["c-0"]["credits"]) == _credits(account, "carol")  # amounts stay plain numbers
    only_carol = owner_client.get("/usage/export.csv", {"user": "carol"})
    rows = list(csv.DictReader(io.StringIO(b"".join(only_carol.streaming_content).decode())))
    assert [row["request_id"] for row in rows] == ["c-0"]


def test_a_too_long_user_filter_is_a_400_with_the_field_named(account: Account, owner_client: Client):
    response = owner_client.get("/usage/", {"user": "u" * 201})
    assert response.status_code == 400
    assert 'class="field-error"' in response.content.decode()
    assert owner_client.get("/usage/users/", {"end": "2026-01-01", "start": "2026-02-01"}).status_code == 400


def test_spend_by_user_shows_this_account_only(account: Account, owner_client: Client):
    other = AccountFactory.create(name="Other", plan="starter", credits="100000")
    _record(other, "mallory", 2, prefix="m")
    _record(account, "alice", 1, prefix="a")
    page = owner_client.get("/usage/users/").content.decode()
    assert 'data-user="alice"' in page and "mallory" not in page
