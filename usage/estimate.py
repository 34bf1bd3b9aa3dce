"""Estimating a request before it is made: tokens from characters, by the provider's characters per token."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache

from core.cache import CACHE_ERRORS, cache_is_down, cache_mark_down
from pricing.catalog import CatalogSnapshot, PlanTermsVersion
from pricing.dimensions import Mode
from pricing.errors import InvalidUsage
from pricing.rating import UsageLine, rate_usage, usage_line_worst_case


@dataclass(frozen=True)
class Estimate:
    model_id: str
    input_tokens: int
    max_output_tokens: int
    cost_usd: Decimal
    charge_usd: Decimal
    credits: Decimal


def text_of(*, text: str | None, messages: list[Any] | None) -> str:
    """The text a request sends: `text`, or the contents of chat `messages` (strings or content parts)."""
    if text is not None:
        return text
    parts: list[str] = []
    for message in messages or []:
        content = message.get("content", "") if isinstance(message, dict) else message
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return "\n".join(parts)


def tokens_for(text: str, *, provider: str) -> int:
    per_token = settings.ESTIMATE_CHARS_PER_TOKEN.get(provider, settings.ESTIMATE_CHARS_PER_TOKEN["default"])
    return int((Decimal(len(text)) / per_token).to_integral_value(rounding=ROUND_CEILING))


def max_output_tokens_for(*, model: str, asked: int | None, snapshot: CatalogSnapshot) -> int:
    """The output budget of a request: what it asks for, else the model's `max_output_tokens` from the catalog."""
    if asked is not None:
        return asked
    entry = snapshot.find_model(model)
    if entry.max_output_tokens is None:
        raise InvalidUsage(
            f"max_output_tokens is required: the catalog has no maximum output for model {entry.model_id!r}"
        )
    return entry.max_output_tokens


def estimate_request(
    *, model: str, text: str, max_output_tokens: int, snapshot: CatalogSnapshot, tier: str,
    terms: PlanTermsVersion, at: datetime, input_tokens: int | None = None, images: int = 0,
    dimensions: Mapping[str, Any] | None = None,
) -> Estimate:  # fmt: skip
    """Tokens and cost of a request, cached for an hour by content hash, model, plan, output budget and dimensions.

    Input tokens are counted from the text unless given. A text-to-speech model (mode `audio_speech`) is priced by
    the text's characters when no `characters` are given; an embedding has no output.
    """
    entry = snapshot.active_model(model)
    extra = dict(dimensions or {})
    key_parts = [entry.model_id, tier, terms.id, max_output_tokens, input_tokens, images, sorted(extra.items()), text]
    digest = hashlib.sha256(json.dumps(key_parts, default=str).encode()).hexdigest()
    key = f"usage:estimate:{digest}"
    cached = None
    if not cache_is_down():
        try:
            cached = cache.get(key)
        except CACHE_ERRORS:  # without the cache the estimate is computed every time
            cache_mark_down()
    if isinstance(cached, Estimate):
        return cached
    if input_tokens is None:
        input_tokens = 0 if entry.mode == Mode.AUDIO_SPEECH else tokens_for(text, provider=entry.provider)
    if entry.mode == Mode.AUDIO_SPEECH and not extra.get("characters"):
        extra["characters"] = len(text)
    if entry.mode == Mode.EMBEDDING:
        max_output_tokens = 0
    line = UsageLine(
        model=entry.model_id, occurred_at=at, input_tokens=input_tokens, output_tokens=max_output_tokens,
        images=images, **extra,
    )  # fmt: skip
    rating = rate_usage(usage_line_worst_case(line, snapshot), snapshot, tier=tier, terms=terms)
    result = Estimate(
        model_id=entry.model_id, input_tokens=input_tokens, max_output_tokens=max_output_tokens,
        cost_usd=rating.cost_usd, charge_usd=rating.charge_usd, credits=rating.credits,
    )  # fmt: skip
    if not cache_is_down():
        try:
            cache.set(key, result, timeout=settings.ESTIMATE_CACHE_SECONDS)
        except CACHE_ERRORS:
            cache_mark_down()
    return result
