"""Values kept in each process's memory and dropped the moment any process changes them (Redis pub/sub).

Every API request reads two things that change rarely and must not be served stale once changed: its key (a revoked
key is refused from the next request on) and the catalog's generation. Read from Redis, they cost a round trip per
request. A `LocalMemo` keeps them in the process instead, for as long as the process's listener is subscribed to the
changes channel:

- `changed(name)` drops the value in this process at once and publishes the name; every other process's listener
  drops it when the message arrives (well under a millisecond on one host). Callers call it where they already
  invalidate the shared cache: now and again when the change commits.
- A value read before a change and stored after it is not kept: take a `token()` before reading the value from its
  source and give it to `put`; a put is refused when any change arrived in between.
- Messages are lost only with the subscription. When it drops, the epoch moves on: nothing stored before is served,
  nothing is stored until the listener is subscribed again, and callers read Redis as they did before.
- Without Redis (REDIS_URL unset, or a cache that is not the Redis one), nothing is ever kept.

Should a publish fail while other processes stay subscribed, they keep the value at most `seconds` (the same bound
the shared cache's own entries have when its invalidation fails).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import redis
from django.conf import settings

from core.cache import CACHE_ERRORS

logger = logging.getLogger("tokenledger.cache")

CHANNEL = "tokenledger:changes:"  # + the Redis URL: test workers on one server each use their own database
_SEPARATOR = "\x1f"
_MAX_ENTRIES = 50_000  # past this a memo starts again empty (keys of many accounts on one process)


def _redis_url() -> str | None:
    """The Redis the default cache uses, if it is ours (core.cache.RedisCache)."""
    cache = settings.CACHES.get("default", {})
    if cache.get("BACKEND") != "core.cache.RedisCache":
        return None
    location = cache.get("LOCATION")
    return location if isinstance(location, str) else None


class _Listener:
    """The process's subscription to the changes channel, started on first use in each process (after a fork)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = 0
        self.url: str | None = None
        self.live = False  # subscribed: no change can have been missed since `epoch` began
        self.epoch = 0  # moves on with every (re)subscription and every loss of it
        self.changes = 0  # every change seen here (published by this process or received)
        self.memos: dict[str, LocalMemo] = {}
        self.publisher: redis.Redis | None = None
        self.thread_number = 0  # the listener thread that is current; an older one stops

    def ready(self) -> bool:
        """True while values may be served and stored; starts the listener in a new process."""
        url = _redis_url()
        if self.pid != os.getpid() or self.url != url:
            with self.lock:
                if self.pid != os.getpid() or self.url != url:
                    self.pid, self.url, self.live, self.publisher = os.getpid(), url, False, None
                    self.epoch += 1
                    self.thread_number += 1
                    if url:
                        thread = threading.Thread(
                            target=self._listen, args=(url, self.thread_number), name="tokenledger-changes", daemon=True
                        )
                        thread.start()
        return self.live

    def _current(self, url: str, number: int) -> bool:
        return self.pid == os.getpid() and self.url == url and self.thread_number == number

    def _listen(self, url: str, number: int) -> None:
        while self._current(url, number):
            client = redis.Redis.from_url(url, health_check_interval=5, socket_connect_timeout=2, socket_keepalive=True)
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(CHANNEL + url)
                while self._current(url, number):
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        with self.lock:
                            if self._current(url, number):
                                self.epoch += 1
                                self.live = True
                    elif message["type"] == "message":
                        self._received(message["data"])
            except Exception:  # the subscription is lost (or never made): serve nothing until it is back
                if self.live:
                    logger.warning("changes channel: subscription lost; values are read from Redis until it is back")
                self._lost(url, number)
                time.sleep(1.0)
            finally:
                pubsub.close()
                client.close()
        self._lost(url, number)

    def _lost(self, url: str, number: int) -> None:
        with self.lock:
            if self._current(url, number):
                self.live = False
                self.epoch += 1

    def _received(self, data: bytes) -> None:
        name, _, key = data.decode().partition(_SEPARATOR)
        memo = self.memos.get(name)
        with self.lock:
            self.changes += 1
            if memo is not None:
                memo.entries.pop(key, None)

    def publish(self, name: str, key: str) -> None:
        url = self.url
        if not url:
            return
        try:
            if self.publisher is None:
                self.publisher = redis.Redis.from_url(url, socket_connect_timeout=2)
            self.publisher.publish(CHANNEL + url, f"{name}{_SEPARATOR}{key}")
        except CACHE_ERRORS:
            logger.warning("changes channel: could not publish a change to %s; other processes keep it at most %s s",
                           name, self.memos[name].seconds())  # fmt: skip


_listener = _Listener()


class LocalMemo:
    """Values by name, kept in this process while its listener is subscribed (see the module's docstring)."""

    def __init__(self, name: str, *, seconds: float | str) -> None:
        """`seconds`: how long a value is kept at most, or the name of the setting that says so."""
        self.name = name
        self._seconds = seconds
        self.entries: dict[str, tuple[Any, int, float]] = {}
        _listener.memos[name] = self

    def seconds(self) -> float:
        return float(getattr(settings, self._seconds) if isinstance(self._seconds, str) else self._seconds)

    def get(self, key: str) -> Any:
        """The value kept for `key`, or None."""
        if not _listener.ready():
            return None
        entry = self.entries.get(key)
        if entry is None:
            return None
        value, epoch, until = entry
        if epoch != _listener.epoch or time.monotonic() >= until:
            self.entries.pop(key, None)
            return None
        return value

    def token(self) -> tuple[int, int] | None:
        """Taken before reading a value from its source; `put` keeps the value only if nothing changed since."""
        if not _listener.ready():
            return None
        return (_listener.epoch, _listener.changes)

    def put(self, key: str, value: Any, token: tuple[int, int] | None) -> None:
        if token is None:
            return
        with _listener.lock:
            if not _listener.live or token != (_listener.epoch, _listener.changes):
                return
            if len(self.entries) >= _MAX_ENTRIES:
                self.entries.clear()
            self.entries[key] = (value, _listener.epoch, time.monotonic() + self.seconds())

    def changed(self, key: str) -> None:
        """`key` changed: drop it here at once and in every other process."""
        with _listener.lock:
            _listener.changes += 1
            self.entries.pop(key, None)
        _listener.publish(self.name, key)


def local_memos_forget() -> None:
    """Drop every value kept in this process (tests: a rolled-back transaction publishes nothing)."""
    with _listener.lock:
        _listener.changes += 1
        for memo in _listener.memos.values():
            memo.entries.clear()
