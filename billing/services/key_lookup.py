"""How a key (an account key or a server key) is found on every request: a cache of live keys and its tombstones,
and the key's last use written about once a minute.

A live key is kept in the cache for KEY_CACHE_SECONDS under its hash, so authentication is one cache read rather
than a query. Revocation writes a tombstone under the same name at once and again when it commits; a lookup only
ever *adds* an entry, so a lookup that raced the revocation cannot put the live key back: a revoked key is refused
from the next request on. Without the cache (Redis down) keys are read from the database.

The catalog's generation, which an API request reads next, comes in the lookup's cache round trip and is handed over
to the catalog (pricing.selectors.catalog_generation_seen).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import models, transaction

from core.cache import CACHE_ERRORS, cache_is_down, cache_mark_down
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

    def lookup(self, secret_hash: str) -> Any:
        """The cached key, REVOKED, or None (not cached, or no cache)."""
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
        """Remember a live key; `add`, never `set`, so a tombstone written meanwhile stays."""
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
