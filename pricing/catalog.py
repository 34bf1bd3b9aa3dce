"""A catalog snapshot: every version of every price, in plain immutable objects, so rating needs no database.

A snapshot holds the versions rather than the prices in force, so one cached snapshot rates an event at the prices
of its own time and a new version takes effect exactly at its `effective_from`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import TypeVar

from pricing.errors import InactiveModel, NoPriceInForce, UnknownFeature, UnknownModel, UnknownPlan

V = TypeVar("V", bound="_Versioned")


def _version_at(versions: tuple[V, ...], at: datetime) -> V | None:
    """The version in force at `at`: the latest whose effective_from <= at. Versions are sorted ascending."""
    index = bisect.bisect_right([v.effective_from for v in versions], at)
    return versions[index - 1] if index else None


@dataclass(frozen=True, slots=True)
class _Versioned:
    id: int
    effective_from: datetime


@dataclass(frozen=True, slots=True)
class ModelPriceVersion(_Versioned):
    input_per_million: Decimal
    cached_input_per_million: Decimal
    output_per_million: Decimal
    image_price: Decimal


@dataclass(frozen=True, slots=True)
class ModelEntry:
    model_id: str
    display_name: str
    provider: str
    is_active: bool
    allowed_tiers: frozenset[str]
    prices: tuple[ModelPriceVersion, ...]

    def allows(self, tier: str) -> bool:
        return not self.allowed_tiers or tier in self.allowed_tiers

    def price_at(self, at: datetime) -> ModelPriceVersion:
        version = _version_at(self.prices, at)
        if version is None:
            raise NoPriceInForce(f"model {self.model_id!r} has no price in force at {at.isoformat()}")
        return version


@dataclass(frozen=True, slots=True)
class FeatureCostVersion(_Versioned):
    cost_type: str
    cost_usd: Decimal
    cepo_multiplier: Decimal
    is_billable: bool
    tier_multipliers: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class FeatureEntry:
    feature_key: str
    display_name: str
    is_active: bool
    costs: tuple[FeatureCostVersion, ...]

    def cost_at(self, at: datetime) -> FeatureCostVersion:
        version = _version_at(self.costs, at)
        if version is None:
            raise NoPriceInForce(f"feature {self.feature_key!r} has no cost in force at {at.isoformat()}")
        return version


@dataclass(frozen=True, slots=True)
class RateVersion(_Versioned):
    rate: Decimal


@dataclass(frozen=True, slots=True)
class PlanTermsVersion(_Versioned):
    plan_code: str
    family: str
    interval: str
    fee: Decimal
    currency: str
    unit: str
    included_units: Decimal | None
    overage_rate: Decimal
    monthly_spend_cap: Decimal | None
    overage_allowed: bool
    max_overage_pct: Decimal | None
    hard_limit: bool
    markup: Decimal
    requests_per_hour: int | None
    alert_thresholds: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PlanEntry:
    code: str
    name: str
    family: str
    is_public: bool
    is_active: bool
    stripe_price_monthly: str
    stripe_price_yearly: str
    terms: tuple[PlanTermsVersion, ...]

    def terms_at(self, at: datetime) -> PlanTermsVersion:
        version = _version_at(self.terms, at)
        if version is None:
            raise NoPriceInForce(f"plan {self.code!r} has no terms in force at {at.isoformat()}")
        return version


@dataclass(frozen=True, slots=True)
class OperationLimitEntry:
    plan_code: str | None
    operation_type: str
    max_input_tokens: int | None
    max_output_tokens: int | None
    max_total_tokens: int | None
    max_daily_cost_usd: Decimal | None
    max_monthly_cost_usd: Decimal | None
    alert_threshold_pct: int


@dataclass(frozen=True)
class CatalogSnapshot:
    models: Mapping[str, ModelEntry] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    features: Mapping[str, FeatureEntry] = field(default_factory=dict)
    rates: Mapping[str, tuple[RateVersion, ...]] = field(default_factory=dict)
    plans: Mapping[str, PlanEntry] = field(default_factory=dict)
    operation_limits: tuple[OperationLimitEntry, ...] = ()

    @cached_property
    def terms_by_id(self) -> Mapping[int, PlanTermsVersion]:
        """Every plan terms version by its id: a period names its terms, and recording reads them from here."""
        return {t.id: t for plan in self.plans.values() for t in plan.terms}

    def find_model(self, name: str) -> ModelEntry:
        """The model named by its id or an alias, active or not; UnknownModel when the catalog has neither."""
        entry = self.models.get(name) or self.models.get(self.aliases.get(name, ""))
        if entry is None:
            raise UnknownModel(f"unknown model {name!r}")
        return entry

    def active_model(self, name: str) -> ModelEntry:
        entry = self.find_model(name)
        if not entry.is_active:
            raise InactiveModel(f"model {entry.model_id!r} is not active")
        return entry

    def feature(self, key: str) -> FeatureEntry:
        entry = self.features.get(key)
        if entry is None or not entry.is_active:
            raise UnknownFeature(f"unknown feature {key!r}")
        return entry

    def rate_at(self, currency: str, at: datetime) -> RateVersion:
        if currency == "USD":
            return RateVersion(id=0, effective_from=datetime.min.replace(tzinfo=at.tzinfo), rate=Decimal(1))
        version = _version_at(self.rates.get(currency, ()), at)
        if version is None:
            raise NoPriceInForce(f"no USD->{currency} rate in force at {at.isoformat()}")
        return version

    def plan(self, code: str) -> PlanEntry:
        entry = self.plans.get(code)
        if entry is None:
            raise UnknownPlan(f"unknown plan {code!r}")
        return entry

    def operation_limit(self, *, plan_code: str, operation_type: str) -> OperationLimitEntry | None:
        """The plan's own limit for the operation, else the global one, else None."""
        fallback = None
        for limit in self.operation_limits:
            if limit.operation_type != operation_type:
                continue
            if limit.plan_code == plan_code:
                return limit
            if limit.plan_code is None:
                fallback = limit
        return fallback
