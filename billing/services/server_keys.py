"""Server keys: `tls_<prefix>_<secret>`, shown once, kept as a SHA-256 hash, found by prefix, scoped, revocable.

A live key is cached as account keys are (billing/services/api_keys.py): for KEY_CACHE_SECONDS under its hash, so
authentication is one cache read; revocation writes a tombstone under the same name at once and when it commits,
and authentication only ever *adds* an entry, so a revoked key is refused from the next request on. Without the
cache (Redis down) keys are read from the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from billing.errors import InvalidAmount
from billing.models import ServerKey
from billing.services.api_keys import KEY_CACHE_SECONDS, LAST_USED_RESOLUTION
from billing.services.audit import Actor, actor_or_none, audit_record
from core.cache import CACHE_ERRORS, cache_is_down, cache_mark_down

SERVER_KEY_PREFIX = "tls_"
SCOPES = tuple(ServerKey.Scope.values)
# a revoked key's tombstone outlives any live entry that could have been read before the revocation committed
_TOMBSTONE_SECONDS = 10 * KEY_CACHE_SECONDS
_REVOKED = "revoked"


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def scopes_parse(value: str | Iterable[str]) -> list[str]:
    """`customers,usage` (or a list) as a sorted list of known scopes; an unknown or empty set is refused."""
    names = value.split(",") if isinstance(value, str) else list(value)
    scopes = sorted({name.strip() for name in names if name.strip()})
    unknown = [name for name in scopes if name not in SCOPES]
    if unknown:
        raise InvalidAmount(f"unknown scope {', '.join(unknown)}: choose from {', '.join(SCOPES)}")
    if not scopes:
        raise InvalidAmount(f"a server key needs at least one scope: {', '.join(SCOPES)}")
    return scopes


@transaction.atomic
def server_key_issue(
    *, name: str, scopes: str | Iterable[str], actor: Actor = None, ip: str | None = None
) -> tuple[ServerKey, str]:
    """A new server key. The returned secret is the only time the whole key exists in clear."""
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise InvalidAmount("name: 1 to 100 printable characters")
    prefix = secrets.token_hex(6)
    raw_key = f"{SERVER_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ServerKey.objects.create(
        name=name, prefix=prefix, secret_hash=_hash(raw_key), scopes=scopes_parse(scopes),
        created_by=actor_or_none(actor),
    )  # fmt: skip
    audit_record(action="server_key_issued", account=None, object_type="ServerKey", object_key=prefix, actor=actor,
                 ip=ip, after={"name": name, "scopes": key.scopes})  # fmt: skip
    return key, raw_key


@transaction.atomic
def server_key_revoke(
    *, key: ServerKey, actor: Actor = None, ip: str | None = None, now: datetime | None = None
) -> ServerKey:
    """Revoke a server key: every request with it answers 401 from now on. Revoking twice changes nothing."""
    key = ServerKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = now or timezone.now()
        key.save(update_fields=["revoked_at"])
        _cache_tombstone(key.secret_hash)
        transaction.on_commit(lambda: _cache_tombstone(key.secret_hash))
        audit_record(action="server_key_revoked", account=None, object_type="ServerKey", object_key=key.prefix,
                     actor=actor, ip=ip, before={"revoked": False}, after={"revoked": True})  # fmt: skip
    return key


def _cache_name(secret_hash: str) -> str:
    return f"serverkey:{secret_hash}"


def _cache_tombstone(secret_hash: str) -> None:
    """Mark the key revoked in the cache (now, and again when the revocation commits)."""
    try:
        cache.set(_cache_name(secret_hash), _REVOKED, timeout=_TOMBSTONE_SECONDS)
    except CACHE_ERRORS:
        cache_mark_down()  # the live entry, if any, lapses within KEY_CACHE_SECONDS


def _cached(secret_hash: str) -> ServerKey | str | None:
    if cache_is_down():
        return None
    try:
        found: ServerKey | str | None = cache.get(_cache_name(secret_hash))
    except CACHE_ERRORS:
        cache_mark_down()
        return None
    return found


def _cache_add(key: ServerKey) -> None:
    """Remember a live key; `add`, never `set`, so a tombstone written meanwhile stays."""
    if cache_is_down():
        return
    try:
        cache.add(_cache_name(key.secret_hash), key, timeout=KEY_CACHE_SECONDS)
    except CACHE_ERRORS:
        cache_mark_down()


# when this process last wrote each key's last_used_at, by (id, hash): the cached key keeps the time it was read
_last_used_written: dict[tuple[int, str], datetime] = {}


def _last_used_touch(key: ServerKey, now: datetime) -> None:
    """Write last_used_at at most once per LAST_USED_RESOLUTION per key and process."""
    seen = (key.pk, key.secret_hash)
    last = max((t for t in (key.last_used_at, _last_used_written.get(seen)) if t is not None), default=None)
    if last is not None and timedelta(0) <= now - last < LAST_USED_RESOLUTION:
        key.last_used_at = last
        return
    ServerKey.objects.filter(pk=key.pk).update(last_used_at=now)
    if len(_last_used_written) > 10_000:
        _last_used_written.clear()
    _last_used_written[seen] = key.last_used_at = now


def server_key_authenticate(raw_key: str, *, now: datetime | None = None) -> ServerKey | None:
    """The live server key matching `raw_key`, or None for a malformed, unknown or revoked one."""
    if not raw_key.startswith(SERVER_KEY_PREFIX) or len(raw_key) > 200:
        return None
    prefix, sep, _secret = raw_key[len(SERVER_KEY_PREFIX) :].partition("_")
    if not sep or not prefix:
        return None
    secret_hash = _hash(raw_key)
    cached = _cached(secret_hash)
    if cached == _REVOKED:
        return None
    key = cached if isinstance(cached, ServerKey) else ServerKey.objects.filter(prefix=prefix).first()
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.secret_hash, secret_hash):
        return None
    _last_used_touch(key, now or timezone.now())
    if cached is None:
        _cache_add(key)
    return key
