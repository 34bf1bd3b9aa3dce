"""Reads of the catalog. `catalog_snapshot()` is the one the hot paths use: served from memory and the cache."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Prefetch

from core.cache import CACHE_ERRORS, cache_is_down, cache_mark_down
from pricing.catalog import (
    CatalogSnapshot,
    FeatureCostVersion,
    FeatureEntry,
    ModelEntry,
    ModelPriceVersion,
    OffPeakWindow,
    OperationLimitEntry,
    PlanEntry,
    PlanTermsVersion,
    RateVersion,
    TierPrices,
)
from pricing.dimensions import DIMENSIONS, OVERRIDABLE_PRICE_FIELDS
from pricing.errors import NoPriceInForce
from pricing.models import (
    AIModel,
    ExchangeRate,
    Feature,
    FeatureCost,
    ModelAlias,
    ModelPrice,
    OperationLimit,
    Plan,
    PlanTerms,
)
from pricing.money import CREDITS, precise

logger = logging.getLogger("tokenledger.pricing")

GENERATION_KEY = "pricing:catalog:generation"
SNAPSHOT_KEY = "pricing:catalog:snapshot:{generation}"


def _prices(values: Any) -> dict[str, Decimal]:
    return {key: Decimal(str(amount)) for key, amount in values.items() if key in OVERRIDABLE_PRICE_FIELDS}


def _minute(clock: str) -> int:
    return int(clock[:2]) * 60 + int(clock[3:5])


def model_price_version(p: ModelPrice) -> ModelPriceVersion:
    """A stored price version as the snapshot holds it: Decimals, tuples and read-only mappings."""
    own = {name: getattr(p, name) for name in OVERRIDABLE_PRICE_FIELDS}
    if own["cached_input_per_million"] is None:
        own["cached_input_per_million"] = p.input_per_million
    return ModelPriceVersion(
        id=p.pk,
        effective_from=p.effective_from,
        **own,
        cached_input_is_fallback=p.cached_input_per_million is None,
        image_prices={key: Decimal(str(amount)) for key, amount in (p.image_prices or {}).items()},
        tiers=tuple(
            TierPrices(above_input_tokens=int(tier["above_input_tokens"]), prices=_prices(tier))
            for tier in sorted(p.tiers or [], key=lambda tier: int(tier["above_input_tokens"]))
        ),
        service_tiers={name: _prices(values) for name, values in (p.service_tiers or {}).items()},
        off_peak=tuple(
            OffPeakWindow(start_minute=_minute(w["start"]), end_minute=_minute(w["end"]), prices=_prices(w))
            for w in p.off_peak or []
        ),
    )


def catalog_snapshot_build() -> CatalogSnapshot:
    """Build a snapshot of every catalog version from the database (a handful of queries)."""
    prices: dict[int, list[ModelPriceVersion]] = defaultdict(list)
    for p in ModelPrice.objects.order_by("effective_from", "id"):
        prices[p.model_id].append(model_price_version(p))
    models = {
        m.model_id: ModelEntry(
            model_id=m.model_id,
            display_name=m.display_name,
            provider=m.provider,
            is_active=m.is_active,
            allowed_tiers=frozenset(m.allowed_tiers or ()),
            prices=tuple(prices[m.pk]),
            mode=m.mode,
            max_input_tokens=m.max_input_tokens,
            max_output_tokens=m.max_output_tokens,
        )
        for m in AIModel.objects.all()
    }
    aliases = dict(ModelAlias.objects.values_list("alias", "model__model_id"))

    costs: dict[int, list[FeatureCostVersion]] = defaultdict(list)
    cost_rows = FeatureCost.objects.order_by("effective_from", "id").prefetch_related(Prefetch("tier_multipliers"))
    for c in cost_rows:
        costs[c.feature_id].append(
            FeatureCostVersion(
                id=c.pk,
                effective_from=c.effective_from,
                cost_type=c.cost_type,
                cost_usd=c.cost_usd,
                cepo_multiplier=c.cepo_multiplier,
                is_billable=c.is_billable,
                tier_multipliers={t.tier: t.multiplier for t in c.tier_multipliers.all()},
            )
        )
    features = {
        f.feature_key: FeatureEntry(
            feature_key=f.feature_key, display_name=f.display_name, is_active=f.is_active, costs=tuple(costs[f.pk])
        )
        for f in Feature.objects.all()
    }

    rates: dict[str, list[RateVersion]] = defaultdict(list)
    for r in ExchangeRate.objects.order_by("effective_from", "id"):
        rates[r.currency].append(RateVersion(id=r.pk, effective_from=r.effective_from, rate=r.rate))

    terms: dict[int, list[PlanTermsVersion]] = defaultdict(list)
    for t in PlanTerms.objects.select_related("plan").order_by("effective_from", "id"):
        terms[t.plan_id].append(plan_terms_version(t))
    plans = {
        p.code: PlanEntry(
            code=p.code,
            name=p.name,
            family=p.family,
            is_public=p.is_public,
            is_active=p.is_active,
            stripe_price_monthly=p.stripe_price_monthly,
            stripe_price_yearly=p.stripe_price_yearly,
            terms=tuple(terms[p.pk]),
        )
        for p in Plan.objects.all()
    }
    limits = tuple(
        OperationLimitEntry(
            plan_code=limit.plan.code if limit.plan else None,
            operation_type=limit.operation_type,
            max_input_tokens=limit.max_input_tokens,
            max_output_tokens=limit.max_output_tokens,
            max_total_tokens=limit.max_total_tokens,
            max_daily_cost_usd=limit.max_daily_cost_usd,
            max_monthly_cost_usd=limit.max_monthly_cost_usd,
            alert_threshold_pct=limit.alert_threshold_pct,
        )
        for limit in OperationLimit.objects.select_related("plan")
    )
    return CatalogSnapshot(
        models=models,
        aliases=aliases,
        features=features,
        rates={k: tuple(v) for k, v in rates.items()},
        plans=plans,
        operation_limits=limits,
    )


def plan_terms_version(t: PlanTerms) -> PlanTermsVersion:
    return PlanTermsVersion(
        id=t.pk,
        effective_from=t.effective_from,
        plan_code=t.plan.code,
        family=t.plan.family,
        interval=t.interval,
        fee=t.fee,
        currency=t.currency,
        unit=t.unit,
        included_units=t.included_units,
        overage_rate=t.overage_rate,
        monthly_spend_cap=t.monthly_spend_cap,
        overage_allowed=t.overage_allowed,
        max_overage_pct=t.max_overage_pct,
        hard_limit=t.hard_limit,
        markup=t.markup,
        requests_per_hour=t.requests_per_hour,
        alert_thresholds=tuple(int(x) for x in (t.alert_thresholds or ())),
    )


def plan_terms_by_id(*, terms_id: int, snapshot: CatalogSnapshot) -> PlanTermsVersion:
    """A plan terms version by id: from the catalog snapshot, which holds every version; from the database only
    for one written after the snapshot was taken."""
    in_snapshot = snapshot.terms_by_id.get(terms_id)
    if in_snapshot is not None:
        return in_snapshot
    return plan_terms_version(PlanTerms.objects.select_related("plan").get(pk=terms_id))


@dataclass
class _Local:
    generation: int | None = None
    snapshot: CatalogSnapshot | None = None
    loaded_at: float = 0.0
    # a catalog write committed while the cache was down: bump the shared generation once it is back
    invalidation_pending: bool = False


_local = _Local()
_local_lock = threading.Lock()


def catalog_generation() -> int:
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        # first use, or the cache was flushed: start a generation no process can have cached
        # a random start no process can hold a snapshot for (the clock may be frozen in tests)
        cache.add(GENERATION_KEY, secrets.randbits(60), timeout=None)
        generation = cache.get(GENERATION_KEY)
    return int(generation)


def catalog_snapshot() -> CatalogSnapshot:
    """The catalog with every version, shared through the cache for PRICING_CACHE_TTL_SECONDS.

    Each call costs one cache read (the generation number); a committed catalog write bumps the generation, so
    every process, on Redis, sees the change on its next call. Without the cache (Redis down) it serves the
    process's last snapshot while it is younger than the TTL, else one rebuilt from the database.
    """
    if cache_is_down():
        return _catalog_snapshot_uncached()
    try:
        if _local.invalidation_pending:
            _generation_bump()
            _local.invalidation_pending = False
        generation = catalog_generation()
    except CACHE_ERRORS:
        logger.warning("catalog: the cache is unreachable; the catalog is served from the database")
        cache_mark_down()
        return _catalog_snapshot_uncached()
    ttl = settings.PRICING_CACHE_TTL_SECONDS
    with _local_lock:
        if (
            _local.snapshot is not None
            and _local.generation == generation
            and time.monotonic() - _local.loaded_at < ttl
        ):
            return _local.snapshot
    key = SNAPSHOT_KEY.format(generation=generation)
    try:
        snapshot = cache.get(key)
    except CACHE_ERRORS:
        cache_mark_down()
        return _catalog_snapshot_uncached()
    if snapshot is None:
        snapshot = catalog_snapshot_build()
        try:
            cache.set(key, snapshot, timeout=ttl)
        except CACHE_ERRORS:
            cache_mark_down()
    with _local_lock:
        _local.generation, _local.snapshot, _local.loaded_at = generation, snapshot, time.monotonic()
    return snapshot


def _catalog_snapshot_uncached() -> CatalogSnapshot:
    """The process's last snapshot while younger than the TTL, else a new one from the database.

    Kept with no generation, so the first call that reaches the cache again reloads the shared one.
    """
    with _local_lock:
        if _local.snapshot is not None and time.monotonic() - _local.loaded_at < settings.PRICING_CACHE_TTL_SECONDS:
            return _local.snapshot
    snapshot = catalog_snapshot_build()
    with _local_lock:
        _local.generation, _local.snapshot, _local.loaded_at = None, snapshot, time.monotonic()
    return snapshot


def _generation_bump() -> None:
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # no generation yet: nobody has a snapshot cached
        cache.delete(GENERATION_KEY)


def catalog_cache_invalidate() -> None:
    """Make every process rebuild its snapshot on its next use.

    With the cache down, this process drops its snapshot at once and bumps the shared generation when the cache
    answers again; other processes see the change when their own snapshot outlives the TTL.
    """
    with _local_lock:
        _local.snapshot = None
    try:
        _generation_bump()
    except CACHE_ERRORS:
        logger.warning("catalog: the cache is unreachable; other processes see this change within the TTL")
        cache_mark_down()
        _local.invalidation_pending = True


# --- Catalog reads for the HTTP API and the price import -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelPriceRow:
    """An active model with the price in force, in USD and in credits (None when no CREDITS rate is in force)."""

    model_id: str
    display_name: str
    provider: str
    allowed_tiers: tuple[str, ...]
    effective_from: datetime
    input_per_million: Decimal
    cached_input_per_million: Decimal
    output_per_million: Decimal
    image_price: Decimal
    input_credits_per_million: Decimal | None
    cached_input_credits_per_million: Decimal | None
    output_credits_per_million: Decimal | None
    image_credits_per_unit: Decimal | None
    mode: str = "chat"
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    prices: dict[str, Any] = field(default_factory=dict)


def price_dimensions_shown(*, mode: str, price: ModelPriceVersion) -> dict[str, Any]:
    """The priced dimensions of a version as the API shows them: each price the model's mode uses (or that is set
    to more than 0), then image_prices, tiers, service_tiers and off_peak when set. Amounts stay Decimals."""
    shown: dict[str, Any] = {}
    for dimension in DIMENSIONS:
        value = price.base[dimension.price_field]
        if value is not None and (mode in dimension.modes or value != 0):
            shown[dimension.price_field] = value
    if price.image_prices:
        shown["image_prices"] = {size: amount for size, amount in price.image_prices.items()}
    if price.tiers:
        shown["tiers"] = [
            {"above_input_tokens": tier.above_input_tokens, **{k: v for k, v in tier.prices.items()}}
            for tier in price.tiers
        ]
    if price.service_tiers:
        shown["service_tiers"] = {
            name: {k: v for k, v in prices.items()} for name, prices in price.service_tiers.items()
        }
    if price.off_peak:
        shown["off_peak"] = [
            {"start": f"{w.start_minute // 60:02d}:{w.start_minute % 60:02d}",
             "end": f"{w.end_minute // 60:02d}:{w.end_minute % 60:02d}",
             **{k: v for k, v in w.prices.items()}}
            for w in price.off_peak
        ]  # fmt: skip
    return shown


@dataclass(frozen=True, slots=True)
class FeatureCostRow:
    feature_key: str
    display_name: str
    effective_from: datetime
    cost_type: str
    cost_usd: Decimal
    cost_credits: Decimal | None
    tier_multipliers: dict[str, Decimal]
    cepo_multiplier: Decimal
    is_billable: bool


@dataclass(frozen=True, slots=True)
class ExchangeRateRow:
    currency: str
    rate: Decimal
    effective_from: datetime


def _credits_rate_at(snapshot: CatalogSnapshot, at: datetime) -> Decimal | None:
    try:
        return snapshot.rate_at(CREDITS, at).rate
    except NoPriceInForce:
        return None


def _in_credits(amount: Decimal, rate: Decimal | None) -> Decimal | None:
    # a display value: rounded once, to the stored precision
    return precise(amount * rate) if rate is not None else None


def model_price_list(*, at: datetime, tier: str | None = None) -> list[ModelPriceRow]:
    """Active models with a price in force at `at`, those the plan `tier` may use when it is given.

    Raises UnknownPlan for a tier the catalog does not have. A model without a price in force cannot be rated, so it
    is left out rather than shown at $0.
    """
    snapshot = catalog_snapshot()
    if tier is not None:
        snapshot.plan(tier)
    credits_rate = _credits_rate_at(snapshot, at)
    rows = []
    for entry in sorted(snapshot.models.values(), key=lambda m: m.model_id):
        if not entry.is_active or (tier is not None and not entry.allows(tier)):
            continue
        try:
            price = entry.price_at(at)
        except NoPriceInForce:
            continue
        rows.append(
            ModelPriceRow(
                model_id=entry.model_id,
                display_name=entry.display_name,
                provider=entry.provider,
                allowed_tiers=tuple(sorted(entry.allowed_tiers)),
                effective_from=price.effective_from,
                input_per_million=price.input_per_million,
                cached_input_per_million=price.cached_input_per_million,
                output_per_million=price.output_per_million,
                image_price=price.image_price,
                input_credits_per_million=_in_credits(price.input_per_million, credits_rate),
                cached_input_credits_per_million=_in_credits(price.cached_input_per_million, credits_rate),
                output_credits_per_million=_in_credits(price.output_per_million, credits_rate),
                image_credits_per_unit=_in_credits(price.image_price, credits_rate),
                mode=entry.mode,
                max_input_tokens=entry.max_input_tokens,
                max_output_tokens=entry.max_output_tokens,
                prices=price_dimensions_shown(mode=entry.mode, price=price),
            )
        )
    return rows


def feature_cost_list(*, at: datetime) -> list[FeatureCostRow]:
    """Active features with the cost in force at `at`, billable or not (`is_billable` says which).

    `cost_credits` is the cost at the CREDITS rate; None for a `multiplier` feature, whose cost_usd is a factor.
    """
    snapshot = catalog_snapshot()
    credits_rate = _credits_rate_at(snapshot, at)
    rows = []
    for entry in sorted(snapshot.features.values(), key=lambda f: f.feature_key):
        if not entry.is_active:
            continue
        try:
            cost = entry.cost_at(at)
        except NoPriceInForce:
            continue
        rows.append(
            FeatureCostRow(
                feature_key=entry.feature_key,
                display_name=entry.display_name,
                effective_from=cost.effective_from,
                cost_type=cost.cost_type,
                cost_usd=cost.cost_usd,
                cost_credits=None if cost.cost_type == "multiplier" else _in_credits(cost.cost_usd, credits_rate),
                tier_multipliers=dict(sorted(cost.tier_multipliers.items())),
                cepo_multiplier=cost.cepo_multiplier,
                is_billable=cost.is_billable,
            )
        )
    return rows


def exchange_rate_list(*, at: datetime) -> list[ExchangeRateRow]:
    """The USD->currency rates (CREDITS included) in force at `at`, one per currency."""
    snapshot = catalog_snapshot()
    rows = []
    for currency in sorted(snapshot.rates):
        try:
            version = snapshot.rate_at(currency, at)
        except NoPriceInForce:
            continue
        rows.append(ExchangeRateRow(currency=currency, rate=version.rate, effective_from=version.effective_from))
    return rows


def catalog_next_change(*, at: datetime) -> datetime | None:
    """When the next version already in the catalog takes effect after `at` (None: none is scheduled).

    Lets a reader cache prices in force only until a scheduled price change starts.
    """
    snapshot = catalog_snapshot()
    starts: list[datetime] = []
    for model in snapshot.models.values():
        starts.extend(v.effective_from for v in model.prices)
    for feature in snapshot.features.values():
        starts.extend(v.effective_from for v in feature.costs)
    for versions in snapshot.rates.values():
        starts.extend(v.effective_from for v in versions)
    return min((start for start in starts if start > at), default=None)


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
