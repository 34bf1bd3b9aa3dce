"""Writes to features and their cost versions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from pricing.errors import CatalogValidationError
from pricing.models import CostType, Feature, FeatureCost, FeatureTierMultiplier
from pricing.services.audit import Actor, _actor, _amount, _audit, _describe, _effective, _json, _raise


@transaction.atomic
def feature_create(*, feature_key: str, display_name: str, description: str = "", actor: Actor = None) -> Feature:
    try:
        with transaction.atomic():
            feature = Feature.objects.create(
                feature_key=feature_key, display_name=display_name, description=description
            )
    except IntegrityError:
        raise CatalogValidationError(
            f"feature_key: {feature_key!r} already exists", fields={"feature_key": "already exists"}
        ) from None
    _audit(
        actor=actor, action="create", obj=feature, key=feature_key, before=None, after={"display_name": display_name}
    )
    return feature


@transaction.atomic
def feature_update(
    *, feature: Feature, display_name: str | None = None, description: str | None = None,
    is_active: bool | None = None, actor: Actor = None,
) -> Feature:  # fmt: skip
    """Rename or describe a feature, or withdraw it (`is_active=False`: events that use it are refused as an
    unknown feature, and kept for replay) and bring it back. Its costs are versions: see feature_cost_set."""
    if display_name is not None and not display_name.strip():
        raise CatalogValidationError("display_name: required", fields={"display_name": "required"})
    _describe(obj=feature, key=feature.feature_key, actor=actor,
              changes={"display_name": display_name, "description": description, "is_active": is_active})  # fmt: skip
    return feature


@transaction.atomic
def feature_cost_set(
    *,
    feature: Feature,
    cost_type: str,
    cost_usd: object = "0",
    tier_multipliers: Mapping[str, object] | None = None,
    cepo_multiplier: object = "1",
    is_billable: bool = True,
    effective_from: datetime | None = None,
    reason: str = "",
    actor: Actor = None,
    now: datetime | None = None,
) -> FeatureCost:
    """Add a cost version for a feature. Multipliers (tier, CePO, and a `multiplier` feature's default) are > 0."""
    fields: dict[str, str] = {}
    now = now or timezone.now()
    if cost_type not in CostType.values:
        fields["cost_type"] = f"must be one of {', '.join(CostType.values)}"
    strict = cost_type == CostType.MULTIPLIER
    cost = _amount(fields, "cost_usd", cost_usd, strict=strict)
    cepo = _amount(fields, "cepo_multiplier", cepo_multiplier, strict=True)
    tiers = {}
    for tier, value in (tier_multipliers or {}).items():
        tiers[tier] = _amount(fields, f"tier_multipliers.{tier}", value, strict=True)
    start, backdated = _effective(fields, effective_from, reason, now)
    _raise(fields)
    try:
        with transaction.atomic():
            version = FeatureCost.objects.create(
                feature=feature, cost_type=cost_type, cost_usd=cost, cepo_multiplier=cepo, is_billable=is_billable,
                effective_from=start, backdated=backdated, reason=reason, set_by=_actor(actor),
            )  # fmt: skip
    except IntegrityError:
        raise CatalogValidationError(
            "effective_from: a version already starts at that time",
            fields={"effective_from": "a version already starts at that time"},
        ) from None
    FeatureTierMultiplier.objects.bulk_create(
        FeatureTierMultiplier(feature_cost=version, tier=tier, multiplier=m) for tier, m in tiers.items()
    )
    _audit(actor=actor, action="cost_version", obj=version, key=feature.feature_key, before=None,
           after={"cost_type": cost_type, "cost_usd": cost, "tier_multipliers": _json(tiers), "cepo_multiplier": cepo,
                  "is_billable": is_billable, "effective_from": start}, reason=reason)  # fmt: skip
    return version
