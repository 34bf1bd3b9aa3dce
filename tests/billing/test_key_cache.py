"""API keys are authenticated from a short-lived cache; revoking a key refuses it from the next request on."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import ApiKey
from billing.services import api_keys
from billing.services.api_keys import api_key_revoke
from tests.factories import AccountFactory
from tests.throwaway_redis import throwaway_redis  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("catalog")


@pytest.fixture(params=["local-memory", "redis"])
def cache_kind(request):
    """The same on the embedded local-memory cache and on a real Redis."""
    if request.param == "redis":
        request.getfixturevalue("throwaway_redis")
    return request.param


def _client(account) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")
    return client


def test_a_known_key_is_authenticated_without_reading_the_key_row(cache_kind):
    account = AccountFactory.create(plan="starter", credits="100")
    client = _client(account)
    assert client.get("/api/billing/balance").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/billing/balance")
    assert response.status_code == 200 and Decimal(response.json()["credits"]) == 100
    assert not [q for q in queries.captured_queries if "billing_apikey" in q["sql"]]


def test_revoking_a_cached_key_refuses_it_on_the_next_request(cache_kind, django_capture_on_commit_callbacks):
    account = AccountFactory.create(plan="starter", credits="100")
    client = _client(account)
    assert client.get("/api/billing/balance").status_code == 200  # the key is cached now
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(key=ApiKey.objects.get(account=account))
    response = client.get("/api/billing/balance")
    assert response.status_code == 401


def test_a_lookup_that_raced_the_revocation_cannot_bring_the_key_back(cache_kind, django_capture_on_commit_callbacks):
    account = AccountFactory.create(plan="starter", credits="100")
    stale = ApiKey.objects.get(account=account)  # read before the revocation, cached after it
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(key=stale)
    api_keys._KEYS.add(stale)
    assert _client(account).get("/api/billing/balance").status_code == 401


def test_last_use_is_still_written_about_once_a_minute():
    account: Any = AccountFactory.create(plan="starter", credits="100")
    client = _client(account)
    assert client.get("/api/billing/balance").status_code == 200
    first = ApiKey.objects.get(account=account).last_used_at
    assert first is not None
    key = ApiKey.objects.get(account=account)
    later = first + timedelta(seconds=61)
    assert api_keys.api_key_authenticate(account.api_key, now=later) is not None
    assert ApiKey.objects.get(pk=key.pk).last_used_at == later
    assert api_keys.api_key_authenticate(account.api_key, now=later + timedelta(seconds=5)) is not None
    assert ApiKey.objects.get(pk=key.pk).last_used_at == later
    assert first <= timezone.now()
