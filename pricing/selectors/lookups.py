"""Catalog rows by their key, and the values of a feature's cost or a plan's terms in force at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pricing.models import AIModel, Feature, ModelAlias, ModelPrice, Plan
from pricing.selectors.snapshot_cache import catalog_snapshot


def plan_codes() -> frozenset[str]:
    return frozenset(catalog_snapshot().plans)


def model_by_id(*, model_id: str) -> AIModel | None:
    return AIModel.objects.filter(model_id=model_id).first()


def model_aliases(*, model: AIModel) -> list[str]:
    return list(model.aliases.order_by("alias").values_list("alias", flat=True))


def model_alias_owner(*, alias: str) -> str | None:
    """The model_id an alias names, or None."""
    return ModelAlias.objects.filter(alias=alias).values_list("model__model_id", flat=True).first()


def feature_by_key(*, feature_key: str) -> Feature | None:
    return Feature.objects.filter(feature_key=feature_key).first()


def plan_by_code(*, code: str) -> Plan | None:
    return Plan.objects.filter(code=code).first()


def model_price_in_force(*, model: AIModel, at: datetime) -> ModelPrice | None:
    """The model's price version in force at `at`, straight from the database (cached input may be None)."""
    return model.prices.filter(effective_from__lte=at).order_by("-effective_from", "-id").first()


def feature_cost_values_at(*, feature: Feature, at: datetime) -> dict[str, Any]:
    """The cost version in force at `at` as feature_cost_set's arguments ({} when none is in force)."""
    version = (
        feature.costs.filter(effective_from__lte=at)
        .prefetch_related("tier_multipliers")
        .order_by("-effective_from", "-id")
        .first()
    )
    if version is None:
        return {}
    return {
        "cost_type": version.cost_type,
        "cost_usd": version.cost_usd,
        "tier_multipliers": {t.tier: t.multiplier for t in version.tier_multipliers.all()},
        "cepo_multiplier": version.cepo_multiplier,
        "is_billable": version.is_billable,
    }


PLAN_TERM_NAMES = (
    "interval", "fee", "currency", "unit", "included_units", "overage_rate", "monthly_spend_cap", "overage_allowed",
    "max_overage_pct", "hard_limit", "markup", "requests_per_hour", "alert_thresholds",
)  # fmt: skip


def plan_terms_values_at(*, plan: Plan, at: datetime) -> dict[str, Any]:
    """The plan's terms in force at `at` as plan_terms_set's arguments ({} when none are in force)."""
    version = plan.terms.filter(effective_from__lte=at).order_by("-effective_from", "-id").first()
    if version is None:
        return {}
    return {name: getattr(version, name) for name in PLAN_TERM_NAMES}
