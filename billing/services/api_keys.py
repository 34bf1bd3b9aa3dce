"""API keys: `tl_<prefix>_<secret>`, shown once, kept as a SHA-256 hash, found by prefix, revocable.

A live key is found through the key cache (billing/services/key_lookup.py): one cache read per request, a revoked
key refused from the next request on.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.models import Account, ApiKey
from billing.services.audit import Actor, actor_or_none, audit_record
from billing.services.key_lookup import KeyCache, last_used_touch

KEY_PREFIX = "tl_"
_KEYS = KeyCache("apikey")


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
        _KEYS.revoked(key.secret_hash)
        audit_record(action="api_key_revoked", account=key.account, object_type="ApiKey", object_key=key.prefix,
                     actor=actor, ip=ip, before={"revoked": False}, after={"revoked": True})  # fmt: skip
    return key


def api_key_authenticate(raw_key: str, *, now: datetime | None = None) -> ApiKey | None:
    """The live key matching `raw_key`, or None for a malformed, unknown or revoked one. The key's account is
    not loaded: `key.account_id` names it."""
    if not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 200:
        return None
    prefix, sep, _secret = raw_key[len(KEY_PREFIX) :].partition("_")
    if not sep or not prefix:
        return None
    key = _KEYS.find(_hash(raw_key), model=ApiKey, read_row=lambda: ApiKey.objects.filter(prefix=prefix).first())
    if key is None:
        return None
    last_used_touch(key, now or timezone.now())
    return key
