"""The price-dimension fields of a usage event (docs/pricing-dimensions.md): read, checked and stored.

Kept apart from usage/events.py so the event reader takes them in one call: `event_dimensions_read(raw, ...)` gives
the UsageLine's extra counts, `event_dimension_columns(...)` the UsageEvent columns they are stored in.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pricing.dimensions import SERVICE_TIERS
from pricing.rating import UsageLine

MAX_COUNT = 10**10
MAX_SECONDS = Decimal(10**7)  # about 115 days of audio or video in one call
SECONDS_PLACES = 6
TEXT_LENGTHS = {"image_size": 20, "image_quality": 20, "provider_request_id": 200}
# names providers use for the default tier: OpenAI's request value "auto", Anthropic's response value "standard"
SERVICE_TIER_NAMES = {**{name: name for name in SERVICE_TIERS}, "auto": "default", "standard": "default"}

INPUT_PARTS = ("cached_input_tokens", "cache_write_input_tokens", "cache_write_1h_input_tokens",
               "image_input_tokens", "audio_input_tokens")  # fmt: skip
OUTPUT_PARTS = ("reasoning_tokens", "image_output_tokens", "audio_output_tokens")
COUNTS = ("cache_write_input_tokens", "cache_write_1h_input_tokens", "image_input_tokens", "image_output_tokens",
          "audio_input_tokens", "audio_output_tokens", "characters", "requests")  # fmt: skip


class DimensionRefused(Exception):
    """A dimension field as sent cannot be used; `code` and `message` as usage.events reports them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _count(raw: dict[str, Any], name: str) -> int:
    value = raw.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise DimensionRefused("invalid_event", f"{name} must be a whole number >= 0, got {value!r}"[:300])
    if value < 0 or value > MAX_COUNT:
        raise DimensionRefused("out_of_range", f"{name} must be between 0 and {MAX_COUNT}, got {value}")
    return value


def _text(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > TEXT_LENGTHS[name] or not value.isprintable():
        raise DimensionRefused(
            "invalid_event", f"{name} must be printable text of at most {TEXT_LENGTHS[name]} characters"
        )
    return value


def _seconds(raw: dict[str, Any]) -> Decimal:
    value = raw.get("seconds")
    if value is None:
        return Decimal(0)
    if isinstance(value, bool | float) or not isinstance(value, int | str | Decimal):
        # JSON numbers with a fraction reach here as Decimal (the API parses them so), never as float
        raise DimensionRefused("invalid_event", f"seconds must be a decimal number >= 0, got {value!r}"[:300])
    try:
        seconds = Decimal(value)
    except InvalidOperation:
        raise DimensionRefused("invalid_event", f"seconds must be a decimal number >= 0, got {value!r}"[:300]) from None
    if not seconds.is_finite() or seconds < 0 or seconds > MAX_SECONDS:
        raise DimensionRefused("out_of_range", f"seconds must be between 0 and {MAX_SECONDS}")
    if seconds.as_tuple().exponent < -SECONDS_PLACES:  # type: ignore[operator]
        raise DimensionRefused("invalid_event", f"seconds has at most {SECONDS_PLACES} decimal places")
    return seconds


def event_dimensions_read(raw: dict[str, Any], *, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """The UsageLine fields beyond tokens in and out, cached and reasoning: checked, with the parts of input and
    output together at most their totals (`subset_exceeds_total`)."""
    values: dict[str, Any] = {name: _count(raw, name) for name in COUNTS}
    tier = raw.get("service_tier")
    if tier is None or tier == "":
        values["service_tier"] = "default"
    elif not isinstance(tier, str) or tier not in SERVICE_TIER_NAMES:
        raise DimensionRefused("invalid_event", f"service_tier must be one of {', '.join(SERVICE_TIERS)}")
    else:
        values["service_tier"] = SERVICE_TIER_NAMES[tier]
    values["image_size"] = _text(raw, "image_size")
    values["image_quality"] = _text(raw, "image_quality")
    values["seconds"] = _seconds(raw)
    cached = raw.get("cached_input_tokens") if isinstance(raw.get("cached_input_tokens"), int) else 0
    reasoning = raw.get("reasoning_tokens") if isinstance(raw.get("reasoning_tokens"), int) else 0
    if cached + sum(values[name] for name in INPUT_PARTS[1:]) > input_tokens:
        raise DimensionRefused(
            "subset_exceeds_total",
            "cached_input_tokens, cache_write_input_tokens, cache_write_1h_input_tokens, image_input_tokens and "
            "audio_input_tokens are parts of input_tokens: together they cannot exceed it",
        )
    if reasoning + sum(values[name] for name in OUTPUT_PARTS[1:]) > output_tokens:
        raise DimensionRefused(
            "subset_exceeds_total",
            "reasoning_tokens, image_output_tokens and audio_output_tokens are parts of output_tokens: together "
            "they cannot exceed it",
        )
    return values


def event_provider_request_id(raw: dict[str, Any]) -> str:
    """The provider's own id of the call (for reconciliation), checked."""
    return _text(raw, "provider_request_id")


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
