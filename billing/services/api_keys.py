"""API keys: `tl_<prefix>_<secret>`, shown once, kept as a SHA-256 hash, found by prefix, revocable.

A live key is kept in the cache for KEY_CACHE_SECONDS under its hash, so a request's authentication is one cache
read rather than a query. Revocation writes a tombstone under the same name when it commits; authentication only
ever *adds* an entry, so a lookup that raced the revocation cannot put the live key back: a revoked key is refused
from the next request on. Without the cache (Redis down) keys are read from the database as before.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from billing.models import Account, ApiKey
from billing.services.audit import Actor, actor_or_none, audit_record
from core.cache import CACHE_ERRORS, cache_is_down, cache_mark_down
from pricing.selectors import GENERATION_KEY as CATALOG_GENERATION_KEY
from pricing.selectors import catalog_generation_seen

KEY_PREFIX = "tl_"
# last_used_at is written at most this often per key, so authentication stays a read on the hot path
LAST_USED_RESOLUTION = timedelta(seconds=60)
KEY_CACHE_SECONDS = 30
# a revoked key's tombstone outlives any live entry that could have been read before the revocation committed
_TOMBSTONE_SECONDS = 10 * KEY_CACHE_SECONDS
_REVOKED = "revoked"


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def api_key_issue(
    *, account: Account, name: str = "", actor: Actor = None, ip: str | None = None
) -> tuple[ApiKey, str]:
    """A new key for the account. The returned secret is the only time the whole key exists in clear."""
    prefix = secrets.token_hex(6)
    raw_key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        account=account, name=name, prefix=prefix, secret_hash=_hash(raw_key), created_by=actor_or_none(actor)
    )
    audit_record(action="api_key_issued", account=account, object_type="ApiKey", object_key=prefix, actor=actor, ip=ip,
                 after={"name": name})  # fmt: skip
    return key, raw_key


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: Actor = None, ip: str | None = None, now: datetime | None = None) -> ApiKey:
    key = ApiKey.objects.select_for_update(of=("self",)).select_related("account").get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = now or timezone.now()
        key.save(update_fields=["revoked_at"])
        _cache_tombstone(key.secret_hash)
        transaction.on_commit(lambda: _cache_tombstone(key.secret_hash))
        audit_record(action="api_key_revoked", account=key.account, object_type="ApiKey", object_key=key.prefix,
                     actor=actor, ip=ip, before={"revoked": False}, after={"revoked": True})  # fmt: skip
    return key


def _cache_name(secret_hash: str) -> str:
    return f"apikey:{secret_hash}"


def _cache_tombstone(secret_hash: str) -> None:
    """Mark the key revoked in the cache (now, and again when the revocation commits)."""
    try:
        cache.set(_cache_name(secret_hash), _REVOKED, timeout=_TOMBSTONE_SECONDS)
    except CACHE_ERRORS:
        cache_mark_down()  # the live entry, if any, lapses within KEY_CACHE_SECONDS


def _cached(secret_hash: str) -> ApiKey | str | None:
    """The cached key (or its tombstone). The catalog's generation, which the request reads next, comes in the
    same round trip and is handed over to the catalog (pricing.selectors.catalog_generation_seen)."""
    if cache_is_down():
        return None
    name = _cache_name(secret_hash)
    try:
        found = cache.get_many([name, CATALOG_GENERATION_KEY])
    except CACHE_ERRORS:
        cache_mark_down()
        return None
    catalog_generation_seen(found.get(CATALOG_GENERATION_KEY))
    key: ApiKey | str | None = found.get(name)
    return key


def _cache_add(key: ApiKey) -> None:
    """Remember a live key; `add`, never `set`, so a tombstone written meanwhile stays."""
    if cache_is_down():
        return
    try:
        cache.add(_cache_name(key.secret_hash), key, timeout=KEY_CACHE_SECONDS)
    except CACHE_ERRORS:
        cache_mark_down()


# when this process last wrote each key's last_used_at, by (id, hash): the cached key keeps the time it was read
_last_used_written: dict[tuple[int, str], datetime] = {}


def _last_used_touch(key: ApiKey, now: datetime) -> None:
    """Write last_used_at at most once per LAST_USED_RESOLUTION per key and process."""
    seen = (key.pk, key.secret_hash)
    last = max((t for t in (key.last_used_at, _last_used_written.get(seen)) if t is not None), default=None)
    if last is not None and timedelta(0) <= now - last < LAST_USED_RESOLUTION:
        key.last_used_at = last
        return
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    if len(_last_used_written) > 10_000:
        _last_used_written.clear()
    _last_used_written[seen] = key.last_used_at = now


def api_key_authenticate(raw_key: str, *, now: datetime | None = None) -> ApiKey | None:
    """The live key matching `raw_key`, or None for a malformed, unknown or revoked one. The key's account is
    not loaded: `key.account_id` names it."""
    if not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 200:
        return None
    prefix, sep, _secret = raw_key[len(KEY_PREFIX) :].partition("_")
    if not sep or not prefix:
        return None
    secret_hash = _hash(raw_key)
    cached = _cached(secret_hash)
    if cached == _REVOKED:
        return None
    key = cached if isinstance(cached, ApiKey) else ApiKey.objects.filter(prefix=prefix).first()
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.secret_hash, secret_hash):
        return None
    _last_used_touch(key, now or timezone.now())
    if cached is None:
        _cache_add(key)
    return key
