"""Properties of rating over every price dimension, on catalogs built in memory (no database).

Prices have at most 6 decimal places per 1M tokens (and per unit), so every amount is exact at the stored 12 places
and the sums below are exact equalities. Long-context tiers are drawn at or above the base prices, as providers
price them (a tier is never a discount), which is what makes cost monotone across a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing.catalog import CatalogSnapshot, ModelEntry, ModelPriceVersion, RateVersion, TierPrices
from pricing.money import CREDITS
from pricing.rating import UsageLine, rate_usage

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
AT = datetime(2026, 10, 1, 12, tzinfo=UTC)
MODEL = "dimension-model"

TOKEN_PRICES = (
    "input_per_million", "cached_input_per_million", "cache_write_per_million", "cache_write_1h_per_million",
    "output_per_million", "reasoning_per_million", "image_input_per_million", "image_output_per_million",
    "audio_input_per_million", "audio_output_per_million",
)  # fmt: skip
UNIT_PRICES = ("image_price", "price_per_second", "price_per_character", "price_per_request")
# prices that may be left empty (then priced at their documented fallback)
OPTIONAL = {
    "cache_write_per_million", "reasoning_per_million", "image_input_per_million", "image_output_per_million",
    "audio_input_per_million", "audio_output_per_million",
}  # fmt: skip


def decimals(max_value: int, places: int = 6) -> st.SearchStrategy[Decimal]:
    return st.integers(0, max_value * 10**places).map(lambda n: Decimal(n).scaleb(-places))


prices = decimals(100)


@st.composite
def price_sets(draw: st.DrawFn) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in TOKEN_PRICES + UNIT_PRICES:
        empty = name in OPTIONAL and draw(st.booleans())
        values[name] = None if empty else draw(prices)
    return values


@st.composite
def raised(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Decimal]:
    """Tier prices at or above the base (and above the fallback where the base leaves a price empty)."""
    out = {}
    for name in TOKEN_PRICES:
        floor = base[name]
        if floor is None:
            floor = base["output_per_million" if "output" in name or "reasoning" in name else "input_per_million"]
        out[name] = floor + draw(prices)
    return out


def snapshot(values: dict[str, Any], tiers: tuple[TierPrices, ...] = ()) -> CatalogSnapshot:
    cached = values["cached_input_per_million"]
    price = ModelPriceVersion(
        id=1,
        effective_from=EPOCH,
        **{**values, "cached_input_per_million": cached if cached is not None else values["input_per_million"]},
        tiers=tiers,
    )
    model = ModelEntry(
        model_id=MODEL, display_name=MODEL, provider="test", is_active=True, allowed_tiers=frozenset(), prices=(price,)
    )
    credits = RateVersion(id=9, effective_from=EPOCH, rate=Decimal(10000))
    return CatalogSnapshot(models={MODEL: model}, rates={CREDITS: (credits,)})


@st.composite
def catalogs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Decimal]]:
    base = draw(price_sets())
    return base, draw(raised(base))


counts = st.integers(0, 2_000_000)
small = st.integers(0, 1_000)


@dataclass(frozen=True)
class Parts:
    """One request's counts by part, so that parts never exceed their totals."""

    uncached: int
    cached: int
    cache_write: int
    cache_write_1h: int
    image_input: int
    audio_input: int
    plain_output: int
    reasoning: int
    image_output: int
    audio_output: int
    images: int
    seconds: int
    characters: int
    requests: int

    def __add__(self, other: Parts) -> Parts:
        return Parts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def input_tokens(self) -> int:
        return (
            self.uncached + self.cached + self.cache_write + self.cache_write_1h + self.image_input + self.audio_input
        )

    def line(self) -> UsageLine:
        return UsageLine(
            model=MODEL,
            occurred_at=AT,
            input_tokens=self.input_tokens,
            cached_input_tokens=self.cached,
            cache_write_input_tokens=self.cache_write,
            cache_write_1h_input_tokens=self.cache_write_1h,
            image_input_tokens=self.image_input,
            audio_input_tokens=self.audio_input,
            output_tokens=self.plain_output + self.reasoning + self.image_output + self.audio_output,
            reasoning_tokens=self.reasoning,
            image_output_tokens=self.image_output,
            audio_output_tokens=self.audio_output,
            images=self.images,
            seconds=Decimal(self.seconds),
            characters=self.characters,
            requests=self.requests,
        )


parts = st.builds(Parts, *([counts] * 10), small, small, small, small)
PART_NAMES = tuple(f.name for f in fields(Parts))


def cost(snap: CatalogSnapshot, part: Parts) -> Decimal:
    return rate_usage(part.line(), snap, tier="any").cost_usd


@PROPERTY
@given(catalogs(), parts, st.sampled_from(PART_NAMES), st.integers(1, 500_000), st.integers(0, 3_000_000))
def test_cost_is_monotone_in_every_count(catalog, part, name, more, threshold):
    base, tier = catalog
    snap = snapshot(base, (TierPrices(above_input_tokens=threshold, prices=tier),))
    bigger = replace(part, **{name: getattr(part, name) + more})
    assert cost(snap, bigger) >= cost(snap, part)


@PROPERTY
@given(catalogs(), parts, parts)
def test_cost_is_additive_across_dimensions_within_a_tier(catalog, a, b):
    base, tier = catalog
    below = snapshot(base)  # no tier: every request at the base prices
    assert cost(below, a + b) == cost(below, a) + cost(below, b)
    # a tier from 0 input tokens: every request with input is past it
    above = snapshot(base, (TierPrices(above_input_tokens=0, prices=tier),))
    a, b = replace(a, uncached=a.uncached + 1), replace(b, uncached=b.uncached + 1)
    assert cost(above, a + b) == cost(above, a) + cost(above, b)


@PROPERTY
@given(parts, prices, prices)
def test_every_token_is_priced_once(part, price, tier_price):
    # every token dimension at one price: however the tokens split, the cost is the token count x that price
    base: dict[str, Any] = {name: price for name in TOKEN_PRICES}
    base.update({name: Decimal(0) for name in UNIT_PRICES})
    tier = {name: tier_price for name in TOKEN_PRICES}
    snap = snapshot(base, (TierPrices(above_input_tokens=1_000_000, prices=tier),))
    line = part.line()
    unit = tier_price if line.input_tokens > 1_000_000 else price
    assert cost(snap, part) == (line.input_tokens + line.output_tokens) * unit / 1_000_000


@PROPERTY
@given(catalogs(), parts, st.integers(0, 3_000_000))
def test_one_token_past_the_threshold_prices_the_whole_request_at_the_tier(catalog, part, uncached):
    base, tier = catalog
    # the request has exactly `threshold` input tokens, then one more uncached token
    at_threshold = replace(part, uncached=uncached)
    threshold = at_threshold.input_tokens
    snap = snapshot(base, (TierPrices(above_input_tokens=threshold, prices=tier),))
    past = replace(at_threshold, uncached=at_threshold.uncached + 1)
    # at the threshold: the base prices; one token past it: every token at the tier's prices, as if they were base
    assert cost(snap, at_threshold) == cost(snapshot(base), at_threshold)
    tier_as_base = {**base, **tier}
    assert cost(snap, past) == cost(snapshot(tier_as_base), past)
