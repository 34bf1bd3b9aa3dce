"""The 2026 price dimensions through the HTTP API: recorded events, estimate and authorize agree with the providers'
published prices (tests/pricing/published.py), computed by hand in tests/pricing/test_worked_examples.py."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.factories import AccountFactory
from usage.models import UsageEvent

CREDITS_PER_USD = Decimal(10000)

# (event fields, the provider's price in USD)
CALLS = [
    pytest.param(
        {"model": "anthropic/claude-sonnet-4-5-20250929", "input_tokens": 180_000, "cached_input_tokens": 100_000,
         "cache_write_input_tokens": 50_000, "cache_write_1h_input_tokens": 20_000, "output_tokens": 2_000},
        Decimal("0.3975"), id="anthropic-cache-writes",
    ),
    pytest.param(
        {"model": "claude-sonnet-4-5", "input_tokens": 250_000, "output_tokens": 1_000},
        Decimal("1.5225"), id="claude-250k-input-at-the-200k-tier",
    ),
    pytest.param(
        {"model": "openai/gpt-4o", "input_tokens": 1_000_000, "output_tokens": 100_000, "service_tier": "batch"},
        Decimal("1.75"), id="openai-batch",
    ),
    pytest.param(
        {"model": "text-embedding-3-small", "input_tokens": 1_234_567, "output_tokens": 0},
        Decimal("0.02469134"), id="embedding",
    ),
]  # fmt: skip


@pytest.fixture
def published(catalog):
    from tests.pricing.published import published_catalog_load

    published_catalog_load()


@pytest.fixture
def rich_account(published):
    return AccountFactory.create(plan="jive", credits="1000000")


@pytest.mark.parametrize(("fields", "price"), CALLS)
def test_recorded_call_costs_the_providers_price_and_estimate_and_authorize_agree(
    rich_account, api_client_for, fields, price
):
    client = api_client_for(rich_account)
    worst_case = {k: v for k, v in fields.items() if k != "output_tokens"}

    estimate = client.post("/api/usage/estimate", {**worst_case, "max_output_tokens": fields["output_tokens"]},
                           format="json")  # fmt: skip
    assert estimate.status_code == 200, estimate.content
    assert Decimal(estimate.json()["cost_usd"]) == price

    held = client.post(
        "/api/usage/authorize",
        {"request_id": "call-1", **worst_case, "max_output_tokens": fields["output_tokens"]},
        format="json",
    )
    assert held.status_code == 200, held.content
    assert held.json()["allowed"] is True
    assert Decimal(held.json()["held_credits"]) == price * CREDITS_PER_USD

    recorded = client.post(
        "/api/usage/events", {"request_id": "call-1", "provider_request_id": "msg_01", **fields}, format="json"
    )
    assert recorded.status_code == 201, recorded.content
    result = recorded.json()["results"][0]
    assert (result["status"], Decimal(result["cost_usd"]), Decimal(result["credits"])) == (
        "recorded", price, price * CREDITS_PER_USD
    )  # fmt: skip
    balance = client.get("/api/billing/balance").json()
    assert Decimal(balance["credits"]) == Decimal(1_000_000) - price * CREDITS_PER_USD
    assert Decimal(balance["held_credits"]) == 0
    event = UsageEvent.objects.get(request_id="call-1")
    assert event.provider_request_id == "msg_01"
    assert event.service_tier == fields.get("service_tier", "default")
    assert event.cache_write_input_tokens == fields.get("cache_write_input_tokens", 0)
    assert event.cache_write_1h_input_tokens == fields.get("cache_write_1h_input_tokens", 0)


def test_per_unit_calls_are_recorded_at_their_unit_prices(rich_account, api_client_for):
    client = api_client_for(rich_account)
    events = [
        # whisper-1: 90.5 s x $0.0001; tts-1: 1,000 characters x $0.000015; rerank: 25 x $0.002
        {"request_id": "w", "model": "openai/whisper-1", "input_tokens": 0, "output_tokens": 0, "seconds": "90.5"},
        {"request_id": "t", "model": "tts-1", "input_tokens": 0, "output_tokens": 0, "characters": 1_000},
        {"request_id": "r", "model": "cohere/rerank-v3.5", "input_tokens": 0, "output_tokens": 0, "requests": 25},
        # DALL-E 3: 2 HD 1792x1024 images x $0.12
        {"request_id": "i", "model": "dall-e-3", "input_tokens": 0, "output_tokens": 0, "images": 2,
         "image_size": "1792x1024", "image_quality": "hd"},
    ]  # fmt: skip
    body = client.post("/api/usage/events", {"events": events}, format="json").json()
    costs = {r["request_id"]: Decimal(r["cost_usd"]) for r in body["results"]}
    assert costs == {"w": Decimal("0.00905"), "t": Decimal("0.015"), "r": Decimal("0.05"), "i": Decimal("0.24")}
    assert UsageEvent.objects.get(request_id="w").seconds == Decimal("90.5")


def test_an_estimate_of_speech_is_priced_by_the_texts_characters(rich_account, api_client_for):
    response = api_client_for(rich_account).post(
        "/api/usage/estimate", {"model": "tts-1", "text": "x" * 2_000}, format="json"
    )
    # 2,000 characters x $0.000015
    assert Decimal(response.json()["cost_usd"]) == Decimal("0.03")


def test_authorize_holds_a_reasoning_models_output_at_its_reasoning_price(rich_account, api_client_for):
    # gemini-2.5-flash-preview-04-17: thinking output $3.50, other output $0.60: 1,000 max output held at $3.50
    held = api_client_for(rich_account).post(
        "/api/usage/authorize",
        {
            "request_id": "think",
            "model": "gemini-2.5-flash-preview-04-17",
            "input_tokens": 0,
            "max_output_tokens": 1000,
        },
        format="json",
    )
    assert Decimal(held.json()["held_credits"]) == Decimal("0.0035") * CREDITS_PER_USD


def test_authorize_without_max_output_tokens_holds_the_models_maximum(rich_account, api_client_for):
    from pricing.models import AIModel
    from pricing.services import model_update

    model_update(model=AIModel.objects.get(model_id="gpt-4o"), max_output_tokens=16_384)
    client = api_client_for(rich_account)
    held = client.post("/api/usage/authorize", {"request_id": "a", "model": "gpt-4o", "input_tokens": 1000},
                       format="json")  # fmt: skip
    # 1,000 x $2.50 + 16,384 x $10 = 0.0025 + 0.16384
    assert Decimal(held.json()["held_credits"]) == Decimal("0.16634") * CREDITS_PER_USD
    refused = client.post("/api/usage/authorize", {"request_id": "b", "model": "o3", "input_tokens": 1000},
                          format="json")  # fmt: skip
    assert refused.status_code == 400
    assert "max_output_tokens is required" in refused.json()["message"]


@pytest.mark.parametrize(
    ("fields", "code", "says"),
    [
        ({"model": "gpt-4o", "service_tier": "flex"}, "unpriced_dimension", "flex"),
        ({"model": "gpt-4o", "seconds": "3"}, "unpriced_dimension", "price_per_second"),
        ({"model": "dall-e-3", "images": 1, "image_size": "256x256", "image_quality": "hd"}, "unpriced_dimension",
         "256x256"),
        ({"model": "openai/gpt-4o-mni"}, "unknown_model", "gpt-4o-mini"),
        ({"model": "gpt-4o", "cache_write_input_tokens": 11}, "subset_exceeds_total", "parts of input_tokens"),
        ({"model": "gpt-4o", "service_tier": "turbo"}, "invalid_event", "service_tier"),
        ({"model": "gpt-4o", "seconds": "-1"}, "out_of_range", "seconds"),
    ],
)  # fmt: skip
def test_an_event_that_cannot_be_priced_is_rejected_and_kept(rich_account, api_client_for, fields, code, says):
    from usage.models import RejectedEvent

    body = {"request_id": "bad", "input_tokens": 10, "output_tokens": 10, **fields}
    response = api_client_for(rich_account).post("/api/usage/events", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["results"][0]["error"]
    assert error["code"] == code
    assert says in error["message"]
    assert RejectedEvent.objects.get(request_id="bad").error_code == code
