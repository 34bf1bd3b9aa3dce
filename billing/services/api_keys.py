"""API keys: `tl_<prefix>_<secret>`, shown once, kept as a SHA-256 hash, found by prefix, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from billing.models import Account, ApiKey
from billing.services.audit import Actor, actor_or_none, audit_record

KEY_PREFIX = "tl_"
# last_used_at is written at most this often per key, so authentication stays a read on the hot path
LAST_USED_RESOLUTION = timedelta(seconds=60)


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
        audit_record(action="api_key_revoked", account=key.account, object_type="ApiKey", object_key=key.prefix,
                     actor=actor, ip=ip, before={"revoked": False}, after={"revoked": True})  # fmt: skip
    return key


def api_key_authenticate(raw_key: str, *, now: datetime | None = None) -> ApiKey | None:
    """The live key matching `raw_key`, or None for a malformed, unknown or revoked one."""
    if not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 200:
        return None
    prefix, sep, _secret = raw_key[len(KEY_PREFIX) :].partition("_")
    if not sep or not prefix:
        return None
    key = ApiKey.objects.select_related("account").filter(prefix=prefix).first()
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.secret_hash, _hash(raw_key)):
        return None
    now = now or timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
