"""Server keys: `tls_<prefix>_<secret>`, shown once, kept as a SHA-256 hash, found by prefix, scoped, revocable.

A live key is found through the key cache, as account keys are (billing/services/key_lookup.py): one cache read
per request, a revoked key refused from the next request on.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.errors import InvalidAmount
from billing.models import ServerKey
from billing.services.audit import Actor, actor_or_none, audit_record
from billing.services.key_lookup import KeyCache, last_used_touch

SERVER_KEY_PREFIX = "tls_"
SCOPES = tuple(ServerKey.Scope.values)
_KEYS = KeyCache("serverkey")


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
        _KEYS.revoked(key.secret_hash)
        audit_record(action="server_key_revoked", account=None, object_type="ServerKey", object_key=key.prefix,
                     actor=actor, ip=ip, before={"revoked": False}, after={"revoked": True})  # fmt: skip
    return key


def server_key_authenticate(raw_key: str, *, now: datetime | None = None) -> ServerKey | None:
    """The live server key matching `raw_key`, or None for a malformed, unknown or revoked one."""
    if not raw_key.startswith(SERVER_KEY_PREFIX) or len(raw_key) > 200:
        return None
    prefix, sep, _secret = raw_key[len(SERVER_KEY_PREFIX) :].partition("_")
    if not sep or not prefix:
        return None
    key = _KEYS.find(_hash(raw_key), model=ServerKey, read_row=lambda: ServerKey.objects.filter(prefix=prefix).first())
    if key is None:
        return None
    last_used_touch(key, now or timezone.now())
    return key
