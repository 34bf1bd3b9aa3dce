"""Writes to plans: create, update, new terms versions, and per-operation limits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from pricing.errors import CatalogValidationError
from pricing.models import OperationLimit, Plan, PlanTerms, PlanUnit
from pricing.money import CREDITS, CURRENCIES
from pricing.services.audit import Actor, _actor, _amount, _audit, _describe, _effective, _raise

PLAN_TERM_FIELDS = (
    "interval", "fee", "currency", "unit", "included_units", "overage_rate", "monthly_spend_cap", "overage_allowed",
    "max_overage_pct", "hard_limit", "markup", "requests_per_hour", "alert_thresholds",
)  # fmt: skip


@transaction.atomic
def plan_create(
    *,
    code: str,
    name: str,
    family: str,
    is_public: bool = True,
    stripe_price_monthly: str = "",
    stripe_price_yearly: str = "",
    actor: Actor = None,
) -> Plan:
    try:
        with transaction.atomic():
            plan = Plan.objects.create(
                code=code, name=name, family=family, is_public=is_public,
                stripe_price_monthly=stripe_price_monthly, stripe_price_yearly=stripe_price_yearly,
            )  # fmt: skip
    except IntegrityError:
        raise CatalogValidationError(f"code: plan {code!r} already exists", fields={"code": "already exists"}) from None
    _audit(actor=actor, action="create", obj=plan, key=code, before=None, after={"name": name, "family": family})
    return plan


@transaction.atomic
def plan_update(
    *, plan: Plan, name: str | None = None, is_public: bool | None = None, is_active: bool | None = None,
    stripe_price_monthly: str | None = None, stripe_price_yearly: str | None = None, actor: Actor = None,
) -> Plan:  # fmt: skip
    """Rename a plan, show or hide it (`is_public`), or stop selling it (`is_active=False`: no new subscription or
    plan change to it; accounts on it keep it, period after period). Its terms are versions: see plan_terms_set."""
    if name is not None and not name.strip():
        raise CatalogValidationError("name: required", fields={"name": "required"})
    _describe(obj=plan, key=plan.code, actor=actor,
              changes={"name": name, "is_public": is_public, "is_active": is_active,
                       "stripe_price_monthly": stripe_price_monthly, "stripe_price_yearly": stripe_price_yearly})  # fmt: skip
    return plan


@transaction.atomic
def plan_terms_set(
    *,
    plan: Plan,
    effective_from: datetime | None = None,
    reason: str = "",
    actor: Actor = None,
    now: datetime | None = None,
    **terms: Any,
) -> PlanTerms:
    """Add a version of a plan's terms. Accounts pick it up when their next period opens (periods keep the terms
    they opened with), so a change never re-prices a period already running."""
    fields: dict[str, str] = {}
    now = now or timezone.now()
    unknown = set(terms) - set(PLAN_TERM_FIELDS)
    if unknown:
        fields.update({name: "unknown plan term" for name in sorted(unknown)})
    values: dict[str, Any] = {}
    for name in ("fee", "overage_rate"):
        if name in terms:
            values[name] = _amount(fields, name, terms[name])
    for name in ("included_units", "monthly_spend_cap", "max_overage_pct"):
        if name in terms:
            values[name] = None if terms[name] in (None, "") else _amount(fields, name, terms[name])
    if "markup" in terms:
        values["markup"] = _amount(fields, "markup", terms["markup"], strict=True)
    unit = terms.get("unit")
    if unit not in PlanUnit.values:
        fields["unit"] = f"must be one of {', '.join(PlanUnit.values)}"
    currency = terms.get("currency", "USD")
    if currency not in CURRENCIES or currency == CREDITS:
        fields["currency"] = f"unknown currency {currency!r}"
    thresholds = terms.get("alert_thresholds", [75, 90, 100])
    if not isinstance(thresholds, list | tuple) or not all(isinstance(t, int) and 0 < t <= 1000 for t in thresholds):
        fields["alert_thresholds"] = "a list of whole percentages, e.g. [75, 90, 100]"
    rph = terms.get("requests_per_hour")
    if rph is not None and (not isinstance(rph, int) or rph <= 0):
        fields["requests_per_hour"] = "a whole number > 0, or empty for no limit"
    start, backdated = _effective(fields, effective_from, reason, now)
    _raise(fields)
    for name in ("interval", "currency", "unit", "overage_allowed", "hard_limit", "requests_per_hour"):
        if name in terms:
            values[name] = terms[name]
    values["alert_thresholds"] = sorted(set(thresholds))
    try:
        with transaction.atomic():
            version = PlanTerms.objects.create(
                plan=plan, effective_from=start, backdated=backdated, reason=reason, set_by=_actor(actor), **values
            )
    except IntegrityError:
        raise CatalogValidationError(
            "effective_from: a version already starts at that time",
            fields={"effective_from": "a version already starts at that time"},
        ) from None
    _audit(actor=actor, action="terms_version", obj=version, key=plan.code, before=None,
           after={**values, "effective_from": start}, reason=reason)  # fmt: skip
    return version


@transaction.atomic
def operation_limit_set(
    *, plan: Plan | None, operation_type: str, actor: Actor = None, **limits: Any
) -> OperationLimit:
    """Set the limits for an operation type on a plan (or on all plans when `plan` is None)."""
    fields: dict[str, str] = {}
    for name in ("max_input_tokens", "max_output_tokens", "max_total_tokens"):
        value = limits.get(name)
        if value is not None and (not isinstance(value, int) or value <= 0):
            fields[name] = "a whole number > 0, or empty"
    for name in ("max_daily_cost_usd", "max_monthly_cost_usd"):
        if limits.get(name) not in (None, ""):
            limits[name] = _amount(fields, name, limits[name])
    _raise(fields)
    row, created = OperationLimit.objects.select_for_update().get_or_create(
        plan=plan, operation_type=operation_type, defaults=limits
    )
    before = None if created else {k: getattr(row, k) for k in limits}
    if not created:
        for name, value in limits.items():
            setattr(row, name, value)
        row.save()
    _audit(
        actor=actor,
        action="limits",
        obj=row,
        key=f"{plan.code if plan else '*'}:{operation_type}",
        before=before,
        after=limits,
    )
    return row
