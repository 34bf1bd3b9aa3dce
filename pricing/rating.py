"""Rating: pure functions from a usage line, a catalog snapshot and a plan to money. No database access.

- Provider cost: every token priced once, at the price of its part (docs/pricing-dimensions.md). Input splits
  into cache reads, 5-minute and 1-hour cache writes, image and audio input tokens and the rest (uncached); output
  into reasoning, image and audio output tokens and the rest. A part without a price of its own is priced at its
  fallback (cache reads, 5-minute writes, image and audio input at the input price; reasoning, image and audio
  output at the output price) and counted under that price's breakdown key; a part with no fallback (1-hour writes,
  seconds, characters, requests, an unknown service tier) is refused when used, never rated at $0.
- Which prices: the version in force at `occurred_at`; past a long-context tier's threshold (input tokens, the
  total) the whole request at that tier; then the service tier (batch, flex, priority) and an off-peak window,
  which, when a tier applies too, scale the tier's price by their own ratio to the base price.
- Images at their size/quality price (`image_prices`) or the per-image price; seconds, characters and requests at
  their unit prices; billable features at their cost. The event's `multiplier` (>= 1, e.g. an OptiLLM run that
  made several provider calls) scales the token cost.
- Customer charge: cost x the plan's markup, with each feature's tier multiplier (and CePO multiplier when the
  request used CePO); a `multiplier` feature scales the token charge instead of adding a cost.
- Credits: the charge x the USD->CREDITS rate in force when the event occurred.
Amounts keep full precision and are rounded once, to 12 decimal places, when the rating is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pricing.catalog import CatalogSnapshot, ModelPriceVersion, PlanTermsVersion, TierPrices
from pricing.dimensions import SERVICE_TIERS
from pricing.errors import InvalidUsage, ModelNotAllowed, UnpricedDimension
from pricing.models import CostType
from pricing.money import CREDITS, USD, Money, MoneyError, precise, to_decimal

MILLION = Decimal(1_000_000)
ONE = Decimal(1)
ZERO = Decimal(0)
DEFAULT_SERVICE_TIER = "default"


@dataclass(frozen=True, slots=True)
class FeatureUse:
    key: str
    quantity: Decimal = ONE
    cepo: bool = False


@dataclass(frozen=True, slots=True)
class UsageLine:
    """One provider call's counts. The cache, image and audio input counts are parts of `input_tokens`; the
    reasoning, image and audio output counts parts of `output_tokens` (docs/pricing-dimensions.md)."""

    model: str
    occurred_at: datetime
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    images: int = 0
    features: tuple[FeatureUse, ...] = ()
    multiplier: Decimal = ONE
    cache_write_input_tokens: int = 0
    cache_write_1h_input_tokens: int = 0
    image_input_tokens: int = 0
    image_output_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    image_size: str = ""
    image_quality: str = ""
    seconds: Decimal = ZERO
    characters: int = 0
    requests: int = 0
    service_tier: str = DEFAULT_SERVICE_TIER


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
    # the long-context tier's threshold the request passed (None: base prices), and the service tier priced
    long_context_tier: int | None = None
    service_tier: str = DEFAULT_SERVICE_TIER

    @property
    def cost(self) -> Money:
        return Money(self.cost_usd, USD)

    @property
    def charge(self) -> Money:
        return Money(self.charge_usd, USD)


_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "images",
    "cache_write_input_tokens",
    "cache_write_1h_input_tokens",
    "image_input_tokens",
    "image_output_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "characters",
    "requests",
)


_INTS = {int}


def _validate(line: UsageLine) -> None:
    counts = (
        line.input_tokens, line.output_tokens, line.cached_input_tokens, line.reasoning_tokens, line.images,
        line.cache_write_input_tokens, line.cache_write_1h_input_tokens, line.image_input_tokens,
        line.image_output_tokens, line.audio_input_tokens, line.audio_output_tokens, line.characters, line.requests,
    )  # fmt: skip
    if set(map(type, counts)) != _INTS or min(counts) < 0:
        for name, value in zip(_COUNTS, counts, strict=True):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidUsage(f"{name} must be a whole number >= 0, got {value!r}")
    if line.cached_input_tokens > line.input_tokens:
        raise InvalidUsage("cached_input_tokens cannot exceed input_tokens (cached tokens are part of the input)")
    if line.reasoning_tokens > line.output_tokens:
        raise InvalidUsage("reasoning_tokens cannot exceed output_tokens (reasoning tokens are part of the output)")
    if (
        line.cached_input_tokens + line.cache_write_input_tokens + line.cache_write_1h_input_tokens
        + line.image_input_tokens + line.audio_input_tokens > line.input_tokens
    ):  # fmt: skip
        raise InvalidUsage(
            "cached_input_tokens, cache_write_input_tokens, cache_write_1h_input_tokens, image_input_tokens and "
            "audio_input_tokens are parts of input_tokens: together they cannot exceed it"
        )
    if line.reasoning_tokens + line.image_output_tokens + line.audio_output_tokens > line.output_tokens:
        raise InvalidUsage(
            "reasoning_tokens, image_output_tokens and audio_output_tokens are parts of output_tokens: together "
            "they cannot exceed it"
        )
    if not isinstance(line.occurred_at, datetime) or line.occurred_at.utcoffset() is None:
        raise InvalidUsage(f"occurred_at must be an aware datetime, got {line.occurred_at!r}")
    if line.service_tier not in SERVICE_TIERS:
        raise InvalidUsage(f"service_tier must be one of {', '.join(SERVICE_TIERS)}, got {line.service_tier!r}")
    # a float or NaN is refused by the money type; here it makes a bad usage line like any other, not a crash
    try:
        multiplier = line.multiplier if line.multiplier is ONE else to_decimal(line.multiplier)
        quantities = [(use.key, to_decimal(use.quantity)) for use in line.features] if line.features else []
        seconds = line.seconds if line.seconds is ZERO else to_decimal(line.seconds)
    except MoneyError as exc:
        raise InvalidUsage(f"multiplier, seconds and feature quantities must be Decimals: {exc}") from None
    if multiplier < ONE:
        raise InvalidUsage(f"multiplier must be >= 1, got {line.multiplier}")
    if seconds < 0:
        raise InvalidUsage(f"seconds must be >= 0, got {line.seconds}")
    if not quantities:
        return
    for key, quantity in quantities:
        if quantity < 0:
            raise InvalidUsage(f"feature {key!r} quantity must be >= 0")
    # a key listed twice would compound a multiplier feature; a feature used twice says so with its quantity
    keys = [use.key for use in line.features]
    if len(set(keys)) != len(keys):
        raise InvalidUsage("each feature is listed once; a feature used several times carries a quantity")


def long_context_tier(price: ModelPriceVersion, input_tokens: int) -> TierPrices | None:
    """The highest tier whose threshold the request's input tokens (the total) pass, or None."""
    passed = None
    for tier in price.tiers:
        if input_tokens <= tier.above_input_tokens:
            break
        passed = tier
    return passed


def effective_prices(
    price: ModelPriceVersion, *, model_id: str, input_tokens: int, service_tier: str, at: datetime
) -> tuple[Mapping[str, Decimal | None], TierPrices | None]:
    """Every price field for one request: base, then the long-context tier, the service tier, the off-peak window."""
    if not price.structured and service_tier == DEFAULT_SERVICE_TIER:
        return price.base, None
    base = price.base
    tier = long_context_tier(price, input_tokens)
    prices = dict(base)
    if tier is not None:
        prices.update(tier.prices)
    overrides = []
    if service_tier != DEFAULT_SERVICE_TIER:
        service = price.service_tiers.get(service_tier)
        if service is None:
            raise UnpricedDimension(f"model {model_id!r} has no {service_tier} service-tier prices")
        overrides.append(service)
    for window in price.off_peak:
        if window.contains(at):
            overrides.append(window.prices)
            break
    for override in overrides:
        for name, amount in override.items():
            base_amount = base[name]
            if tier is not None and name in tier.prices and base_amount:
                # a discount (or premium) on the base price applies in the same proportion to the tier's price
                prices[name] = tier.prices[name] * amount / base_amount
            else:
                prices[name] = amount
    return prices, tier


def _image_unit_price(
    price: ModelPriceVersion, prices: Mapping[str, Decimal | None], line: UsageLine, model_id: str
) -> Decimal:
    per_image = prices["image_price"] or ZERO
    if not price.image_prices:
        return per_image  # one price for every image (0: the model's images are free)
    size, quality = line.image_size, line.image_quality
    for key in (f"{size}/{quality}", size, f"*/{quality}"):
        if key in price.image_prices:
            return price.image_prices[key]
    if per_image > 0:
        return per_image
    raise UnpricedDimension(
        f"model {model_id!r} has no price for images of size {size or '(none)'!r} and quality "
        f"{quality or '(none)'!r} (priced: {', '.join(sorted(price.image_prices))})"
    )


def _unit(prices: Mapping[str, Decimal | None], name: str, count: Decimal | int, what: str, model_id: str) -> Decimal:
    unit_price = prices[name]
    if unit_price is None:
        raise UnpricedDimension(f"model {model_id!r} has no {name} ({what}), and the event has {count} of them")
    return count * unit_price


def rate_usage(
    line: UsageLine, snapshot: CatalogSnapshot, *, tier: str, terms: PlanTermsVersion | None = None
) -> Rating:
    """Rate one usage line at the catalog's prices at `line.occurred_at` for a plan (tier) and its terms.

    Raises a PricingError subclass, never rates at $0: unknown or inactive model, model not allowed for the tier,
    unknown feature, no price in force, a used dimension without a price, or numbers out of range.
    """
    _validate(line)
    at = line.occurred_at
    model = snapshot.active_model(line.model)
    if not model.allows(tier):
        raise ModelNotAllowed(f"model {model.model_id!r} is not available on the {tier!r} plan")
    price = model.price_at(at)
    if price.structured or line.service_tier != DEFAULT_SERVICE_TIER:
        prices, context_tier = effective_prices(
            price, model_id=model.model_id, input_tokens=line.input_tokens, service_tier=line.service_tier, at=at
        )
    else:
        prices, context_tier = price.base, None

    # each part of the input and output at its own price, or under its fallback's key at the fallback's price
    input_price = prices["input_per_million"] or ZERO
    output_price = prices["output_per_million"] or ZERO
    cached_price = prices["cached_input_per_million"]
    breakdown: dict[str, Decimal] = {
        "input": ZERO,
        "cached_input": line.cached_input_tokens * (input_price if cached_price is None else cached_price),
        "output": ZERO,
    }
    uncached = line.input_tokens - line.cached_input_tokens
    plain_output = line.output_tokens
    if (
        line.reasoning_tokens or line.cache_write_input_tokens or line.cache_write_1h_input_tokens
        or line.image_input_tokens or line.audio_input_tokens or line.image_output_tokens or line.audio_output_tokens
    ):  # fmt: skip
        if line.cache_write_1h_input_tokens and prices["cache_write_1h_per_million"] is None:
            raise UnpricedDimension(
                f"model {model.model_id!r} has no price for 1-hour cache writes (cache_write_1h_per_million), and "
                f"the event has {line.cache_write_1h_input_tokens}"
            )
        for count, name, key, is_input in (
            (line.cache_write_input_tokens, "cache_write_per_million", "cache_write", True),
            (line.cache_write_1h_input_tokens, "cache_write_1h_per_million", "cache_write_1h", True),
            (line.image_input_tokens, "image_input_per_million", "image_input", True),
            (line.audio_input_tokens, "audio_input_per_million", "audio_input", True),
            (line.reasoning_tokens, "reasoning_per_million", "reasoning", False),
            (line.image_output_tokens, "image_output_per_million", "image_output", False),
            (line.audio_output_tokens, "audio_output_per_million", "audio_output", False),
        ):
            own = prices[name] if count else None
            if own is None:
                continue  # stays in the uncached input or plain output, at that price
            breakdown[key] = count * own
            if is_input:
                uncached -= count
            else:
                plain_output -= count
    breakdown["input"] = uncached * input_price
    breakdown["output"] = plain_output * output_price
    multiplier = line.multiplier
    if multiplier is ONE or multiplier == 1:
        for key, amount in breakdown.items():
            breakdown[key] = amount / MILLION
    else:
        multiplier = to_decimal(multiplier)
        for key, amount in breakdown.items():
            breakdown[key] = amount / MILLION * multiplier
    token_cost = sum(breakdown.values(), ZERO)

    breakdown["images"] = line.images * _image_unit_price(price, prices, line, model.model_id) if line.images else ZERO
    unit_cost = breakdown["images"]
    if line.seconds:
        breakdown["seconds"] = _unit(prices, "price_per_second", line.seconds, "USD per second", model.model_id)
        unit_cost += breakdown["seconds"]
    if line.characters:
        breakdown["characters"] = _unit(
            prices, "price_per_character", line.characters, "USD per character", model.model_id
        )
        unit_cost += breakdown["characters"]
    if line.requests:
        breakdown["requests"] = _unit(prices, "price_per_request", line.requests, "USD per request", model.model_id)
        unit_cost += breakdown["requests"]

    token_charge_factor = ONE
    feature_charge = ZERO
    feature_versions: dict[str, int] = {}
    for use in line.features:
        cost = snapshot.feature(use.key).cost_at(at)
        feature_versions[use.key] = cost.id
        if cost.cost_type != CostType.PER_USE and to_decimal(use.quantity) != ONE:
            raise InvalidUsage(f"feature {use.key!r} is priced {cost.cost_type}: only per_use features take a quantity")
        if not cost.is_billable:
            breakdown[f"feature:{use.key}"] = ZERO
            continue
        cepo = cost.cepo_multiplier if use.cepo else ONE
        if cost.cost_type == CostType.MULTIPLIER:
            token_charge_factor *= cost.tier_multipliers.get(tier, cost.cost_usd) * cepo
            breakdown.setdefault(f"feature:{use.key}", ZERO)
            continue
        if cost.cost_type == CostType.PER_USE:
            amount = cost.cost_usd * to_decimal(use.quantity)
        elif cost.cost_type == CostType.PER_IMAGE:
            amount = cost.cost_usd * line.images
        else:  # per_token
            amount = cost.cost_usd * (line.input_tokens + line.output_tokens) / MILLION
        breakdown[f"feature:{use.key}"] = breakdown.get(f"feature:{use.key}", ZERO) + amount
        feature_charge += amount * cost.tier_multipliers.get(tier, ONE) * cepo

    cost_usd = sum(breakdown.values(), ZERO)
    markup = terms.markup if terms is not None else ONE
    charge_usd = (token_cost * token_charge_factor + unit_cost + feature_charge) * markup
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
        long_context_tier=context_tier.above_input_tokens if context_tier is not None else None,
        service_tier=line.service_tier,
    )


_OUTPUT_PARTS = (
    ("reasoning_per_million", "reasoning_tokens"),
    ("image_output_per_million", "image_output_tokens"),
    ("audio_output_per_million", "audio_output_tokens"),
)


def usage_line_worst_case(line: UsageLine, snapshot: CatalogSnapshot) -> UsageLine:
    """The line with every output token in the dearest output part the model prices (reasoning, image or audio
    output at their own price, else plain output): what authorize holds for `max_output_tokens` it cannot split.
    Input keeps its parts as sent; its total decides the long-context tier as it will when the call is recorded."""
    price = snapshot.active_model(line.model).price_at(line.occurred_at)
    prices, _ = effective_prices(
        price, model_id=line.model, input_tokens=line.input_tokens, service_tier=line.service_tier, at=line.occurred_at
    )
    dearest, part = prices["output_per_million"] or ZERO, ""
    for name, count_field in _OUTPUT_PARTS:
        own = prices[name]
        if own is not None and own > dearest:
            dearest, part = own, count_field
    if not part:
        return line
    counts: dict[str, Any] = {count_field: 0 for _, count_field in _OUTPUT_PARTS}
    counts[part] = line.output_tokens
    return replace(line, **counts)


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
