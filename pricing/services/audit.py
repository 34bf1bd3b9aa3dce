"""What every catalog write shares: the actor, the audit row, the amount and effective-time checks, and
descriptive fields changed with their before and after audited."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from pricing.errors import CatalogValidationError
from pricing.models import CatalogAudit, Feature, Plan
from pricing.money import MoneyError, to_decimal
from pricing.selectors import catalog_cache_invalidate

Actor = AbstractBaseUser | AnonymousUser | None


def _actor(actor: Actor) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _json(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal | datetime) else v) for k, v in values.items()}


def _audit(
    *,
    actor: Actor,
    action: str,
    obj: Any,
    key: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str = "",
) -> None:
    CatalogAudit.objects.create(
        actor=_actor(actor),
        action=action,
        object_type=type(obj).__name__,
        object_key=key,
        before=_json(before) if before is not None else None,
        after=_json(after) if after is not None else None,
        reason=reason,
    )
    transaction.on_commit(catalog_cache_invalidate)


def _amount(
    fields: dict[str, str], name: str, value: object, *, minimum: Decimal = Decimal(0), strict: bool = False
) -> Decimal:
    try:
        amount = to_decimal(value)
    except MoneyError as exc:
        fields[name] = str(exc)
        return Decimal(0)
    if amount < minimum or (strict and amount == minimum):
        fields[name] = f"must be {'>' if strict else '>='} {minimum}"
    return amount


def _effective(
    fields: dict[str, str], effective_from: datetime | None, reason: str, now: datetime
) -> tuple[datetime, bool]:
    """When a version starts and whether it is backdated; a version that starts in the past needs a reason."""
    if effective_from is None:
        return now, False
    if timezone.is_naive(effective_from):
        fields["effective_from"] = "must carry a time zone"
        return now, False
    backdated = effective_from < now - timedelta(seconds=60)
    if backdated and not reason.strip():
        fields["reason"] = "a version that starts in the past needs a reason"
    return effective_from, backdated


def _raise(fields: dict[str, str]) -> None:
    if fields:
        first = next(iter(fields.items()))
        raise CatalogValidationError(f"{first[0]}: {first[1]}", fields=fields)


def _describe(*, obj: Feature | Plan, key: str, changes: Mapping[str, Any], actor: Actor) -> None:
    """Set descriptive fields (never versioned: names, flags, Stripe ids), audited with what they were before."""
    changed = {name: value for name, value in changes.items() if value is not None and getattr(obj, name) != value}
    if not changed:
        return
    before = {name: getattr(obj, name) for name in changed}
    for name, value in changed.items():
        setattr(obj, name, value)
    obj.save(update_fields=list(changed))
    _audit(actor=actor, action="update", obj=obj, key=key, before=before, after=changed)
