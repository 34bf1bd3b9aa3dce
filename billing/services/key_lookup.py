"""How a key (an account key or a server key) is found on every request: a cache of live keys and its tombstones,
and the key's last use written about once a minute.

A live key is kept in the cache for KEY_CACHE_SECONDS under its hash, so authentication is one cache read rather
than a query. Revocation writes a tombstone under the same name at once and again when it commits; a lookup only
ever *adds* an entry, so a lookup that raced the revocation cannot put the live key back: a revoked key is refused
from the next request on. Without the cache (Redis down) keys are read from the database.

On Redis each process also keeps the live keys it has seen in its own memory (core.local_memo), so a request with a
known key makes no cache round trip at all: a revocation drops the key there at once and in every other process as
soon as its message arrives, each time the tombstone is written. The key kept is shared by the process's requests
and is read-only to them.

The catalog's generation, which an API request reads next, comes in the lookup's cache round trip and is handed over
to the catalog (pricing.selectors.catalog_generation_seen).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import models, transaction

from core.cache import CACHE_ERRORS, cache_is_down, cache_mark_down
from core.local_memo import LocalMemo
from pricing.selectors import GENERATION_KEY as CATALOG_GENERATION_KEY
from pricing.selectors import catalog_generation_seen

KEY_CACHE_SECONDS = 30
# last_used_at is written at most this often per key, so authentication stays a read on the hot path
LAST_USED_RESOLUTION = timedelta(seconds=60)
# a revoked key's tombstone outlives any live entry that could have been read before the revocation committed
_TOMBSTONE_SECONDS = 10 * KEY_CACHE_SECONDS
REVOKED = "revoked"


class KeyCache:
    """The live keys of one kind (`namespace`: apikey, serverkey) by the hash of their secret."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._kept = LocalMemo(f"keys:{namespace}", seconds=KEY_CACHE_SECONDS)

    def _name(self, secret_hash: str) -> str:
        return f"{self.namespace}:{secret_hash}"

    def revoked(self, secret_hash: str) -> None:
        """Mark the key revoked in the cache now and again when the caller's revocation commits."""
        self._tombstone(secret_hash)
        transaction.on_commit(lambda: self._tombstone(secret_hash))

    def _tombstone(self, secret_hash: str) -> None:
        try:
            cache.set(self._name(secret_hash), REVOKED, timeout=_TOMBSTONE_SECONDS)
        except CACHE_ERRORS:
            cache_mark_down()  # the live entry, if any, lapses within KEY_CACHE_SECONDS
        # after the tombstone: a lookup that starts after this reads the tombstone, one that started before is
        # kept out of the memo
        self._kept.changed(secret_hash)

    def find(self, secret_hash: str, *, model: type[models.Model], read_row: Callable[[], Any]) -> Any:
        """The live key whose secret has this hash, or None (unknown or revoked): kept in the process, else from the
        cache, else `read_row()` (the database), which is then cached and kept."""
        kept = self._kept.get(secret_hash)
        if kept is not None:
            return kept
        token = self._kept.token()  # before the reads: a revocation after it keeps the key out of the memo
        cached = self._cached(secret_hash)
        if cached == REVOKED:
            return None
        key: Any = cached if isinstance(cached, model) else read_row()
        if key is None or key.revoked_at is not None or not hmac.compare_digest(key.secret_hash, secret_hash):
            return None
        self._kept.put(secret_hash, key, token)
        if cached is None:
            self.add(key)
        return key

    def _cached(self, secret_hash: str) -> Any:
        """The cached key, REVOKED, or None (not cached, or no cache); hands the catalog's generation over."""
        if cache_is_down():
            return None
        name = self._name(secret_hash)
        try:
            found = cache.get_many([name, CATALOG_GENERATION_KEY])
        except CACHE_ERRORS:
            cache_mark_down()
            return None
        catalog_generation_seen(found.get(CATALOG_GENERATION_KEY))
        return found.get(name)

    def add(self, key: Any) -> None:
        """Cache a live key read from the database; `add`, never `set`, so a tombstone written meanwhile stays."""
        if cache_is_down():
            return
        try:
            cache.add(self._name(key.secret_hash), key, timeout=KEY_CACHE_SECONDS)
        except CACHE_ERRORS:
            cache_mark_down()


# when this process last wrote each key's last_used_at, by (model, id, hash): a cached key keeps the time it was read
_last_used_written: dict[tuple[str, int, str], datetime] = {}


def last_used_touch(key: models.Model, now: datetime) -> None:
    """Write the key's last_used_at at most once per LAST_USED_RESOLUTION per key and process."""
    seen = (key._meta.label, key.pk, key.secret_hash)  # type: ignore[attr-defined]
    recorded: datetime | None = key.last_used_at  # type: ignore[attr-defined]
    last = max((t for t in (recorded, _last_used_written.get(seen)) if t is not None), default=None)
    if last is not None and timedelta(0) <= now - last < LAST_USED_RESOLUTION:
        key.last_used_at = last  # type: ignore[attr-defined]
        return
    type(key)._default_manager.filter(pk=key.pk).update(last_used_at=now)
    if len(_last_used_written) > 10_000:
        _last_used_written.clear()
    _last_used_written[seen] = key.last_used_at = now  # type: ignore[attr-defined]
