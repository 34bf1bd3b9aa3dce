"""The price dimensions: every way a provider bills a call, its unit, and the usage count it prices.

One table shared by the schema, rating, the console, the API and the importer (docs/pricing-dimensions.md is its
reader's copy). A price of None means the dimension is not priced: rating falls back where a fallback is documented
(`fallback`) and otherwise refuses an event that uses it, never rating it at $0.
"""

from __future__ import annotations

from dataclasses import dataclass


class Mode:
    CHAT = "chat"
    EMBEDDING = "embedding"
    IMAGE_GENERATION = "image_generation"
    AUDIO_TRANSCRIPTION = "audio_transcription"
    AUDIO_SPEECH = "audio_speech"
    RERANK = "rerank"
    SEARCH = "search"
    VIDEO_GENERATION = "video_generation"
    MODERATION = "moderation"


MODES: tuple[str, ...] = (
    Mode.CHAT,
    Mode.EMBEDDING,
    Mode.IMAGE_GENERATION,
    Mode.AUDIO_TRANSCRIPTION,
    Mode.AUDIO_SPEECH,
    Mode.RERANK,
    Mode.SEARCH,
    Mode.VIDEO_GENERATION,
    Mode.MODERATION,
)

SERVICE_TIERS: tuple[str, ...] = ("default", "batch", "flex", "priority")

PER_MILLION = "USD per 1M tokens"


@dataclass(frozen=True, slots=True)
class Dimension:
    price_field: str  # the ModelPrice field
    unit: str
    count: str  # the usage line field it prices
    fallback: str | None  # the price field used when this one is None
    modes: tuple[str, ...]  # the modes whose console and API show it


_TOKEN_MODES = (Mode.CHAT, Mode.IMAGE_GENERATION, Mode.AUDIO_TRANSCRIPTION, Mode.AUDIO_SPEECH, Mode.SEARCH)

# Order matters only for display. The token counts named here are the priced parts, not the event's fields: rating
# derives "uncached input" from input_tokens minus every part priced on its own (see pricing/rating.py).
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("input_per_million", PER_MILLION, "input_tokens", None, (*_TOKEN_MODES, Mode.EMBEDDING, Mode.MODERATION)),
    Dimension("cached_input_per_million", PER_MILLION, "cached_input_tokens", "input_per_million", (Mode.CHAT,)),
    Dimension("cache_write_per_million", PER_MILLION, "cache_write_input_tokens", "input_per_million", (Mode.CHAT,)),
    Dimension("cache_write_1h_per_million", PER_MILLION, "cache_write_1h_input_tokens", None, (Mode.CHAT,)),
    Dimension("output_per_million", PER_MILLION, "output_tokens", None, _TOKEN_MODES),
    Dimension("reasoning_per_million", PER_MILLION, "reasoning_tokens", "output_per_million", (Mode.CHAT,)),
    Dimension(
        "image_input_per_million",
        PER_MILLION,
        "image_input_tokens",
        "input_per_million",
        (Mode.CHAT, Mode.IMAGE_GENERATION),
    ),
    Dimension(
        "image_output_per_million",
        PER_MILLION,
        "image_output_tokens",
        "output_per_million",
        (Mode.CHAT, Mode.IMAGE_GENERATION),
    ),
    Dimension(
        "audio_input_per_million",
        PER_MILLION,
        "audio_input_tokens",
        "input_per_million",
        (Mode.CHAT, Mode.AUDIO_TRANSCRIPTION),
    ),
    Dimension(
        "audio_output_per_million",
        PER_MILLION,
        "audio_output_tokens",
        "output_per_million",
        (Mode.CHAT, Mode.AUDIO_SPEECH),
    ),
    Dimension("image_price", "USD per image", "images", None, (Mode.CHAT, Mode.IMAGE_GENERATION)),
    Dimension(
        "price_per_second",
        "USD per second",
        "seconds",
        None,
        (Mode.AUDIO_TRANSCRIPTION, Mode.AUDIO_SPEECH, Mode.VIDEO_GENERATION),
    ),
    Dimension("price_per_character", "USD per character", "characters", None, (Mode.AUDIO_SPEECH,)),
    Dimension(
        "price_per_request", "USD per request", "requests", None, (Mode.RERANK, Mode.SEARCH, Mode.CHAT, Mode.MODERATION)
    ),
)

DIMENSIONS_BY_FIELD = {d.price_field: d for d in DIMENSIONS}
TOKEN_PRICE_FIELDS: tuple[str, ...] = tuple(d.price_field for d in DIMENSIONS if d.unit == PER_MILLION)
# every price field a tier, service tier or off-peak window may name
OVERRIDABLE_PRICE_FIELDS: tuple[str, ...] = tuple(d.price_field for d in DIMENSIONS)
# the structured prices (JSON) on a price version
STRUCTURED_PRICE_FIELDS: tuple[str, ...] = ("image_prices", "tiers", "service_tiers", "off_peak")
