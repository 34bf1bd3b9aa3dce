"""Estimating a request before it is made: tokens from characters, by the provider's characters per token."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache

from config.cache import CACHE_ERRORS, cache_is_down, cache_mark_down
from pricing.catalog import CatalogSnapshot, PlanTermsVersion
from pricing.rating import UsageLine, rate_usage


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


def estimate_request(
    *, model: str, text: str, max_output_tokens: int, snapshot: CatalogSnapshot, tier: str,
    terms: PlanTermsVersion, at: datetime,
) -> Estimate:  # fmt: skip
    """Tokens and cost of a request, cached for an hour by content hash, model, plan and output budget."""
    entry = snapshot.active_model(model)
    digest = hashlib.sha256(json.dumps([entry.model_id, tier, terms.id, max_output_tokens, text]).encode()).hexdigest()
    key = f"usage:estimate:{digest}"
    cached = None
    if not cache_is_down():
        try:
            cached = cache.get(key)
        except CACHE_ERRORS:  # without the cache the estimate is computed every time
            cache_mark_down()
    if isinstance(cached, Estimate):
        return cached
    input_tokens = tokens_for(text, provider=entry.provider)
    rating = rate_usage(
        UsageLine(model=entry.model_id, occurred_at=at, input_tokens=input_tokens, output_tokens=max_output_tokens),
        snapshot, tier=tier, terms=terms,
    )  # fmt: skip
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
