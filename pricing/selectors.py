"""Reads of the catalog. `catalog_snapshot()` is the one the hot paths use: served from memory and the cache."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import Prefetch

from pricing.catalog import (
    CatalogSnapshot,
    FeatureCostVersion,
    FeatureEntry,
    ModelEntry,
    ModelPriceVersion,
    OperationLimitEntry,
    PlanEntry,
    PlanTermsVersion,
    RateVersion,
)
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

GENERATION_KEY = "pricing:catalog:generation"
SNAPSHOT_KEY = "pricing:catalog:snapshot:{generation}"


def catalog_snapshot_build() -> CatalogSnapshot:
    """Build a snapshot of every catalog version from the database (a handful of queries)."""
    prices: dict[int, list[ModelPriceVersion]] = defaultdict(list)
    for p in ModelPrice.objects.order_by("effective_from", "id"):
        prices[p.model_id].append(
            ModelPriceVersion(
                id=p.pk,
                effective_from=p.effective_from,
                input_per_million=p.input_per_million,
                cached_input_per_million=(
                    p.cached_input_per_million if p.cached_input_per_million is not None else p.input_per_million
                ),
                output_per_million=p.output_per_million,
                image_price=p.image_price,
            )
        )
    models = {
        m.model_id: ModelEntry(
            model_id=m.model_id,
            display_name=m.display_name,
            provider=m.provider,
            is_active=m.is_active,
            allowed_tiers=frozenset(m.allowed_tiers or ()),
            prices=tuple(prices[m.pk]),
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


@dataclass
class _Local:
    generation: int | None = None
    snapshot: CatalogSnapshot | None = None
    loaded_at: float = 0.0


_local = _Local()
_local_lock = threading.Lock()


def catalog_generation() -> int:
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        # first use, or the cache was flushed: start a generation no process can have cached
        cache.add(GENERATION_KEY, time.time_ns())
        generation = cache.get(GENERATION_KEY)
    return int(generation)


def catalog_snapshot() -> CatalogSnapshot:
    """The catalog with every version, shared through the cache for PRICING_CACHE_TTL_SECONDS.

    Each call costs one cache read (the generation number); a committed catalog write bumps the generation, so
    every process, on Redis, sees the change on its next call.
    """
    generation = catalog_generation()
    ttl = settings.PRICING_CACHE_TTL_SECONDS
    with _local_lock:
        if (
            _local.snapshot is not None
            and _local.generation == generation
            and time.monotonic() - _local.loaded_at < ttl
        ):
            return _local.snapshot
    key = SNAPSHOT_KEY.format(generation=generation)
    snapshot = cache.get(key)
    if snapshot is None:
        snapshot = catalog_snapshot_build()
        cache.set(key, snapshot, timeout=ttl)
    with _local_lock:
        _local.generation, _local.snapshot, _local.loaded_at = generation, snapshot, time.monotonic()
    return snapshot


def catalog_cache_invalidate() -> None:
    """Make every process rebuild its snapshot on its next use."""
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # no generation yet: nobody has a snapshot cached
        cache.delete(GENERATION_KEY)
    with _local_lock:
        _local.snapshot = None
