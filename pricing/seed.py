"""The seed catalog `manage.py seed_catalog` loads: models, features, rates, plans and operation limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# Seed versions start here, so events of any realistic date rate against them.
SEED_EFFECTIVE_FROM = datetime(2024, 1, 1, tzinfo=UTC)
SEED_REASON = "seed catalog"

CREDIT_TIERS = ["free", "jive", "jigga"]
MESSAGE_PLANS = ["starter", "professional", "enterprise"]
TOKEN_PLANS = ["basic", "pro", "business"]
ALL_PLANS = CREDIT_TIERS + MESSAGE_PLANS + TOKEN_PLANS
ALL_BUT_FREE = [code for code in ALL_PLANS if code != "free"]

# model_id, display name, provider, input, cached input, output (USD per 1M), image (USD), tiers, aliases
MODELS = [
    ("qwen-3-32b", "Qwen 3 32B", "cerebras", "0.10", None, "0.10", "0", ALL_PLANS, []),
    ("qwen-3-235b-a22b-instruct-2507", "Qwen 3 235B A22B Instruct", "openrouter", "0.80", None, "1.10", "0", ALL_BUT_FREE, []),
    ("meta-llama/llama-3.3-70b-instruct", "Llama 3.3 70B Instruct", "openrouter", "0.35", None, "0.35", "0", ALL_PLANS, []),
    ("flux-1.1-pro", "FLUX 1.1 [pro]", "bfl", "0", None, "0", "0.04", ALL_BUT_FREE, []),
    ("pollinations-image", "Pollinations image", "pollinations", "0", None, "0", "0.00", ALL_PLANS, []),
    ("gpt-4o-mini", "GPT-4o mini", "openai", "0.15", "0.075", "0.60", "0", ALL_PLANS, ["gpt-4o-mini-2024-07-18"]),
    ("claude-3-5-haiku", "Claude 3.5 Haiku", "anthropic", "0.80", "0.08", "4.00", "0", ALL_PLANS, ["claude-3-5-haiku-20241022"]),
]  # fmt: skip

# prompt-cache writes where the provider bills them apart (USD per 1M): model_id -> (5-minute writes, 1-hour writes);
# Anthropic's list prices, 1.25x and 2x the input price
CACHE_WRITE_PRICES = {"claude-3-5-haiku": ("1.00", "1.60")}

# feature_key, display name, cost type, cost USD, billable, tier multipliers
FEATURES = [
    ("rag_search", "RAG search", "per_use", "0", False, {}),
    ("chart_gen", "Chart generation", "per_use", "0", False, {}),
    ("math_tools", "Math tools", "per_use", "0", False, {}),
    (
        "optillm_cot",
        "OptiLLM chain of thought",
        "multiplier",
        "1",
        True,
        {"free": "1.1", "jive": "1.3", "jigga": "1.5"},
    ),
    ("image_gen", "Image generation", "per_image", "0.04", True, {}),
]

RATES = [("ZAR", "18.50"), ("CREDITS", "10000")]

_CREDIT_TERMS: dict[str, Any] = {"unit": "credits", "overage_rate": "0", "markup": "1"}
# code, name, family, terms, stripe price ids
PLANS: list[tuple[str, str, str, dict[str, Any], bool]] = [
    ("free", "Free", "credits", {**_CREDIT_TERMS, "fee": "0", "included_units": "10000", "overage_allowed": False,
                                 "hard_limit": True, "requests_per_hour": 100}, False),
    ("jive", "Jive", "credits", {**_CREDIT_TERMS, "fee": "0", "included_units": None, "requests_per_hour": 500}, False),
    ("jigga", "Jigga", "credits", {**_CREDIT_TERMS, "fee": "0", "included_units": None, "requests_per_hour": 1000}, False),
    ("starter", "Starter", "messages", {"unit": "messages", "fee": "5", "included_units": "1000",
                                        "overage_rate": "0.00015", "monthly_spend_cap": "50"}, True),
    ("professional", "Professional", "messages", {"unit": "messages", "fee": "15", "included_units": "10000",
                                                  "overage_rate": "0.00010", "monthly_spend_cap": "200"}, True),
    ("enterprise", "Enterprise", "messages", {"unit": "messages", "fee": "0", "included_units": None,
                                              "overage_rate": "0.00005", "monthly_spend_cap": None}, True),
    ("basic", "Basic", "tokens", {"unit": "tokens", "fee": "0", "included_units": "10000", "overage_rate": "0.001",
                                  "max_overage_pct": "50", "requests_per_hour": 100}, True),
    ("pro", "Pro", "tokens", {"unit": "tokens", "fee": "0", "included_units": "50000", "overage_rate": "0.001",
                              "max_overage_pct": "100", "requests_per_hour": 500}, True),
    ("business", "Business", "tokens", {"unit": "tokens", "fee": "0", "included_units": "200000",
                                        "overage_rate": "0.0008", "max_overage_pct": "200", "requests_per_hour": 1000}, True),
]  # fmt: skip

OPERATION_LIMITS: list[dict[str, Any]] = [
    {
        "operation_type": "chat_message",
        "max_input_tokens": 10_000,
        "max_output_tokens": 2_000,
        "max_total_tokens": 12_000,
        "max_daily_cost_usd": "5",
        "max_monthly_cost_usd": "100",
        "alert_threshold_pct": 80,
    }
]
