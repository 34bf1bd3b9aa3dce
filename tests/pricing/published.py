"""Models at their providers' published list prices (USD), loaded through the catalog services.

Sources, as published on the providers' price pages: Anthropic (Claude Sonnet 4.5: $3/$15, over 200k input tokens
$6/$22.50; 5-minute cache writes 1.25x, 1-hour writes 2x, cache reads 0.1x; Message Batches 50 %), OpenAI (gpt-4o
$2.50/$1.25 cached/$10, Batch API 50 %; o3 flex $1/$4; gpt-5 priority $2.50/$20; text-embedding-3-small $0.02;
DALL-E 3 by size and quality; gpt-image-1 text $5, image input $10, image output $40 per 1M tokens; tts-1 $15 per 1M
characters; whisper-1 $0.006 per minute; gpt-4o-audio-preview audio $40/$80; sora-2 $0.10 per second), Google
(Gemini 2.5 Pro $1.25/$10, over 200k $2.50/$15; Gemini 2.5 Flash preview 04-17 thinking output $3.50), DeepSeek
(deepseek-chat $0.27/$0.07/$1.10, 50 % off 16:30-00:30 UTC), Cohere (Rerank 3.5 $2 per 1,000 searches).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pricing import services

FROM = datetime(2025, 1, 1, tzinfo=UTC)
ANTHROPIC_BASE = {
    "input_per_million": "3", "cached_input_per_million": "0.3", "cache_write_per_million": "3.75",
    "cache_write_1h_per_million": "6", "output_per_million": "15",
}  # fmt: skip

PUBLISHED: list[tuple[str, str, str, dict[str, Any]]] = [
    ("claude-sonnet-4-5", "anthropic", "chat", {
        **ANTHROPIC_BASE,
        "tiers": [{"above_input_tokens": 200_000, "input_per_million": "6", "cached_input_per_million": "0.6",
                   "cache_write_per_million": "7.5", "cache_write_1h_per_million": "12",
                   "output_per_million": "22.5"}],
        "service_tiers": {"batch": {"input_per_million": "1.5", "cached_input_per_million": "0.15",
                                    "cache_write_per_million": "1.875", "cache_write_1h_per_million": "3",
                                    "output_per_million": "7.5"}},
    }),
    ("gpt-4o", "openai", "chat", {
        "input_per_million": "2.5", "cached_input_per_million": "1.25", "output_per_million": "10",
        "service_tiers": {"batch": {"input_per_million": "1.25", "output_per_million": "5"}},
    }),
    ("o3", "openai", "chat", {
        "input_per_million": "2", "cached_input_per_million": "0.5", "output_per_million": "8",
        "service_tiers": {"flex": {"input_per_million": "1", "cached_input_per_million": "0.25",
                                   "output_per_million": "4"}},
    }),
    ("gpt-5", "openai", "chat", {
        "input_per_million": "1.25", "cached_input_per_million": "0.125", "output_per_million": "10",
        "service_tiers": {"priority": {"input_per_million": "2.5", "cached_input_per_million": "0.25",
                                       "output_per_million": "20"}},
    }),
    ("gemini-2.5-pro", "google", "chat", {
        "input_per_million": "1.25", "output_per_million": "10",
        "tiers": [{"above_input_tokens": 200_000, "input_per_million": "2.5", "output_per_million": "15"}],
    }),
    ("gemini-2.5-flash-preview-04-17", "google", "chat", {
        "input_per_million": "0.15", "output_per_million": "0.6", "reasoning_per_million": "3.5",
    }),
    ("text-embedding-3-small", "openai", "embedding", {"input_per_million": "0.02", "output_per_million": "0"}),
    ("dall-e-3", "openai", "image_generation", {
        "image_prices": {"1024x1024/standard": "0.04", "1024x1792/standard": "0.08", "1792x1024/standard": "0.08",
                         "1024x1024/hd": "0.08", "1024x1792/hd": "0.12", "1792x1024/hd": "0.12"},
    }),
    ("gpt-image-1", "openai", "image_generation", {
        "input_per_million": "5", "cached_input_per_million": "1.25", "output_per_million": "40",
        "image_input_per_million": "10", "image_output_per_million": "40",
    }),
    ("tts-1", "openai", "audio_speech", {"price_per_character": "0.000015"}),
    ("whisper-1", "openai", "audio_transcription", {"price_per_second": "0.0001"}),
    ("gpt-4o-audio-preview", "openai", "chat", {
        "input_per_million": "2.5", "output_per_million": "10",
        "audio_input_per_million": "40", "audio_output_per_million": "80",
    }),
    ("deepseek-chat", "deepseek", "chat", {
        "input_per_million": "0.27", "cached_input_per_million": "0.07", "output_per_million": "1.1",
        "off_peak": [{"start": "16:30", "end": "00:30", "input_per_million": "0.135",
                      "cached_input_per_million": "0.035", "output_per_million": "0.55"}],
    }),
    ("rerank-v3.5", "cohere", "rerank", {"price_per_request": "0.002"}),
    ("sora-2", "openai", "video_generation", {"price_per_second": "0.1"}),
]  # fmt: skip


def published_catalog_load(*, allowed_tiers: list[str] | None = None) -> None:
    """Create every model above with its published prices, from 2025-01-01."""
    for model_id, provider, mode, prices in PUBLISHED:
        model = services.model_create(
            model_id=model_id, display_name=model_id, provider=provider, mode=mode, allowed_tiers=allowed_tiers
        )
        services.model_price_set(model=model, effective_from=FROM, reason="published list price", **prices)
