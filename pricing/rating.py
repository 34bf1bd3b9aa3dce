"""Rating: pure functions from a usage line, a catalog snapshot and a plan to money. No database access.

- Provider cost: uncached input, cached input and output tokens each at their own rate per 1M, images at the
  image price, billable features at their cost. `cached_input_tokens` is part of `input_tokens` and
  `reasoning_tokens` part of `output_tokens`: each token is priced once. The event's `multiplier` (>= 1, e.g. an
  OptiLLM run that made several provider calls) scales the token cost.
- Customer charge: cost x the plan's markup, with each feature's tier multiplier (and CePO multiplier when the
  request used CePO); a `multiplier` feature scales the token charge instead of adding a cost.
- Credits: the charge x the USD->CREDITS rate in force when the event occurred.
Amounts keep full precision and are rounded once, to 12 decimal places, when the rating is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from pricing.catalog import CatalogSnapshot, PlanTermsVersion
from pricing.errors import InvalidUsage, ModelNotAllowed
from pricing.models import CostType
from pricing.money import CREDITS, USD, Money, MoneyError, precise, to_decimal

MILLION = Decimal(1_000_000)
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class FeatureUse:
    key: str
    quantity: Decimal = ONE
    cepo: bool = False


@dataclass(frozen=True, slots=True)
class UsageLine:
    model: str
    occurred_at: datetime
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    images: int = 0
    features: tuple[FeatureUse, ...] = ()
    multiplier: Decimal = ONE


@dataclass(frozen=True, slots=True)
class Rating:
    model_id: str
    cost_usd: Decimal
    charge_usd: Decimal
    credits: Decimal
    credits_rate: Decimal
    breakdown: dict[str, Decimal]
    price_version_id: int
    feature_version_ids: dict[str, int] = field(default_factory=dict)
    credits_rate_version_id: int = 0

    @property
    def cost(self) -> Money:
        return Money(self.cost_usd, USD)

    @property
    def charge(self) -> Money:
        return Money(self.charge_usd, USD)


def _validate(line: UsageLine) -> None:
    counts = {
        "input_tokens": line.input_tokens,
        "output_tokens": line.output_tokens,
        "cached_input_tokens": line.cached_input_tokens,
        "reasoning_tokens": line.reasoning_tokens,
        "images": line.images,
    }
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidUsage(f"{name} must be a whole number >= 0, got {value!r}")
    if line.cached_input_tokens > line.input_tokens:
        raise InvalidUsage("cached_input_tokens cannot exceed input_tokens (cached tokens are part of the input)")
    if line.reasoning_tokens > line.output_tokens:
        raise InvalidUsage("reasoning_tokens cannot exceed output_tokens (reasoning tokens are part of the output)")
    if not isinstance(line.occurred_at, datetime) or line.occurred_at.utcoffset() is None:
        raise InvalidUsage(f"occurred_at must be an aware datetime, got {line.occurred_at!r}")
    # a float or NaN is refused by the money type; here it makes a bad usage line like any other, not a crash
    try:
        multiplier = to_decimal(line.multiplier)
        quantities = [(use.key, to_decimal(use.quantity)) for use in line.features]
    except MoneyError as exc:
        raise InvalidUsage(f"multiplier and feature quantities must be Decimals: {exc}") from None
    if multiplier < ONE:
        raise InvalidUsage(f"multiplier must be >= 1, got {line.multiplier}")
    for key, quantity in quantities:
        if quantity < 0:
            raise InvalidUsage(f"feature {key!r} quantity must be >= 0")
    # a key listed twice would compound a multiplier feature; a feature used twice says so with its quantity
    keys = [use.key for use in line.features]
    if len(set(keys)) != len(keys):
        raise InvalidUsage("each feature is listed once; a feature used several times carries a quantity")


def rate_usage(
    line: UsageLine, snapshot: CatalogSnapshot, *, tier: str, terms: PlanTermsVersion | None = None
) -> Rating:
    """Rate one usage line at the catalog's prices at `line.occurred_at` for a plan (tier) and its terms.

    Raises a PricingError subclass, never rates at $0: unknown or inactive model, model not allowed for the tier,
    unknown feature, no price in force, or numbers out of range.
    """
    _validate(line)
    at = line.occurred_at
    model = snapshot.active_model(line.model)
    if not model.allows(tier):
        raise ModelNotAllowed(f"model {model.model_id!r} is not available on the {tier!r} plan")
    price = model.price_at(at)

    uncached = Decimal(line.input_tokens - line.cached_input_tokens)
    multiplier = to_decimal(line.multiplier)
    breakdown = {
        "input": uncached * price.input_per_million / MILLION * multiplier,
        "cached_input": Decimal(line.cached_input_tokens) * price.cached_input_per_million / MILLION * multiplier,
        "output": Decimal(line.output_tokens) * price.output_per_million / MILLION * multiplier,
        "images": Decimal(line.images) * price.image_price,
    }
    token_cost = breakdown["input"] + breakdown["cached_input"] + breakdown["output"]
    token_charge_factor = ONE
    feature_charge = Decimal(0)
    feature_versions: dict[str, int] = {}
    for use in line.features:
        cost = snapshot.feature(use.key).cost_at(at)
        feature_versions[use.key] = cost.id
        if cost.cost_type != CostType.PER_USE and to_decimal(use.quantity) != ONE:
            raise InvalidUsage(f"feature {use.key!r} is priced {cost.cost_type}: only per_use features take a quantity")
        if not cost.is_billable:
            breakdown[f"feature:{use.key}"] = Decimal(0)
            continue
        cepo = cost.cepo_multiplier if use.cepo else ONE
        if cost.cost_type == CostType.MULTIPLIER:
            token_charge_factor *= cost.tier_multipliers.get(tier, cost.cost_usd) * cepo
            breakdown.setdefault(f"feature:{use.key}", Decimal(0))
            continue
        if cost.cost_type == CostType.PER_USE:
            amount = cost.cost_usd * to_decimal(use.quantity)
        elif cost.cost_type == CostType.PER_IMAGE:
            amount = cost.cost_usd * line.images
        else:  # per_token
            amount = cost.cost_usd * (line.input_tokens + line.output_tokens) / MILLION
        breakdown[f"feature:{use.key}"] = breakdown.get(f"feature:{use.key}", Decimal(0)) + amount
        feature_charge += amount * cost.tier_multipliers.get(tier, ONE) * cepo

    cost_usd = sum(breakdown.values(), Decimal(0))
    markup = terms.markup if terms is not None else ONE
    charge_usd = (token_cost * token_charge_factor + breakdown["images"] + feature_charge) * markup
    credits_rate = snapshot.rate_at(CREDITS, at)
    return Rating(
        model_id=model.model_id,
        cost_usd=precise(cost_usd),
        charge_usd=precise(charge_usd),
        credits=precise(charge_usd * credits_rate.rate),
        credits_rate=credits_rate.rate,
        breakdown={key: precise(value) for key, value in breakdown.items()},
        price_version_id=price.id,
        feature_version_ids=feature_versions,
        credits_rate_version_id=credits_rate.id,
    )


def usd_to(amount_usd: Decimal, currency: str, snapshot: CatalogSnapshot, at: datetime) -> Money:
    """A USD amount in `currency` (or CREDITS) at the rate in force at `at`, unrounded."""
    return Money(amount_usd, USD).convert(to=currency, rate=snapshot.rate_at(currency, at).rate)


@dataclass(frozen=True, slots=True)
class PlanCharge:
    plan_code: str
    units_used: Decimal
    included_units: Decimal | None
    overage_units: Decimal
    base: Money
    overage: Money
    cap: Money | None
    total: Money

    @property
    def cap_applied(self) -> bool:
        return self.cap is not None and self.base + self.overage > self.total


def plan_charge(terms: PlanTermsVersion, units_used: Decimal | int) -> PlanCharge:
    """The period's charge on a plan: the fee, overage at the plan's rate beyond the included units, then the cap.

    The monthly spend cap bounds the total (fee + overage). Unlimited plans (no included units) pay the fee plus
    every unit at the overage rate.
    """
    used = to_decimal(units_used)
    if used < 0:
        raise InvalidUsage("units used cannot be negative")
    included = terms.included_units
    overage_units = used if included is None else max(Decimal(0), used - included)
    base = Money(terms.fee, terms.currency)
    overage = Money(overage_units * terms.overage_rate, terms.currency)
    total = base + overage
    cap = Money(terms.monthly_spend_cap, terms.currency) if terms.monthly_spend_cap is not None else None
    if cap is not None and cap < total:
        total = cap if base <= cap else base
    return PlanCharge(
        plan_code=terms.plan_code,
        units_used=used,
        included_units=included,
        overage_units=overage_units,
        base=base,
        overage=overage,
        cap=cap,
        total=total,
    )


@dataclass(frozen=True, slots=True)
class PlanRecommendation:
    current: PlanCharge
    best: PlanCharge

    @property
    def monthly_saving(self) -> Money:
        return self.current.total - self.best.total

    @property
    def should_switch(self) -> bool:
        return self.best.plan_code != self.current.plan_code and self.monthly_saving.amount > 0


def plan_recommendation(
    current: PlanTermsVersion, candidates: Iterable[PlanTermsVersion], units_used: Decimal | int
) -> PlanRecommendation:
    """The cheapest plan of the current plan's family for this usage, and what it saves a month.

    Only candidates of the same family, unit and currency compare; ties keep the current plan.
    """
    now = plan_charge(current, units_used)
    best = now
    for terms in candidates:
        if (terms.family, terms.unit, terms.currency) != (current.family, current.unit, current.currency):
            continue
        charge = plan_charge(terms, units_used)
        if charge.total < best.total:
            best = charge
    return PlanRecommendation(current=now, best=best)
