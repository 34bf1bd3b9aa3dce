"""Catalog reads for the HTTP API and the price import: the price, cost and rate lists in force at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pricing.catalog import CatalogSnapshot, ModelPriceVersion
from pricing.dimensions import DIMENSIONS
from pricing.errors import NoPriceInForce
from pricing.money import CREDITS, precise
from pricing.selectors.snapshot_cache import catalog_snapshot


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
