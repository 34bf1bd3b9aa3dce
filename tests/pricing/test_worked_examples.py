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


# --- 2026 dimensions: the providers' published prices (tests/pricing/published.py), computed by hand ---------------
# Each expected amount is worked out in the comment beside it: tokens x USD per 1M / 1,000,000, or units x unit price.


def _cost(snapshot, **line):
    line.setdefault("occurred_at", AT)
    return rate_usage(UsageLine(**line), snapshot, tier="jive")


def test_claude_sonnet_250k_input_is_priced_whole_at_the_200k_tier(published_catalog):
    # 250,000 x $6 + 1,000 x $22.50 = 1.5 + 0.0225 (the base prices would give the $0.765 we billed before)
    rating = _cost(published_catalog, model="claude-sonnet-4-5", input_tokens=250_000, output_tokens=1_000)
    assert rating.cost_usd == Decimal("1.5225")
    assert rating.breakdown["input"] == Decimal("1.5") and rating.breakdown["output"] == Decimal("0.0225")
    assert rating.long_context_tier == 200_000


def test_claude_sonnet_at_exactly_200k_input_stays_at_the_base_prices(published_catalog):
    # 200,000 x $3 + 1,000 x $15 = 0.6 + 0.015; one more input token and every token is at the tier
    assert _cost(published_catalog, model="claude-sonnet-4-5", input_tokens=200_000, output_tokens=1_000).cost_usd == (
        Decimal("0.615")
    )
    # 200,001 x $6 + 1,000 x $22.50 = 1.200006 + 0.0225
    assert _cost(published_catalog, model="claude-sonnet-4-5", input_tokens=200_001, output_tokens=1_000).cost_usd == (
        Decimal("1.222506")
    )


def test_anthropic_cache_writes_cost_125_and_200_percent_of_input(published_catalog):
    # usage {input_tokens: 10,000, cache_creation: {ephemeral_5m: 50,000, ephemeral_1h: 20,000},
    #        cache_read_input_tokens: 100,000, output_tokens: 2,000} -> our input_tokens is the total 180,000
    # 10,000 x $3 + 50,000 x $3.75 + 20,000 x $6 + 100,000 x $0.30 + 2,000 x $15
    # = 0.03 + 0.1875 + 0.12 + 0.03 + 0.03
    rating = _cost(
        published_catalog, model="claude-sonnet-4-5", input_tokens=180_000, cached_input_tokens=100_000,
        cache_write_input_tokens=50_000, cache_write_1h_input_tokens=20_000, output_tokens=2_000,
    )  # fmt: skip
    assert rating.cost_usd == Decimal("0.3975")
    assert rating.breakdown == {
        "input": Decimal("0.03"), "cached_input": Decimal("0.03"), "cache_write": Decimal("0.1875"),
        "cache_write_1h": Decimal("0.12"), "output": Decimal("0.03"), "images": Decimal(0),
    }  # fmt: skip


def test_cache_tokens_count_toward_the_long_context_threshold(published_catalog):
    # 150,000 cache reads + 60,000 writes + 1,000 uncached = 211,000 input tokens: past 200k, all at the tier
    # 1,000 x $6 + 150,000 x $0.60 + 60,000 x $7.50 + 500 x $22.50 = 0.006 + 0.09 + 0.45 + 0.01125
    rating = _cost(
        published_catalog, model="claude-sonnet-4-5", input_tokens=211_000, cached_input_tokens=150_000,
        cache_write_input_tokens=60_000, output_tokens=500,
    )  # fmt: skip
    assert rating.cost_usd == Decimal("0.55725")


def test_openai_batch_is_half_price(published_catalog):
    # gpt-4o Batch API: 1,000,000 x $1.25 + 100,000 x $5 = 1.25 + 0.5 (standard: 2.5 + 1 = 3.5)
    rating = _cost(
        published_catalog, model="gpt-4o", input_tokens=1_000_000, output_tokens=100_000, service_tier="batch"
    )
    assert rating.cost_usd == Decimal("1.75")
    assert rating.service_tier == "batch"


def test_anthropic_batch_past_the_tier_is_half_the_tier_price(published_catalog):
    # batch of a 250k call: half of $6 and $22.50: 250,000 x $3 + 1,000 x $11.25 = 0.75 + 0.01125
    rating = _cost(
        published_catalog, model="claude-sonnet-4-5", input_tokens=250_000, output_tokens=1_000, service_tier="batch"
    )
    assert rating.cost_usd == Decimal("0.76125")


def test_flex_and_priority_service_tiers(published_catalog):
    # o3 flex: 10,000 x $1 + 5,000 x $4 = 0.01 + 0.02
    flex = _cost(published_catalog, model="o3", input_tokens=10_000, output_tokens=5_000, service_tier="flex")
    assert flex.cost_usd == Decimal("0.03")
    # gpt-5 priority: 10,000 x $2.50 + 5,000 x $20 = 0.025 + 0.1
    priority = _cost(
        published_catalog, model="gpt-5", input_tokens=10_000, output_tokens=5_000, service_tier="priority"
    )
    assert priority.cost_usd == Decimal("0.125")


def test_a_service_tier_the_model_does_not_price_is_refused(published_catalog):
    from pricing.errors import UnpricedDimension

    with pytest.raises(UnpricedDimension, match="flex"):
        _cost(published_catalog, model="gpt-4o", input_tokens=10, output_tokens=10, service_tier="flex")


def test_gemini_pro_long_context_tier(published_catalog):
    # 300,000 x $2.50 + 10,000 x $15 = 0.75 + 0.15
    assert _cost(published_catalog, model="gemini-2.5-pro", input_tokens=300_000, output_tokens=10_000).cost_usd == (
        Decimal("0.9")
    )


def test_reasoning_tokens_at_their_own_price(published_catalog):
    # 1,000 output tokens of which 800 thinking: 200 x $0.60 + 800 x $3.50 + 2,000 input x $0.15
    # = 0.00012 + 0.0028 + 0.0003
    rating = _cost(
        published_catalog, model="gemini-2.5-flash-preview-04-17", input_tokens=2_000, output_tokens=1_000,
        reasoning_tokens=800,
    )  # fmt: skip
    assert rating.cost_usd == Decimal("0.00322")
    assert rating.breakdown["reasoning"] == Decimal("0.0028")


def test_reasoning_without_a_price_of_its_own_is_output(published_catalog):
    # o3: 1,000 output of which 900 reasoning, all at $8: 0.008
    rating = _cost(published_catalog, model="o3", input_tokens=0, output_tokens=1_000, reasoning_tokens=900)
    assert rating.cost_usd == Decimal("0.008")
    assert "reasoning" not in rating.breakdown


def test_an_embedding(published_catalog):
    # text-embedding-3-small: 1,234,567 x $0.02 = 0.02469134
    rating = _cost(published_catalog, model="text-embedding-3-small", input_tokens=1_234_567, output_tokens=0)
    assert rating.cost_usd == Decimal("0.02469134")


def test_images_by_size_and_quality(published_catalog):
    # DALL-E 3: 3 HD 1024x1792 at $0.12, and 2 standard 1024x1024 at $0.04
    hd = _cost(published_catalog, model="dall-e-3", images=3, image_size="1024x1792", image_quality="hd")
    assert hd.cost_usd == Decimal("0.36")
    standard = _cost(published_catalog, model="dall-e-3", images=2, image_size="1024x1024", image_quality="standard")
    assert standard.cost_usd == Decimal("0.08")


def test_an_image_size_without_a_price_is_refused_not_free(published_catalog):
    from pricing.errors import UnpricedDimension

    with pytest.raises(UnpricedDimension, match="512x512"):
        _cost(published_catalog, model="dall-e-3", images=1, image_size="512x512", image_quality="standard")


def test_gpt_image_1_image_tokens(published_catalog):
    # an edit: 50 text + 323 image input tokens; a 1024x1024 high-quality image is 4,160 output image tokens
    # 50 x $5 + 323 x $10 + 4,160 x $40 = 0.00025 + 0.00323 + 0.1664
    rating = _cost(
        published_catalog, model="gpt-image-1", input_tokens=373, image_input_tokens=323, output_tokens=4_160,
        image_output_tokens=4_160,
    )  # fmt: skip
    assert rating.cost_usd == Decimal("0.16988")


def test_text_to_speech_per_character(published_catalog):
    # tts-1 at $15 per 1M characters: 1,000 characters = 0.015
    assert _cost(published_catalog, model="tts-1", characters=1_000).cost_usd == Decimal("0.015")


def test_whisper_per_second(published_catalog):
    # whisper-1 at $0.006 a minute = $0.0001 a second: 754 seconds (12.57 minutes) = 0.0754; 90.5 s = 0.00905
    assert _cost(published_catalog, model="whisper-1", seconds=Decimal(754)).cost_usd == Decimal("0.0754")
    assert _cost(published_catalog, model="whisper-1", seconds=Decimal("90.5")).cost_usd == Decimal("0.00905")


def test_a_rerank_per_request(published_catalog):
    # Cohere Rerank 3.5 at $2 per 1,000 searches: 25 searches = 0.05
    assert _cost(published_catalog, model="rerank-v3.5", requests=25).cost_usd == Decimal("0.05")


def test_video_per_second(published_catalog):
    # sora-2 at $0.10 a second: 8 seconds = 0.8
    assert _cost(published_catalog, model="sora-2", seconds=Decimal(8)).cost_usd == Decimal("0.8")


def test_audio_tokens(published_catalog):
    # gpt-4o-audio-preview: 1,000 input of which 600 audio, 500 output of which 400 audio
    # 400 x $2.50 + 600 x $40 + 100 x $10 + 400 x $80 = 0.001 + 0.024 + 0.001 + 0.032
    rating = _cost(
        published_catalog, model="gpt-4o-audio-preview", input_tokens=1_000, audio_input_tokens=600,
        output_tokens=500, audio_output_tokens=400,
    )  # fmt: skip
    assert rating.cost_usd == Decimal("0.058")


def test_deepseek_off_peak_window_wraps_midnight(published_catalog):
    # 1,000,000 input of which 200,000 cache hits, 100,000 output
    # peak (12:00 UTC): 800,000 x $0.27 + 200,000 x $0.07 + 100,000 x $1.10 = 0.216 + 0.014 + 0.11
    # off-peak (17:00 and 00:15 UTC): 800,000 x $0.135 + 200,000 x $0.035 + 100,000 x $0.55 = 0.108 + 0.007 + 0.055
    counts = {"model": "deepseek-chat", "input_tokens": 1_000_000, "cached_input_tokens": 200_000,
              "output_tokens": 100_000}  # fmt: skip
    assert _cost(published_catalog, occurred_at=datetime(2026, 3, 2, 12, tzinfo=UTC), **counts).cost_usd == (
        Decimal("0.34")
    )
    assert _cost(published_catalog, occurred_at=datetime(2026, 3, 2, 17, tzinfo=UTC), **counts).cost_usd == (
        Decimal("0.17")
    )
    assert _cost(published_catalog, occurred_at=datetime(2026, 3, 3, 0, 15, tzinfo=UTC), **counts).cost_usd == (
        Decimal("0.17")
    )
    assert _cost(published_catalog, occurred_at=datetime(2026, 3, 3, 0, 30, tzinfo=UTC), **counts).cost_usd == (
        Decimal("0.34")
    )


@pytest.mark.parametrize(
    "dimension",
    [
        {"seconds": Decimal(3)},
        {"characters": 10},
        {"requests": 1},
        {"cache_write_1h_input_tokens": 10, "input_tokens": 10},
    ],
)
def test_a_dimension_the_model_does_not_price_is_refused_not_free(published_catalog, dimension):
    from pricing.errors import UnpricedDimension

    with pytest.raises(UnpricedDimension):
        _cost(published_catalog, model="gpt-4o", **dimension)


@pytest.mark.parametrize(
    ("sent", "model_id"),
    [
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("azure/gpt-4o-2024-08-06", "gpt-4o"),
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("vertex_ai/claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("gemini/gemini-2.5-pro", "gemini-2.5-pro"),
        ("openrouter/meta-llama/llama-3.3-70b-instruct", "meta-llama/llama-3.3-70b-instruct"),
        ("GPT-4o", "gpt-4o"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ],
)
def test_names_people_send_resolve_to_the_catalog_model(published_catalog, sent, model_id):
    rating = _cost(published_catalog, model=sent, input_tokens=1_000, output_tokens=0)
    assert rating.model_id == model_id


def test_an_unknown_name_is_refused_with_close_names(published_catalog):
    from pricing.errors import UnknownModel

    with pytest.raises(UnknownModel) as refused:
        _cost(published_catalog, model="openai/gpt-4o-mni", input_tokens=1, output_tokens=1)
    assert refused.value.suggestions[0] == "gpt-4o-mini"
    assert len(refused.value.suggestions) <= 3
    assert "did you mean" in str(refused.value)
