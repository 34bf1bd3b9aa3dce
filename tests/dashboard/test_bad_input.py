"""The dashboard's filters, cursors and query strings with values no browser sends: dates at the ends of the
calendar, impossible dates, cursors past what a time or an id can be, NUL characters. The page answers with the
form's error (400) or the first page, never a 500."""

from __future__ import annotations

import pytest

from tests.dashboard.conftest import spread
from tests.dashboard.test_usage_history import rows_of

pytestmark = pytest.mark.usefixtures("frozen")


@pytest.fixture
def history(recorded):
    """60 events over 3 days: more than a page."""
    recorded(spread([0, 1, 2], per_day=20))


@pytest.mark.parametrize(
    "query",
    [
        "start=9999-12-30&end=9999-12-31",
        "end=9999-12-31",
        "start=0001-01-01&end=0001-01-02",
        "start=2026-02-30",
        "end=2026-11-01T25:00",
        "start=%ED%B0%80",
        "start=" + "9" * 5000,
    ],
)
@pytest.mark.parametrize("page", ["/usage/", "/usage/export.csv"])
def test_dates_a_filter_cannot_use_show_the_form_error(owner_client, query, page):
    response = owner_client.get(f"{page}?{query}")
    assert response.status_code == 400
    assert b"must be" in response.content or b"Enter a valid date" in response.content


def test_the_last_supported_day_is_a_page(owner_client):
    response = owner_client.get("/usage/?start=9998-12-01&end=9998-12-31")
    assert response.status_code == 200
    assert rows_of(response.content.decode()) == []


@pytest.mark.parametrize(
    "cursor",
    [
        "9999-12-31T23:59:59-12:00~1",
        "0001-01-01T00:00:00+14:00~1",
        "2026-11-21T10:00:00+00:00~" + "9" * 40,
        "2026-11-21T10:00:00+00:00~-5",
        "2026-02-30T10:00:00+00:00~5",
        "2026-11-21T10:00:00+99:00~5",
        "~",
    ],
)
@pytest.mark.parametrize("direction", ["after", "before"])
def test_a_cursor_that_cannot_be_a_position_starts_from_the_newest(owner_client, history, cursor, direction):
    response = owner_client.get("/usage/", {direction: cursor})
    assert response.status_code == 200
    assert len(rows_of(response.content.decode())) == 50


def test_a_nul_in_the_query_string_is_400(owner_client):
    assert owner_client.get("/usage/?after=%00").status_code == 400
    assert owner_client.get("/?by=%00").status_code == 400
