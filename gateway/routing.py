"""Where a call goes: the active upstreams, read once per process and kept for UPSTREAM_CACHE_SECONDS, each
provider key decrypted once when they are read (not on every call).

Saving or deleting an upstream forgets the table in this process at once and again when the change commits (a
table read meanwhile could hold the old row); every other process (another gateway worker, the web app where the
console saved it) reads the change within UPSTREAM_CACHE_SECONDS.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from gateway.errors import GatewayRefusal
from gateway.models import Upstream
from gateway.upstream_keys import UpstreamKeyUnreadable, upstream_key_decrypt

logger = logging.getLogger(__name__)

UPSTREAM_CACHE_SECONDS = 30


@dataclass(frozen=True)
class UpstreamTarget:
    name: str
    url: str
    api_key: str
    timeout_seconds: int
    connect_retries: int


@dataclass(frozen=True)
class _Route:
    kind: str
    patterns: tuple[str, ...]  # lower-cased; none: every model
    name: str
    target: UpstreamTarget | None  # None: its key cannot be decrypted with the key in the environment

    def serves(self, model: str) -> bool:
        model = model.lower()
        return not self.patterns or any(fnmatch.fnmatchcase(model, pattern) for pattern in self.patterns)


class _Table:
    def __init__(self) -> None:
        self.routes: tuple[_Route, ...] | None = None
        self.read_at = 0.0
        self.generation = 0  # moved on by every forget, so a read that raced one is not kept
        self.lock = threading.Lock()


_table = _Table()


def _route(upstream: Upstream) -> _Route:
    try:
        key: str | None = upstream_key_decrypt(upstream.api_key_encrypted)
    except UpstreamKeyUnreadable as exc:
        logger.error("gateway upstream %s: %s", upstream.name, exc)
        key = None
    target = None if key is None else UpstreamTarget(
        name=upstream.name, url=upstream.base_url.rstrip("/"), api_key=key,
        timeout_seconds=upstream.timeout_seconds, connect_retries=upstream.connect_retries,
    )  # fmt: skip
    patterns = tuple(pattern.lower() for pattern in upstream.patterns)
    return _Route(kind=upstream.kind, patterns=patterns, name=upstream.name, target=target)


def _routes() -> tuple[_Route, ...]:
    now = time.time()  # wall-clock, so tests can move past the TTL with time-machine
    with _table.lock:
        routes, generation = _table.routes, _table.generation
        if routes is not None and 0 <= now - _table.read_at < UPSTREAM_CACHE_SECONDS:
            return routes
    upstreams = Upstream.objects.filter(is_active=True).order_by("priority", "name")
    routes = tuple(_route(upstream) for upstream in upstreams)
    with _table.lock:
        if _table.generation == generation:
            _table.routes, _table.read_at = routes, now
    return routes


def upstream_for(*, kind: str, model: str) -> UpstreamTarget:
    """The first active upstream of this provider kind that serves the model (by priority, then name)."""
    for route in _routes():
        if route.kind == kind and route.serves(model):
            if route.target is None:
                raise GatewayRefusal(502, "upstream_key_unreadable", "The gateway's upstream is misconfigured.")
            return route.target
    raise GatewayRefusal(404, "no_upstream", f"No upstream is configured for model {model!r}.")


def upstream_routes_forget() -> None:
    """Drop this process's table: the next call reads the upstreams again."""
    with _table.lock:
        _table.routes = None
        _table.generation += 1


def upstream_changed(**kwargs: Any) -> None:
    """post_save and post_delete of an Upstream (connected in apps.py)."""
    upstream_routes_forget()
    transaction.on_commit(upstream_routes_forget)
