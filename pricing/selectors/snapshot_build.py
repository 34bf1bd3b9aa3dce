"""The catalog snapshot built from the database: every model, feature, rate and plan with all its versions,
read in a fixed number of queries."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch

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
from pricing.dimensions import OVERRIDABLE_PRICE_FIELDS
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
