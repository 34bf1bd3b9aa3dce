from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from billing.models import Account, AuditEntry

Actor = AbstractBaseUser | AnonymousUser | None


def actor_or_none(actor: Actor) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _plain(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: (str(v) if isinstance(v, Decimal | datetime) else v) for k, v in values.items()}


def audit_record(
    *,
    action: str,
    account: Account | None,
    object_type: str,
    object_key: str,
    actor: Actor = None,
    ip: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        action=action,
        account=account,
        object_type=object_type,
        object_key=object_key,
        actor=actor_or_none(actor),
        ip=ip,
        before=_plain(before),
        after=_plain(after),
    )
