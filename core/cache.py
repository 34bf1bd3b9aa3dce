"""The Redis cache, keeping one client per connection pool; and what callers do when Redis is down.

Django's RedisCache builds a new `redis.Redis` client for every cache call (about 0.13 ms of CPU each, mostly
its table of response callbacks). The client is only a handle on the pool, which is already shared, so this
backend builds it once per pool and reuses it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis.exceptions import RedisError


class _ReusingClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}  # by id() of the pool, which lives as long as this client

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # Django picks the pool (the primary to write, a replica to read); the client is kept per pool.
        # _get_connection_pool and _client are Django's own, left out of django-stubs.
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ReusingClient


# --- When the cache server is down ----------------------------------------------------------------------------------
#
# Errors that mean "the cache server cannot be reached or answered badly", as raised by Django's Redis backend.
# The local-memory cache never raises them. Callers that can do without the cache (the catalog) catch these and
# carry on; callers that cannot (the rate limit) answer 503.
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError,)

# After a failure the cache is skipped for this long, so that a Redis that hangs (a dropped route, not a refused
# connection) costs one connect timeout per process every few seconds rather than one per request.
CACHE_DOWN_SECONDS = 5.0


class _CacheHealth:
    def __init__(self) -> None:
        self.down_until = 0.0
        self.lock = threading.Lock()


_health = _CacheHealth()


def cache_is_down() -> bool:
    """True while a recent cache failure is fresh (CACHE_DOWN_SECONDS): skip the cache instead of waiting on it."""
    return time.monotonic() < _health.down_until


def cache_mark_down() -> None:
    """Record a cache failure: for CACHE_DOWN_SECONDS, `cache_is_down()` answers True in this process."""
    with _health.lock:
        _health.down_until = time.monotonic() + CACHE_DOWN_SECONDS


def cache_mark_up() -> None:
    with _health.lock:
        _health.down_until = 0.0
