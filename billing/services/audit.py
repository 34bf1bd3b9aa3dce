from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from billing.models import Account, AuditEntry

Actor = AbstractBaseUser | AnonymousUser | None

# the credential a change is made with when it is not a signed-in user (a server key), for the audit trail
_via: ContextVar[str] = ContextVar("audit_via", default="")


def audit_via_begin(label: str) -> Token[str]:
    """From now on in this context, audit entries name `label`; end with audit_via_end(token)."""
    return _via.set(label[:200])


def audit_via_end(token: Token[str]) -> None:
    _via.reset(token)


@contextmanager
def audit_via(label: str) -> Iterator[None]:
    """Every audit entry written inside this block names `label` (e.g. "server key tls_ab12 (backend)")."""
    token = _via.set(label[:200])
    try:
        yield
    finally:
        _via.reset(token)


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
        via=_via.get(),
        account=account,
        object_type=object_type,
        object_key=object_key,
        actor=actor_or_none(actor),
        ip=ip,
        before=_plain(before),
        after=_plain(after),
    )
