"""`catalog_snapshot()`, the read the hot paths use: served from process memory, then the shared cache (one
generation number says which snapshot is current), then the database; a catalog write bumps the generation.

On Redis the process keeps its snapshot without reading the generation while its change listener is subscribed
(core.local_memo): a catalog write drops it here at once and in every other process when the message arrives.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from core.cache import CACHE_ERRORS, cache_is_down, cache_mark_down
from core.local_memo import LocalMemo
from pricing.catalog import CatalogSnapshot
from pricing.selectors.snapshot_build import catalog_snapshot_build

logger = logging.getLogger("tokenledger.pricing")

GENERATION_KEY = "pricing:catalog:generation"
SNAPSHOT_KEY = "pricing:catalog:snapshot:{generation}"


@dataclass
class _Local:
    generation: int | None = None
    snapshot: CatalogSnapshot | None = None
    loaded_at: float = 0.0
    # a catalog write committed while the cache was down: bump the shared generation once it is back
    invalidation_pending: bool = False


_local = _Local()
_local_lock = threading.Lock()
_kept = LocalMemo("catalog", seconds="PRICING_CACHE_TTL_SECONDS")  # the current snapshot, as "current"


# a generation read by a caller in its own cache round trip (the API key lookup reads both at once) serves the next
# catalog read in the same thread, if it comes within this long; later, the generation is read again
_SEEN_SECONDS = 1.0
_seen = threading.local()


def catalog_generation_seen(generation: object) -> None:
    """Hand over the generation the caller read (GENERATION_KEY) with its own cache read, for the next
    catalog_snapshot() in this thread: one cache round trip fewer per request. Used once."""
    _seen.value = (generation, time.monotonic())


def _generation_handed_over() -> int | None:
    seen = getattr(_seen, "value", None)
    if seen is None:
        return None
    _seen.value = None
    generation, at = seen
    if generation is None or time.monotonic() - at >= _SEEN_SECONDS:
        return None
    return int(generation)


def catalog_generation() -> int:
    handed_over = _generation_handed_over()
    if handed_over is not None:
        return handed_over
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        # first use, or the cache was flushed: start a generation no process can have cached
        # a random start no process can hold a snapshot for (the clock may be frozen in tests)
        cache.add(GENERATION_KEY, secrets.randbits(60), timeout=None)
        generation = cache.get(GENERATION_KEY)
    return int(generation)


def catalog_snapshot() -> CatalogSnapshot:
    """The catalog with every version, shared through the cache for PRICING_CACHE_TTL_SECONDS.

    Each call costs one cache read (the generation number); a committed catalog write bumps the generation, so
    every process, on Redis, sees the change on its next call. Without the cache (Redis down) it serves the
    process's last snapshot while it is younger than the TTL, else one rebuilt from the database.
    """
    kept = _kept.get("current")
    if kept is not None:
        return kept
    token = _kept.token()  # before the generation is read: a catalog write after it keeps this read out of the memo
    if cache_is_down():
        return _catalog_snapshot_uncached()
    try:
        if _local.invalidation_pending:
            _generation_bump()
            _local.invalidation_pending = False
        generation = catalog_generation()
    except CACHE_ERRORS:
        logger.warning("catalog: the cache is unreachable; the catalog is served from the database")
        cache_mark_down()
        return _catalog_snapshot_uncached()
    ttl = settings.PRICING_CACHE_TTL_SECONDS
    with _local_lock:
        if (
            _local.snapshot is not None
            and _local.generation == generation
            and time.monotonic() - _local.loaded_at < ttl
        ):
            _kept.put("current", _local.snapshot, token)
            return _local.snapshot
    key = SNAPSHOT_KEY.format(generation=generation)
    try:
        snapshot = cache.get(key)
    except CACHE_ERRORS:
        cache_mark_down()
        return _catalog_snapshot_uncached()
    if snapshot is None:
        snapshot = catalog_snapshot_build()
        try:
            cache.set(key, snapshot, timeout=ttl)
        except CACHE_ERRORS:
            cache_mark_down()
    with _local_lock:
        _local.generation, _local.snapshot, _local.loaded_at = generation, snapshot, time.monotonic()
    _kept.put("current", snapshot, token)
    return snapshot


def _catalog_snapshot_uncached() -> CatalogSnapshot:
    """The process's last snapshot while younger than the TTL, else a new one from the database.

    Kept with no generation, so the first call that reaches the cache again reloads the shared one.
    """
    with _local_lock:
        if _local.snapshot is not None and time.monotonic() - _local.loaded_at < settings.PRICING_CACHE_TTL_SECONDS:
            return _local.snapshot
    snapshot = catalog_snapshot_build()
    with _local_lock:
        _local.generation, _local.snapshot, _local.loaded_at = None, snapshot, time.monotonic()
    return snapshot


def _generation_bump() -> None:
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # no generation yet: nobody has a snapshot cached
        cache.delete(GENERATION_KEY)


def catalog_cache_invalidate() -> None:
    """Make every process rebuild its snapshot on its next use.

    With the cache down, this process drops its snapshot at once and bumps the shared generation when the cache
    answers again; other processes see the change when their own snapshot outlives the TTL.
    """
    with _local_lock:
        _local.snapshot = None
    _seen.value = None  # a generation handed over before this write is not to be used after it
    try:
        _generation_bump()
    except CACHE_ERRORS:
        logger.warning("catalog: the cache is unreachable; other processes see this change within the TTL")
        cache_mark_down()
        _local.invalidation_pending = True
    # after the bump: a read that starts after this reads the new generation, one that started before is kept out
    _kept.changed("current")
