"""Properties of the rating engine, the Money type and plan charges, over catalogs built in memory (no database).

Prices are Decimals with at most 6 decimal places per 1M tokens, so a token's cost has at most 12: the rating's
stored precision. With whole-number markups and multipliers every amount is exact, so additivity is exact; with
fractional ones the only error is the single rounding to 12 places each rating makes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing.catalog import (
    CatalogSnapshot,
    FeatureCostVersion,
    FeatureEntry,
    ModelEntry,
    ModelPriceVersion,
    PlanTermsVersion,
    RateVersion,
)
from pricing.errors import InvalidUsage, ModelNotAllowed, NoPriceInForce, UnknownFeature, UnknownModel
from pricing.money import CREDITS, MINOR_UNITS, USD, Money, MoneyError, to_decimal
from pricing.rating import (
    MILLION,
    FeatureUse,
    Rating,
    UsageLine,
    plan_charge,
    plan_recommendation,
    rate_usage,
)

# the autouse cache fixture of tests/conftest.py is function-scoped; these tests do not touch the cache
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
AT = datetime(2026, 10, 1, 12, tzinfo=UTC)
MODEL = "test-model"
TIER = "pro"
PIP = Decimal("0.000000000001")  # one unit of the stored precision

FEATURE_KEYS = ("search", "tokens", "images", "cot", "free")


def decimals(max_value: int, places: int) -> st.SearchStrategy[Decimal]:
    """Decimals in [0, max_value] with at most `places` decimal places."""
    return st.integers(0, max_value * 10**places).map(lambda n: Decimal(n).scaleb(-places))


prices = decimals(1000, 6)
whole_factors = st.integers(1, 5).map(Decimal)
fractional_factors = decimals(5, 2).filter(lambda d: d > 0)
tokens = st.integers(0, 10_000_000)
images = st.integers(0, 100)


def plan_terms(**overrides: object) -> PlanTermsVersion:
    values: dict[str, object] = {
        "id": 1,
        "effective_from": EPOCH,
        "plan_code": TIER,
        "family": "tokens",
        "interval": "month",
        "fee": Decimal(0),
        "currency": USD,
        "unit": "tokens",
        "included_units": None,
        "overage_rate": Decimal(0),
        "monthly_spend_cap": None,
        "overage_allowed": True,
        "max_overage_pct": None,
        "hard_limit": False,
        "markup": Decimal(1),
        "requests_per_hour": None,
        "alert_thresholds": (75, 90, 100),
    }
    values.update(overrides)
    return PlanTermsVersion(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Catalog:
    snapshot: CatalogSnapshot
    terms: PlanTermsVersion

    def rate(self, line: UsageLine) -> Rating:
        return rate_usage(line, self.snapshot, tier=TIER, terms=self.terms)


def feature(key: str, cost_type: str, cost: Decimal, *, tier: Decimal, cepo: Decimal, billable: bool = True):
    version = FeatureCostVersion(
        id=len(key), effective_from=EPOCH, cost_type=cost_type, cost_usd=cost, cepo_multiplier=cepo,
        is_billable=billable, tier_multipliers={TIER: tier},
    )  # fmt: skip
    return FeatureEntry(feature_key=key, display_name=key, is_active=True, costs=(version,))


# input, cached input, output per 1M and per image (gpt-4o-mini's); per use, per 1M tokens, per image, unbilled
GPT_4O_MINI = (Decimal("0.15"), Decimal("0.075"), Decimal("0.6"), Decimal(0))
FEATURE_COSTS = (Decimal("0.01"), Decimal(2), Decimal("0.04"), Decimal("0.5"))


def build_catalog(
    *,
    model_prices: tuple[Decimal, Decimal, Decimal, Decimal] = GPT_4O_MINI,
    feature_costs: tuple[Decimal, Decimal, Decimal, Decimal] = FEATURE_COSTS,
    factors: tuple[Decimal, ...] = (Decimal(1),) * 11,
    credits_rate: Decimal = Decimal(10000),
) -> Catalog:
    """One model priced input, cached input, output per 1M and per image; one feature of each cost type."""
    price = ModelPriceVersion(1, EPOCH, *model_prices)
    model = ModelEntry(
        model_id=MODEL, display_name=MODEL, provider="test", is_active=True, allowed_tiers=frozenset(), prices=(price,)
    )
    search, per_token, per_image, free = feature_costs
    features = {
        "search": feature("search", "per_use", search, tier=factors[0], cepo=factors[1]),
        "tokens": feature("tokens", "per_token", per_token, tier=factors[2], cepo=factors[3]),
        "images": feature("images", "per_image", per_image, tier=factors[4], cepo=factors[5]),
        "cot": feature("cot", "multiplier", factors[6], tier=factors[7], cepo=factors[8]),
        "free": feature("free", "per_use", free, tier=factors[9], cepo=Decimal(1), billable=False),
    }
    credits = RateVersion(id=9, effective_from=EPOCH, rate=credits_rate)
    snapshot = CatalogSnapshot(models={MODEL: model}, features=features, rates={CREDITS: (credits,)})
    return Catalog(snapshot=snapshot, terms=plan_terms(markup=factors[10]))


def catalogs(*, factors: st.SearchStrategy[Decimal] = whole_factors) -> st.SearchStrategy[Catalog]:
    return st.builds(
        build_catalog,
        model_prices=st.tuples(prices, prices, prices, prices),
        feature_costs=st.tuples(prices, prices, prices, prices),
        factors=st.tuples(*[factors] * 11),
        credits_rate=st.integers(1, 100_000).map(Decimal),
    )


# for properties of a line without features: only the model's prices vary
priced_models = st.builds(build_catalog, model_prices=st.tuples(prices, prices, prices, prices))


@dataclass(frozen=True)
class Part:
    """One request's counts, drawn so that the subsets can never exceed their wholes."""

    uncached: int
    cached: int
    plain_output: int
    reasoning: int
    images: int
    searches: int

    def __add__(self, other: Part) -> Part:
        return Part(
            self.uncached + other.uncached,
            self.cached + other.cached,
            self.plain_output + other.plain_output,
            self.reasoning + other.reasoning,
            self.images + other.images,
            self.searches + other.searches,
        )

    def line(self, uses: tuple[tuple[str, bool], ...] = (), multiplier: Decimal = Decimal(1)) -> UsageLine:
        features = tuple(
            FeatureUse(key, quantity=Decimal(self.searches) if key == "search" else Decimal(1), cepo=cepo)
            for key, cepo in uses
        )
        return UsageLine(
            model=MODEL,
            occurred_at=AT,
            input_tokens=self.uncached + self.cached,
            cached_input_tokens=self.cached,
            output_tokens=self.plain_output + self.reasoning,
            reasoning_tokens=self.reasoning,
            images=self.images,
            features=features,
            multiplier=multiplier,
        )


parts = st.builds(Part, tokens, tokens, tokens, tokens, images, st.integers(0, 20))
feature_uses = st.lists(st.tuples(st.sampled_from(FEATURE_KEYS), st.booleans()), unique_by=lambda u: u[0], max_size=5)
multipliers = st.integers(1, 5).map(Decimal)
KINDS = ("uncached", "cached", "plain_output", "reasoning", "images", "searches")


def amounts(rating: Rating) -> tuple[Decimal, Decimal, Decimal]:
    return rating.cost_usd, rating.charge_usd, rating.credits


# --- additivity -------------------------------------------------------------------------------------------------


@PROPERTY
@given(catalog=catalogs(), a=parts, b=parts, uses=feature_uses, multiplier=multipliers)
def test_splitting_a_request_in_two_sums_exactly_to_the_whole(catalog, a, b, uses, multiplier):
    whole = catalog.rate((a + b).line(tuple(uses), multiplier))
    first = catalog.rate(a.line(tuple(uses), multiplier))
    second = catalog.rate(b.line(tuple(uses), multiplier))

    assert first.cost_usd + second.cost_usd == whole.cost_usd
    assert first.charge_usd + second.charge_usd == whole.charge_usd
    assert first.credits + second.credits == whole.credits
    assert whole.breakdown.keys() == first.breakdown.keys() == second.breakdown.keys()
    for key, amount in whole.breakdown.items():
        assert first.breakdown[key] + second.breakdown[key] == amount, key


@PROPERTY
@given(catalog=catalogs(factors=fractional_factors), a=parts, b=parts, uses=feature_uses, multiplier=multipliers)
def test_with_fractional_markups_a_split_differs_from_the_whole_by_at_most_one_rounding(
    catalog, a, b, uses, multiplier
):
    whole = catalog.rate((a + b).line(tuple(uses), multiplier))
    first = catalog.rate(a.line(tuple(uses), multiplier))
    second = catalog.rate(b.line(tuple(uses), multiplier))

    # the provider cost does not involve markups: still exact
    assert first.cost_usd + second.cost_usd == whole.cost_usd
    # each rating rounds once to 12 places (< half a pip each), so three roundings stay within one pip
    for split, total in zip(zip(amounts(first), amounts(second), strict=True), amounts(whole), strict=True):
        assert abs(split[0] + split[1] - total) <= PIP


# --- monotone and never negative --------------------------------------------------------------------------------


@PROPERTY
@given(
    catalog=catalogs(factors=fractional_factors),
    base=parts,
    kind=st.sampled_from(KINDS),
    more=st.integers(1, 1_000_000),
    uses=feature_uses,
    multiplier=multipliers,
)
def test_more_of_anything_never_costs_less(catalog, base, kind, more, uses, multiplier):
    bigger = replace(base, **{kind: getattr(base, kind) + more})
    before = catalog.rate(base.line(tuple(uses), multiplier))
    after = catalog.rate(bigger.line(tuple(uses), multiplier))

    assert after.cost_usd >= before.cost_usd
    assert after.charge_usd >= before.charge_usd
    assert after.credits >= before.credits


@PROPERTY
@given(catalog=catalogs(factors=fractional_factors), part=parts, uses=feature_uses, multiplier=multipliers)
def test_a_rating_is_never_negative(catalog, part, uses, multiplier):
    rating = catalog.rate(part.line(tuple(uses), multiplier))

    assert rating.cost_usd >= 0
    assert rating.charge_usd >= 0
    assert rating.credits >= 0
    assert all(amount >= 0 for amount in rating.breakdown.values())
    assert sum(rating.breakdown.values(), Decimal(0)) == rating.cost_usd


# --- each token priced once, at its own rate --------------------------------------------------------------------


@PROPERTY
@given(catalog=priced_models, part=parts, multiplier=multipliers)
def test_cached_tokens_are_priced_at_the_cached_rate_and_counted_once(catalog, part, multiplier):
    price = catalog.snapshot.models[MODEL].prices[0]
    line = part.line(multiplier=multiplier)
    rating = catalog.rate(line)

    uncached = line.input_tokens - line.cached_input_tokens
    expected_tokens = (
        uncached * price.input_per_million
        + line.cached_input_tokens * price.cached_input_per_million
        + line.output_tokens * price.output_per_million
    ) / MILLION
    assert rating.cost_usd == expected_tokens * multiplier + line.images * price.image_price
    assert rating.breakdown["input"] == uncached * price.input_per_million / MILLION * multiplier
    assert rating.breakdown["cached_input"] == line.cached_input_tokens * price.cached_input_per_million / MILLION * (
        multiplier
    )
    assert rating.breakdown["output"] == line.output_tokens * price.output_per_million / MILLION * multiplier


@PROPERTY
@given(catalog=priced_models, part=parts)
def test_reasoning_tokens_are_output_tokens_and_add_nothing_of_their_own(catalog, part):
    with_reasoning = catalog.rate(part.line())
    as_plain_output = catalog.rate(replace(part, plain_output=part.plain_output + part.reasoning, reasoning=0).line())

    assert amounts(with_reasoning) == amounts(as_plain_output)


def test_an_all_cached_request_pays_only_the_cached_rate():
    catalog = build_catalog()
    line = UsageLine(model=MODEL, occurred_at=AT, input_tokens=1_000_000, cached_input_tokens=1_000_000)

    assert catalog.rate(line).cost_usd == Decimal("0.075")


# --- bad usage lines are errors, never $0 -----------------------------------------------------------------------


@PROPERTY
@given(catalog=priced_models, whole=tokens, excess=st.integers(1, 1_000_000))
def test_a_subset_larger_than_its_whole_is_an_error(catalog, whole, excess):
    with pytest.raises(InvalidUsage, match="cached_input_tokens"):
        catalog.rate(UsageLine(model=MODEL, occurred_at=AT, input_tokens=whole, cached_input_tokens=whole + excess))
    with pytest.raises(InvalidUsage, match="reasoning_tokens"):
        catalog.rate(UsageLine(model=MODEL, occurred_at=AT, output_tokens=whole, reasoning_tokens=whole + excess))


COUNTS = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "images")


@PROPERTY
@given(catalog=priced_models, field=st.sampled_from(COUNTS), negative=st.integers(max_value=-1))
def test_a_negative_count_is_an_error(catalog, field, negative):
    with pytest.raises(InvalidUsage, match=field):
        catalog.rate(UsageLine(model=MODEL, occurred_at=AT, **{field: negative}))


@pytest.mark.parametrize("field", COUNTS)
@pytest.mark.parametrize("value", [True, 1.0, 2.5, Decimal(3), "4"])
def test_a_count_that_is_not_a_whole_number_is_an_error(field, value):
    catalog = build_catalog()
    counts: dict[str, object] = {"input_tokens": 10, "output_tokens": 10, field: value}
    with pytest.raises(InvalidUsage, match=field):
        catalog.rate(UsageLine(model=MODEL, occurred_at=AT, **counts))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "line",
    [
        UsageLine(model=MODEL, occurred_at=AT, input_tokens=1, multiplier=Decimal("0.99")),
        UsageLine(model=MODEL, occurred_at=AT, input_tokens=1, multiplier=1.5),  # type: ignore[arg-type]
        UsageLine(model=MODEL, occurred_at=AT, input_tokens=1, multiplier=Decimal("NaN")),
        UsageLine(model=MODEL, occurred_at=AT, input_tokens=1, features=(FeatureUse("search", Decimal(-1)),)),
        UsageLine(model=MODEL, occurred_at=AT, input_tokens=1, features=(FeatureUse("search", 2.0),)),  # type: ignore[arg-type]
        UsageLine(model=MODEL, occurred_at=AT.replace(tzinfo=None), input_tokens=1),
    ],
    ids=[
        "multiplier-below-1",
        "float-multiplier",
        "nan-multiplier",
        "negative-quantity",
        "float-quantity",
        "naive-time",
    ],
)
def test_a_bad_line_is_an_invalid_usage_error(line):
    catalog = build_catalog()
    with pytest.raises(InvalidUsage):
        catalog.rate(line)


def test_unknown_model_feature_tier_and_time_are_distinct_errors():
    catalog = build_catalog()
    restricted = replace(catalog.snapshot.models[MODEL], allowed_tiers=frozenset({"enterprise"}))
    snapshot = replace(catalog.snapshot, models={MODEL: restricted})

    with pytest.raises(UnknownModel):
        catalog.rate(UsageLine(model="no-such-model", occurred_at=AT, input_tokens=1))
    with pytest.raises(UnknownFeature):
        catalog.rate(UsageLine(model=MODEL, occurred_at=AT, input_tokens=1, features=(FeatureUse("no-such"),)))
    with pytest.raises(NoPriceInForce):
        catalog.rate(UsageLine(model=MODEL, occurred_at=EPOCH - timedelta(microseconds=1), input_tokens=1))
    with pytest.raises(ModelNotAllowed):
        rate_usage(UsageLine(model=MODEL, occurred_at=AT, input_tokens=1), snapshot, tier=TIER)


# --- Money ------------------------------------------------------------------------------------------------------

money_amounts = st.decimals(min_value=-(10**12), max_value=10**12, places=12, allow_nan=False, allow_infinity=False)
currencies = st.sampled_from(sorted(MINOR_UNITS))


@PROPERTY
@given(value=st.floats(allow_nan=True, allow_infinity=True), currency=currencies)
def test_money_refuses_any_float(value, currency):
    with pytest.raises(MoneyError, match="float"):
        Money(value, currency)
    with pytest.raises(MoneyError, match="float"):
        Money(Decimal(1), currency) * value
    with pytest.raises(MoneyError, match="float"):
        Money(Decimal(1), currency).convert(to=USD, rate=value)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN", "", "1,5", "ten", None, [1]])
def test_money_refuses_what_is_not_a_finite_number(value):
    with pytest.raises(MoneyError):
        to_decimal(value)


def test_money_refuses_an_unknown_currency():
    with pytest.raises(MoneyError, match="XYZ"):
        Money(Decimal(1), "XYZ")


@PROPERTY
@given(a=money_amounts, b=money_amounts, pair=st.lists(currencies, min_size=2, max_size=2, unique=True))
def test_money_refuses_mixed_currencies(a, b, pair):
    left, right = Money(a, pair[0]), Money(b, pair[1])
    for combine in (
        lambda: left + right,
        lambda: left - right,
        lambda: left < right,
        lambda: left <= right,
    ):
        with pytest.raises(MoneyError, match="cannot combine"):
            combine()


@PROPERTY
@given(a=money_amounts, b=money_amounts, currency=currencies)
def test_money_of_one_currency_adds_exactly(a, b, currency):
    assert (Money(a, currency) + Money(b, currency)).amount == a + b
    assert (Money(a, currency) - Money(b, currency)).amount == a - b


@PROPERTY
@given(amount=money_amounts, currency=currencies)
def test_minor_units_round_half_up_once(amount, currency):
    places = MINOR_UNITS[currency]
    expected = int((amount * 10**places).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    cents = Money(amount, currency).to_minor_units()

    assert cents == expected
    assert abs(Money.from_minor_units(cents, currency).amount - amount) <= Decimal("0.5").scaleb(-places)
    assert Money(-amount, currency).to_minor_units() == -cents  # half away from zero: refunds mirror charges


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("0.005", USD, 1),
        ("0.004999999999", USD, 0),  # rounding twice (to 0.005, then to 0.01) would give 1
        ("0.0049", USD, 0),
        ("-0.005", USD, -1),
        ("1.485", "ZAR", 149),
        ("0.5", "JPY", 1),
        ("0.49", CREDITS, 0),
        ("123.456", USD, 12346),
    ],
)
def test_minor_units_examples(amount, currency, minor):
    assert Money(Decimal(amount), currency).to_minor_units() == minor


@pytest.mark.parametrize("value", [1.0, True, "1", Decimal(1)])
def test_minor_units_must_be_an_integer(value):
    with pytest.raises(MoneyError):
        Money.from_minor_units(value, USD)


# --- plan charges and recommendations ---------------------------------------------------------------------------


@st.composite
def plans(draw: st.DrawFn, *, code: str = "plan", family: str = "messages") -> PlanTermsVersion:
    return plan_terms(
        plan_code=code,
        family=family,
        unit="messages",
        fee=draw(decimals(500, 2)),
        included_units=draw(st.none() | decimals(1_000_000, 0)),
        overage_rate=draw(decimals(1, 6)),
        monthly_spend_cap=draw(st.none() | decimals(1_000, 2)),
    )


units = decimals(10_000_000, 2)


@PROPERTY
@given(terms=plans(), a=units, b=units)
def test_plan_charge_is_monotone_in_units(terms, a, b):
    low, high = sorted((a, b))

    assert plan_charge(terms, low).total <= plan_charge(terms, high).total


@PROPERTY
@given(terms=plans(), used=units)
def test_plan_charge_never_exceeds_the_cap_unless_the_fee_alone_does(terms, used):
    charge = plan_charge(terms, used)

    assert charge.total.amount >= terms.fee  # the fee is always due
    if terms.monthly_spend_cap is None:
        assert charge.total == charge.base + charge.overage
        assert not charge.cap_applied
    elif terms.fee <= terms.monthly_spend_cap:
        assert charge.total.amount <= terms.monthly_spend_cap
        assert charge.total.amount == min(terms.fee + charge.overage.amount, terms.monthly_spend_cap)
    else:
        assert charge.total.amount == terms.fee


@PROPERTY
@given(terms=plans(), used=units)
def test_plan_overage_counts_only_units_beyond_the_included(terms, used):
    charge = plan_charge(terms, used)

    included = terms.included_units
    assert charge.overage_units == (used if included is None else max(Decimal(0), used - included))
    assert charge.overage.amount == charge.overage_units * terms.overage_rate


def test_plan_charge_refuses_negative_and_float_units():
    terms = plan_terms()
    with pytest.raises(InvalidUsage):
        plan_charge(terms, -1)
    with pytest.raises(MoneyError):
        plan_charge(terms, 1.5)  # type: ignore[arg-type]


@PROPERTY
@given(
    current=plans(code="current"),
    same_family=st.lists(plans(), max_size=4),
    other_family=st.lists(plans(family="tokens"), max_size=2),
    used=units,
)
def test_plan_recommendation_picks_the_cheapest_plan_of_the_family(current, same_family, other_family, used):
    candidates = [replace(t, plan_code=f"same-{i}") for i, t in enumerate(same_family)]
    strangers = [replace(t, plan_code=f"other-{i}", fee=Decimal(0), overage_rate=Decimal(0)) for i, t in enumerate(other_family)]  # fmt: skip
    advice = plan_recommendation(current, [*strangers, *candidates], used)

    totals = [plan_charge(t, used).total.amount for t in [current, *candidates]]
    assert advice.best.total.amount == min(totals)
    assert not advice.best.plan_code.startswith("other-")  # a free plan of another family never wins
    assert advice.current.plan_code == "current"
    assert advice.monthly_saving.amount == advice.current.total.amount - min(totals)
    assert advice.should_switch is (min(totals) < advice.current.total.amount)
    if not advice.should_switch:
        assert advice.best.plan_code == "current"  # ties keep the current plan


def test_plan_recommendation_ignores_another_currency():
    current = plan_terms(plan_code="current", fee=Decimal(10), family="messages")
    cheaper_elsewhere = plan_terms(plan_code="zar", fee=Decimal(1), family="messages", currency="ZAR")

    advice = plan_recommendation(current, [cheaper_elsewhere], 0)

    assert advice.best.plan_code == "current"
    assert not advice.should_switch
