"""The price-dimension fields of a usage event (docs/pricing-dimensions.md): the names of the service tiers and
the UsageEvent columns they are stored in. They are read and checked with every other field by usage/events.py's
EVENT_FIELDS."""

from __future__ import annotations

from typing import Any

from pricing.dimensions import SERVICE_TIERS
from pricing.rating import UsageLine

# names providers use for the default tier: OpenAI's request value "auto", Anthropic's response value "standard"
SERVICE_TIER_NAMES = {**{name: name for name in SERVICE_TIERS}, "auto": "default", "standard": "default"}


def event_dimension_columns(line: UsageLine, *, provider_request_id: str) -> dict[str, Any]:
    """The UsageEvent columns that store the line's dimensions."""
    return {
        "cache_write_input_tokens": line.cache_write_input_tokens,
        "cache_write_1h_input_tokens": line.cache_write_1h_input_tokens,
        "image_input_tokens": line.image_input_tokens,
        "image_output_tokens": line.image_output_tokens,
        "audio_input_tokens": line.audio_input_tokens,
        "audio_output_tokens": line.audio_output_tokens,
        "image_size": line.image_size,
        "image_quality": line.image_quality,
        "seconds": line.seconds,
        "characters": line.characters,
        "requests": line.requests,
        "service_tier": line.service_tier,
        "provider_request_id": provider_request_id,
    }
