"""New exchange-rate versions."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from pricing.errors import CatalogValidationError
from pricing.models import ExchangeRate
from pricing.money import CURRENCIES
from pricing.services.audit import Actor, _actor, _amount, _audit, _effective, _raise


@transaction.atomic
def exchange_rate_set(
    *,
    currency: str,
    rate: object,
    effective_from: datetime | None = None,
    reason: str = "",
    actor: Actor = None,
    now: datetime | None = None,
) -> ExchangeRate:
    """Add a USD->currency (or USD->CREDITS) rate version. The rate is units of `currency` per 1 USD, > 0."""
    fields: dict[str, str] = {}
    now = now or timezone.now()
    currency = (currency or "").strip().upper()
    if currency not in CURRENCIES or currency == "USD":
        fields["currency"] = f"unknown currency {currency!r}; one of {', '.join(c for c in CURRENCIES if c != 'USD')}"
    value = _amount(fields, "rate", rate, strict=True)
    start, backdated = _effective(fields, effective_from, reason, now)
    _raise(fields)
    try:
        with transaction.atomic():
            version = ExchangeRate.objects.create(
                currency=currency,
                rate=value,
                effective_from=start,
                backdated=backdated,
                reason=reason,
                set_by=_actor(actor),
            )
    except IntegrityError:
        raise CatalogValidationError(
            "effective_from: a version already starts at that time",
            fields={"effective_from": "a version already starts at that time"},
        ) from None
    _audit(actor=actor, action="rate_version", obj=version, key=currency, before=None,
           after={"rate": value, "effective_from": start, "backdated": backdated}, reason=reason)  # fmt: skip
    return version
