"""core.local_memo on a real redis-server: values kept in the process while it is subscribed to the changes channel,
dropped by a change made here or in any other process, never served once the subscription may have missed one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.core.cache import cache
from rest_framework.test import APIClient

from billing.models import ApiKey
from billing.services import api_keys
from billing.services.key_lookup import REVOKED
from core import local_memo
from core.local_memo import LocalMemo
from tests.factories import AccountFactory
from tests.throwaway_redis import ThrowawayRedis, throwaway_redis  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("catalog")

MEMO = LocalMemo("tests", seconds=30)


@pytest.fixture
def server(request) -> ThrowawayRedis:
    """Django's cache on a redis-server of the test's own (tests.throwaway_redis)."""
    return request.getfixturevalue("throwaway_redis")


def _until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _subscribed() -> bool:
    return _until(lambda: MEMO.token() is not None)


def _published_elsewhere(server: ThrowawayRedis, name: str, key: str) -> None:
    """What another process's `changed` sends: the change on the channel of this Redis."""
    client = redis.Redis.from_url(server.url)
    assert client.publish(local_memo.CHANNEL + server.url, f"{name}\x1f{key}") >= 1  # our listener heard it
    client.close()


def test_without_redis_nothing_is_kept(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}  # embedded mode
    token = MEMO.token()
    MEMO.put("a", "value", token)
    assert token is None and MEMO.get("a") is None


def test_a_value_is_kept_until_it_changes_here(server):
    assert _subscribed()
    MEMO.put("a", "first", MEMO.token())
    assert MEMO.get("a") == "first"
    MEMO.changed("a")
    assert MEMO.get("a") is None


def test_a_value_read_before_a_change_is_not_kept_after_it(server):
    assert _subscribed()
    token = MEMO.token()  # the value is read from its source now...
    MEMO.changed("a")  # ...and changes before it is kept
    MEMO.put("a", "stale", token)
    assert MEMO.get("a") is None


def test_a_change_published_by_another_process_drops_the_value_here(server):
    assert _subscribed()
    MEMO.put("a", "first", MEMO.token())
    MEMO.put("b", "other", MEMO.token())
    _published_elsewhere(server, "tests", "a")
    assert _until(lambda: MEMO.get("a") is None)
    assert MEMO.get("b") == "other"


def test_nothing_is_served_once_the_subscription_may_have_missed_a_change(server):
    assert _subscribed()
    MEMO.put("a", "first", MEMO.token())
    server.stop()  # a change published now would be lost
    assert _until(lambda: MEMO.get("a") is None, seconds=10)
    server.start()
    assert _subscribed()  # subscribed again, on a new epoch
    assert MEMO.get("a") is None  # what was kept before the loss is not served again


def test_a_key_revoked_by_another_process_is_refused_here_at_once(server):
    assert _subscribed()
    account: Any = AccountFactory.create(plan="starter", credits="100")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")
    assert client.get("/api/billing/balance").status_code == 200
    assert client.get("/api/billing/balance").status_code == 200  # the key is kept in this process now
    key = ApiKey.objects.get(account=account)
    assert api_keys._KEYS._kept.get(key.secret_hash) is not None
    # another process revokes it: the row, the tombstone in the shared cache, the message
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=key.created_at)
    cache.set(api_keys._KEYS._name(key.secret_hash), REVOKED)
    _published_elsewhere(server, "keys:apikey", key.secret_hash)
    assert _until(lambda: api_keys._KEYS._kept.get(key.secret_hash) is None)
    assert client.get("/api/billing/balance").status_code == 401
