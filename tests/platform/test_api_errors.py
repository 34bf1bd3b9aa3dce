"""Every answer under /api/ is JSON in the contract's error shape, whatever went wrong and wherever Django decided
it (no route, a method, a body too big, too many fields, a NUL in the address, a crash); bad dates and bad text in
queries and bodies are a 4xx, never a 500. Pages outside /api/ keep Django's own error pages."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.http import HttpRequest
from django.test import Client
from django.urls import path
from rest_framework.test import APIClient

from tests.factories import AccountFactory, UserFactory


def _boom(request: HttpRequest) -> Any:
    raise RuntimeError("a bug")


urlpatterns = [
    path("api/boom", _boom),
    path("boom", _boom),
]


@pytest.fixture
def account_client(catalog, api_client_for) -> APIClient:
    return api_client_for(AccountFactory.create(plan="jive", credits="10000"))


@pytest.fixture
def staff_client(catalog) -> Client:
    UserFactory.create(username="ops@example.com", is_staff=True, is_superuser=True)
    token = base64.b64encode(b"ops@example.com:pw-for-tests-only").decode()
    return Client(HTTP_AUTHORIZATION=f"Basic {token}")


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "message", "fields"}
    assert body["message"]
    if code:
        assert body["error"] == code
    return body


@pytest.mark.parametrize(
    "url",
    [
        "/api/nothing",
        "/api/nothing/",
        "/api/usage/events/",
        "/api/billing/balance/",
        "/api/",
        "/api/billing/invoices/x",
    ],
)
def test_an_unknown_api_path_is_a_json_404(account_client, url):
    assert_error(account_client.get(url), 404, "not_found")
    assert_error(account_client.post(url, data="{}", content_type="application/json"), 404, "not_found")


def test_pages_outside_the_api_keep_django_404(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_method_not_allowed_is_a_json_405(account_client):
    body = assert_error(account_client.delete("/api/billing/balance"), 405, "method_not_allowed")
    assert "DELETE" in body["message"]


def test_an_unsupported_media_type_is_a_json_415(account_client):
    response = account_client.post("/api/billing/topups", data="amount_usd=10", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


def test_too_many_form_fields_is_a_json_400(account_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 100
    body = "&".join(f"f{n}=1" for n in range(500))
    response = account_client.post("/api/billing/topups", data=body, content_type="application/x-www-form-urlencoded")
    assert_error(response, 400, "too_many_fields")


@pytest.mark.parametrize("url", ["/api/billing/topups", "/api/admin/tokens/exchange", "/api/usage/estimate"])
def test_a_body_over_the_limit_is_a_json_413(account_client, settings, url):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    payload = json.dumps({"amount_usd": "10", "padding": "x" * (128 * 1024)})
    assert_error(account_client.post(url, data=payload, content_type="application/json"), 413, "payload_too_large")


def test_a_crash_under_the_api_is_a_json_500_and_a_page_crash_stays_html(settings, db):
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)
    assert_error(client.get("/api/boom"), 500, "server_error")
    page = client.get("/boom")
    assert page.status_code == 500
    assert not page["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "url",
    [
        "/api/usage/stats?from=%00",
        "/api/usage/export.csv?to=2026-11-01%00",
        "/api/admin/tokens/models/gpt%00x",
        "/api/billing/invoices?x=%00",
    ],
)
def test_a_nul_in_the_address_is_a_json_400(account_client, url):
    assert_error(account_client.get(url), 400, "malformed_request")


def test_a_nul_in_a_page_address_is_400(client, db):
    assert client.get("/usage/?start=%00").status_code == 400
    assert client.get("/top-up/success/?session_id=cs_%00").status_code == 400


@pytest.mark.parametrize("endpoint", ["/api/usage/stats", "/api/usage/export.csv"])
@pytest.mark.parametrize(
    "query",
    [
        {"from": "9999-12-30", "to": "9999-12-31"},
        {"to": "9999-12-31"},
        {"from": "0001-01-01", "to": "0001-01-02"},
        {"from": "2026-02-30"},
        {"to": "2026-13-01"},
        {"from": "2026-11-01T25:00:00"},
        {"from": "\u2028\ufffd"},
        {"from": "x" * 10_000},
    ],
)
def test_dates_outside_what_a_range_can_be_are_400(account_client, endpoint, query):
    body = assert_error(account_client.get(endpoint, query), 400, "invalid")
    assert set(body["fields"]) <= {"from", "to"}


@pytest.mark.parametrize("raw", ["%ED%B0%80", "%FF%FE", "2026-11-01%ED%B0%80"])
def test_undecodable_bytes_in_a_date_query_are_400(account_client, raw):
    assert_error(account_client.get(f"/api/usage/stats?from={raw}"), 400, "invalid")


def test_the_last_supported_day_is_answered(account_client):
    response = account_client.get("/api/usage/stats", {"from": "9998-12-01", "to": "9998-12-31"})
    assert response.status_code == 200
    assert response.json()["total_events"] == 0
    export = account_client.get("/api/usage/export.csv", {"from": "9998-12-01", "to": "9998-12-31"})
    assert export.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"amount_usd": "10\x00"},
        {"amount_usd": "\ud800"},
        {"amount_usd": "9" * 10_000},
        {"amount_usd": "1e999999"},
        {"amount_usd": "NaN"},
        {"amount_usd": {"nested": ["x"]}},
    ],
)
def test_bad_top_up_amounts_are_400(account_client, body):
    response = account_client.post("/api/billing/topups", data=json.dumps(body), content_type="application/json")
    assert_error(response, 400)


@pytest.mark.parametrize(
    "change",
    [
        {"display_name": "GPT\x00"},
        {"display_name": "\udc00"},
        {"display_name": "x" * 100_000},
        {"provider": "openai\x00"},
        {"allowed_tiers": ["default\x00"]},
        {"reason": "\ud800"},
        {"effective_from": "9999-12-31T23:59:59-12:00"},
        {"effective_from": "0001-01-01T00:00:00+14:00"},
        {"effective_from": "2026-02-30T00:00:00Z"},
    ],
)
def test_bad_text_and_times_in_a_catalog_write_are_400(staff_client, change):
    body = {
        "display_name": "Edge model",
        "provider": "openai",
        "input_price_per_million": "1",
        "output_price_per_million": "2",
        "reason": "test",
        **change,
    }
    response = staff_client.put(
        "/api/admin/tokens/models/edge-model", data=json.dumps(body), content_type="application/json"
    )
    assert_error(response, 400)
