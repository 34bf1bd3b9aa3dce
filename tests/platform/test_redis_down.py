"""Redis stopped (a real redis-server that the test stops): recording and reads go on, what needs Redis says 503.

The cache and the Celery broker both point at the stopped server, as they do in production with REDIS_URL.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from billing.models import Wallet
from config.celery import app as celery_app
from core.cache import cache_mark_up
from pricing.selectors import catalog_cache_invalidate
from pricing.selectors import snapshot_cache as pricing_selectors
from tests.factories import AccountFactory
from tests.throwaway_redis import throwaway_redis  # noqa: F401 - a fixture
from usage.models import UsageEvent

READS = [
    "/api/tokens/usage",
    "/api/billing/balance",
    "/api/billing/invoices",
    "/api/usage/stats",
    "/api/usage/export.csv",
]
# the catalog reads take a signed-in user; and the dashboard's pages
PAGES = [
    "/api/tokens/models", "/api/tokens/features", "/api/tokens/exchange",
    "/", "/usage/", "/invoices/", "/plans/", "/keys/", "/alerts/",
]  # fmt: skip
OWNER, PASSWORD = "owner@example.com", "a-long-password-123"


@pytest.fixture
def broker_on(throwaway_redis, monkeypatch):  # noqa: F811
    """Celery's broker on the same redis-server, with a fresh connection pool."""
    monkeypatch.setattr(celery_app.conf, "broker_url", throwaway_redis.url)
    _forget_broker_connections()
    yield throwaway_redis
    _forget_broker_connections()


def _forget_broker_connections():
    # dropped, not closed: kombu keeps its pools in a registry that other tests reuse
    celery_app._pool = None  # type: ignore[attr-defined]
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]


def _event(request_id, **fields):
    return {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500, **fields}


def _assert_json_error(response, status, error):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error and body["message"]
    assert int(response["Retry-After"]) > 0
    return body


@pytest.mark.django_db(transaction=True)  # commits for real, so on_commit queues tasks on the stopped broker
def test_with_redis_stopped_recording_works_and_what_needs_redis_answers_503(broker_on):
    call_command("seed_catalog", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    # Jive limits requests per hour; the threshold makes recording queue an alert check on the broker
    account = AccountFactory.create(plan="jive", credits="100", owner_email=OWNER, owner_password=PASSWORD)
    account.low_balance_threshold = Decimal("98")
    account.save(update_fields=["low_balance_threshold"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")  # type: ignore[attr-defined]
    assert api.post("/api/usage/authorize", _event("warm", max_output_tokens=10), format="json").status_code == 200

    broker_on.stop()
    pricing_selectors._local.snapshot = None  # nothing in process memory: the catalog must come from the database

    recorded = api.post("/api/usage/events", _event("down-1"), format="json")
    assert recorded.status_code == 201, recorded.content
    assert recorded.json()["results"][0]["status"] == "recorded"
    batch = api.post("/api/usage/events", {"events": [_event("down-2"), _event("down-3")]}, format="json")
    assert batch.json()["recorded"] == 2
    assert UsageEvent.objects.filter(account=account).count() == 3
    assert Wallet.objects.get(account=account).balance == Decimal("95.5")  # and the alert check was not queued

    refused = _assert_json_error(
        api.post("/api/usage/authorize", _event("a1", max_output_tokens=10), format="json"),
        503, "rate_limit_unavailable",
    )  # fmt: skip
    assert "Redis" in refused["message"]
    _assert_json_error(
        api.post("/api/usage/estimate", {"model": "qwen-3-32b", "text": "hello"}, format="json"),
        503, "rate_limit_unavailable",
    )  # fmt: skip

    for path in READS:
        response = api.get(path)
        assert response.status_code == 200, (path, response.content)

    browser = Client()
    assert browser.post("/accounts/login/", {"username": OWNER, "password": PASSWORD}).status_code == 302
    for path in PAGES:
        assert browser.get(path).status_code == 200, path

    catalog_cache_invalidate()  # a catalog write while Redis is down commits; the process drops its snapshot

    health = Client().get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert (body["status"], body["database"]) == ("degraded", "ok")
    assert body["cache"].startswith("error") and body["broker"].startswith("error")
    assert body["rate_limits"].startswith("unavailable")

    broker_on.start()  # back: after the short skip window the rate limit counts again
    cache_mark_up()
    assert api.post("/api/usage/authorize", _event("a2", max_output_tokens=10), format="json").status_code == 200
