"""Issue 21: spend by API key on the usage pages, a filter by key, and the key's prefix in the CSV download."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from billing.models import Account, ApiKey
from billing.services.api_keys import api_key_issue
from tests.dashboard.conftest import NOW
from tests.factories import AccountFactory
from usage.services.recording import usage_record_batch

pytestmark = pytest.mark.usefixtures("frozen")


def _record(account: Account, key: ApiKey | None, count: int, *, prefix: str) -> None:
    raw = [
        {"request_id": f"{prefix}-{n}", "model": "gpt-4o-mini", "input_tokens": 10_000, "output_tokens": 1_000,
         "occurred_at": (NOW - timedelta(hours=2, minutes=n)).isoformat()}
        for n in range(count)
    ]  # fmt: skip
    batch = usage_record_batch(account=account, raw_events=raw, api_key_id=key.pk if key else None)
    assert batch.count("rejected") == 0


@pytest.fixture
def keys(account: Account) -> tuple[ApiKey, ApiKey]:
    web, _ = api_key_issue(account=account, name="web app")
    jobs, _ = api_key_issue(account=account, name="nightly jobs")
    _record(account, web, 3, prefix="w")
    _record(account, jobs, 1, prefix="j")
    _record(account, None, 2, prefix="s")
    return web, jobs


def _table(page: str, testid: str) -> str:
    start = page.index(f'data-testid="{testid}"')
    return page[start : page.index("</table>", start)]


def test_owners_see_spend_ranked_by_key_with_the_key_names(owner_client: Client, keys):
    web, jobs = keys
    table = _table(owner_client.get("/usage/users/").content.decode(), "by-key-table")
    assert table.index(f'data-key="{web.prefix}"') < table.index('data-key="(none)"')
    assert table.index('data-key="(none)"') < table.index(f'data-key="{jobs.prefix}"')
    assert "web app" in table and "nightly jobs" in table


def test_viewers_see_keys_by_prefix_only(viewer_client: Client, keys):
    web, _ = keys
    page = viewer_client.get("/usage/users/").content.decode()
    assert f"tl_{web.prefix}" in _table(page, "by-key-table")
    assert "web app" not in page and "nightly jobs" not in page


def test_admins_see_key_names(admin_user, keys):
    client = Client()
    client.force_login(admin_user)
    assert "nightly jobs" in _table(client.get("/usage/users/").content.decode(), "by-key-table")


def test_the_key_filter_shows_only_that_keys_requests(owner_client: Client, keys):
    _, jobs = keys
    page = owner_client.get("/usage/", {"api_key": jobs.prefix}).content.decode()
    assert "j-0" in page
    assert "w-0" not in page and "s-0" not in page
    unkeyed = owner_client.get("/usage/", {"api_key": "(none)"}).content.decode()
    assert "s-0" in unkeyed and "s-1" in unkeyed and "w-0" not in unkeyed


@pytest.mark.parametrize("value", ["tl_nope", "'; drop table usage_event; --", "x" * 500])
def test_an_unknown_key_is_a_form_error_not_a_500(owner_client: Client, keys, value):
    for path in ("/usage/", "/usage/users/", "/usage/export.csv"):
        response = owner_client.get(path, {"api_key": value})
        assert response.status_code == 400, path
        assert "Select a valid choice" in response.content.decode()


def test_another_accounts_key_is_not_a_choice(owner_client: Client, keys):
    other = AccountFactory.create(plan="starter", credits="1000")
    theirs, _ = api_key_issue(account=other, name="theirs")
    assert owner_client.get("/usage/", {"api_key": theirs.prefix}).status_code == 400


def _csv(client: Client, **query: str) -> list[dict[str, str]]:
    response: Any = client.get("/usage/export.csv", query)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_names_each_events_key_by_its_prefix_and_follows_the_filter(owner_client: Client, keys):
    web, _ = keys
    by_request = {row["request_id"]: row["api_key"] for row in _csv(owner_client)}
    assert by_request["w-0"] == web.prefix and by_request["s-0"] == ""
    assert sorted(row["request_id"] for row in _csv(owner_client, api_key=web.prefix)) == ["w-0", "w-1", "w-2"]
