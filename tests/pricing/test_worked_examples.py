"""The worked examples of the pricing issue must hold exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pricing.money import Money
from pricing.rating import FeatureUse, UsageLine, plan_charge, plan_recommendation, rate_usage, usd_to

AT = datetime(2026, 10, 1, 12, tzinfo=UTC)


def _rate(snapshot, tier="jive", **line):
    terms = snapshot.plan(tier).terms_at(AT)
    return rate_usage(UsageLine(occurred_at=AT, **line), snapshot, tier=tier, terms=terms)


def test_qwen_1000_in_500_out(seeded_catalog):
    rating = _rate(seeded_catalog, model="qwen-3-32b", input_tokens=1000, output_tokens=500)
    assert rating.cost_usd == Decimal("0.000150")
    assert rating.charge_usd == Decimal("0.000150")


def test_qwen_with_optillm_cot_on_jive(seeded_catalog):
    rating = _rate(
        seeded_catalog, model="qwen-3-32b", input_tokens=1000, output_tokens=500, features=(FeatureUse("optillm_cot"),)
    )
    assert rating.charge_usd == Decimal("0.000195")
    assert rating.cost_usd == Decimal("0.000150")  # the provider was paid for the tokens only


def test_flux_two_images_in_usd_zar_and_credits(seeded_catalog):
    rating = _rate(seeded_catalog, model="flux-1.1-pro", images=2)
    assert rating.charge_usd == Decimal("0.08")
    assert usd_to(rating.charge_usd, "ZAR", seeded_catalog, AT).rounded() == Money(Decimal("1.48"), "ZAR")
    assert rating.credits == Decimal("800")


def test_gpt_4o_mini_with_cached_input(seeded_catalog):
    rating = _rate(seeded_catalog, model="gpt-4o-mini", input_tokens=2000, cached_input_tokens=1000, output_tokens=100)
    assert rating.cost_usd == Decimal("0.000285")
    assert rating.breakdown["cached_input"] == Decimal("0.000075")


def test_claude_haiku(seeded_catalog):
    rating = _rate(seeded_catalog, model="claude-3-5-haiku", input_tokens=1000, output_tokens=1000)
    assert rating.cost_usd == Decimal("0.0048")


def test_alias_rates_as_its_model(seeded_catalog):
    rating = _rate(seeded_catalog, model="gpt-4o-mini-2024-07-18", input_tokens=1000, output_tokens=0)
    assert rating.model_id == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("plan", "units", "base", "overage", "total"),
    [
        ("starter", 1_500, "5.00", "0.075", "5.075"),
        ("starter", 400_000, "5.00", "59.85", "50.00"),
        ("professional", 250_000, "15.00", "24.00", "39.00"),
    ],
)
def test_plan_charges(seeded_catalog, plan, units, base, overage, total):
    charge = plan_charge(seeded_catalog.plan(plan).terms_at(AT), units)
    assert charge.base.amount == Decimal(base)
    assert charge.overage.amount == Decimal(overage)
    assert charge.total.amount == Decimal(total)
    assert charge.cap_applied is (plan == "starter" and units == 400_000)


def test_recommendation_finds_the_cheaper_plan_of_the_family(seeded_catalog):
    starter = seeded_catalog.plan("starter").terms_at(AT)
    others = [seeded_catalog.plan(code).terms_at(AT) for code in ("professional", "enterprise", "basic")]
    advice = plan_recommendation(starter, others, 250_000)
    # starter: 5 + 249,000 x 0.00015 = 42.35 (under its cap); professional: 39.00; enterprise: 12.50
    assert advice.best.plan_code == "enterprise"
    assert advice.monthly_saving.amount == Decimal("29.85")
    assert advice.should_switch
