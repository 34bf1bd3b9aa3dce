"""`Idempotency-Key`: a retried POST answers the first result and acts once.

The guard is the unique (owner, key hash) constraint: the first request inserts its row, does its work and stores
its answer in the same transaction. A concurrent retry's insert waits for that transaction; once it commits the
retry reads the stored answer, and if it rolled back (the work was refused) the retry runs as if it were first.
Nothing is checked before the insert. A refused request stores nothing, so a corrected retry can reuse its key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.errors import IdempotencyConflict, InvalidIdempotencyKey
from billing.models import IdempotencyKey

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotentAnswer:
    status_code: int
    body: Any
    replayed: bool


def idempotency_key_check(key: str) -> str:
    """1 to 255 printable ASCII characters (what an HTTP header carries safely)."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidIdempotencyKey(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return key


def _fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _cipher(owner: str, key: str) -> Fernet:
    """Only a caller holding the key can read its stored answer (which may carry a new API key in clear)."""
    secret = hmac.new(settings.SECRET_KEY.encode(), f"idempotency\0{owner}\0{key}".encode(), hashlib.sha256)
    return Fernet(base64.urlsafe_b64encode(secret.digest()))


def idempotency_run(
    *,
    owner: str,
    key: str,
    method: str,
    path: str,
    body: Any,
    work: Callable[[], tuple[int, Any]],
    now: datetime | None = None,
) -> IdempotentAnswer:
    """Run `work` once per (owner, key) and answer its (status, body); a retry answers the stored first result.

    The same key with another method, path or body is refused with IdempotencyConflict.
    """
    key = idempotency_key_check(key)
    key_hash = hashlib.sha256(key.encode()).hexdigest()
    fingerprint = _fingerprint(method, path, body)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(
                    owner=owner, key_hash=key_hash, fingerprint=fingerprint, method=method, path=path[:500],
                    created_at=now or timezone.now(),
                )  # fmt: skip
        except IntegrityError:
            first = IdempotencyKey.objects.get(owner=owner, key_hash=key_hash)
            if first.fingerprint != fingerprint:
                raise IdempotencyConflict(
                    f"this Idempotency-Key was used for another request ({first.method} {first.path} with a "
                    "different body); use a new key for a new request"
                ) from None
            try:
                stored = json.loads(_cipher(owner, key).decrypt(first.response.encode()))
            except InvalidToken:  # SECRET_KEY changed since: the answer cannot be read back, the work is done
                raise IdempotencyConflict("this Idempotency-Key was already used; use a new key") from None
            return IdempotentAnswer(status_code=first.status_code or 200, body=stored, replayed=True)
        status_code, answer = work()
        record.status_code = status_code
        plain = json.dumps(answer, cls=DjangoJSONEncoder).encode()
        record.response = _cipher(owner, key).encrypt(plain).decode()
        record.save(update_fields=["status_code", "response"])
        return IdempotentAnswer(status_code=status_code, body=answer, replayed=False)


@transaction.atomic
def idempotency_keys_purge(*, as_of: datetime) -> int:
    """Delete the answers older than IDEMPOTENCY_KEY_TTL_HOURS; a key is kept at least that long."""
    cutoff = as_of - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
