"""Reading one usage event as a client sent it: pure checks, each refusal with a code and a message."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_datetime

from pricing.rating import FeatureUse, UsageLine
from usage.event_dimensions import DimensionRefused, event_dimensions_read, event_provider_request_id

MAX_COUNT = 10**10  # no single provider call has more tokens or images than this
MAX_TEXT = {"operation_type": 100, "user": 200, "conversation_id": 200}


class EventRefused(Exception):
    """The event cannot be recorded as sent; `code` says why for the client and the dead-letter table."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ParsedEvent:
    request_id: str
    line: UsageLine
    operation_type: str
    user: str
    conversation_id: str
    metadata: dict[str, Any]
    features_raw: list[Any]
    provider_request_id: str = ""


def request_id_of(raw: Any) -> str:
    """The request id of a raw event, for reporting, whatever else is wrong with it."""
    value = raw.get("request_id") if isinstance(raw, dict) else None
    return value[:200] if isinstance(value, str) else ""


def _count(raw: dict[str, Any], name: str, *, required: bool = False) -> int:
    value = raw.get(name)
    if value is None:
        if required:
            raise EventRefused("invalid_event", f"{name} is required")
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventRefused("invalid_event", f"{name} must be a whole number >= 0, got {value!r}")
    if value < 0 or value > MAX_COUNT:
        raise EventRefused("out_of_range", f"{name} must be between 0 and {MAX_COUNT}, got {value}")
    return value


def _text(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name) or ""
    if not isinstance(value, str) or len(value) > MAX_TEXT[name]:
        raise EventRefused("invalid_event", f"{name} must be text of at most {MAX_TEXT[name]} characters")
    return value


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool | float) or not isinstance(value, int | str | Decimal):
        raise EventRefused("invalid_event", f"{name} must be a decimal number, got {value!r}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise EventRefused("invalid_event", f"{name} must be a decimal number, got {value!r}") from None
    if not result.is_finite():
        raise EventRefused("invalid_event", f"{name} must be finite")
    return result


def _features(raw: dict[str, Any]) -> tuple[FeatureUse, ...]:
    value = raw.get("features") or []
    if not isinstance(value, list) or len(value) > 50:
        raise EventRefused("invalid_event", "features must be a list of keys or {key, quantity} objects (at most 50)")
    uses = []
    for item in value:
        if isinstance(item, str) and item:
            uses.append(FeatureUse(key=item))
        elif isinstance(item, dict) and isinstance(item.get("key"), str) and item["key"]:
            quantity = _decimal(item.get("quantity", 1), f"features[{item['key']}].quantity")
            if quantity < 0:
                raise EventRefused("out_of_range", f"features[{item['key']}].quantity must be >= 0")
            uses.append(FeatureUse(key=item["key"], quantity=quantity, cepo=item.get("cepo") is True))
        else:
            raise EventRefused("invalid_event", f"features: cannot read {item!r}")
    return tuple(uses)


def event_parse(
    raw: Any, *, received_at: datetime, late_window: timedelta, future_skew: timedelta, metadata_max_bytes: int
) -> ParsedEvent:
    """Check one event's shape and numbers; raise EventRefused with the first problem found."""
    if not isinstance(raw, dict):
        raise EventRefused("invalid_event", "an event must be a JSON object")
    request_id = raw.get("request_id")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 128 or not request_id.isprintable():
        raise EventRefused("invalid_event", "request_id is required: 1 to 128 printable characters")
    model = raw.get("model")
    if not isinstance(model, str) or not model or len(model) > 200:
        raise EventRefused("invalid_event", "model is required: a catalog model id")
    input_tokens = _count(raw, "input_tokens", required=True)
    output_tokens = _count(raw, "output_tokens", required=True)
    cached = _count(raw, "cached_input_tokens")
    reasoning = _count(raw, "reasoning_tokens")
    images = _count(raw, "images")
    if cached > input_tokens:
        raise EventRefused("subset_exceeds_total", "cached_input_tokens cannot exceed input_tokens")
    if reasoning > output_tokens:
        raise EventRefused("subset_exceeds_total", "reasoning_tokens cannot exceed output_tokens")
    multiplier = _decimal(raw.get("multiplier", 1), "multiplier")
    if multiplier < 1 or multiplier > 1000:
        raise EventRefused("out_of_range", f"multiplier must be between 1 and 1000, got {multiplier}")
    occurred_at = received_at
    if raw.get("occurred_at") is not None:
        parsed = parse_datetime(raw["occurred_at"]) if isinstance(raw["occurred_at"], str) else None
        if parsed is None or parsed.tzinfo is None:
            raise EventRefused(
                "invalid_event", "occurred_at must be an ISO 8601 time with a zone, e.g. 2026-11-21T10:00:00Z"
            )
        occurred_at = parsed
    if occurred_at < received_at - late_window:
        raise EventRefused("event_too_old", f"occurred_at is older than the {late_window.days}-day late-event window")
    if occurred_at > received_at + future_skew:
        raise EventRefused("event_in_future", "occurred_at is in the future")
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise EventRefused("invalid_event", "metadata must be an object")
    if len(json.dumps(metadata, default=str)) > metadata_max_bytes:
        raise EventRefused("invalid_event", f"metadata must be at most {metadata_max_bytes} bytes")
    try:  # the price dimensions (docs/pricing-dimensions.md)
        dimensions = event_dimensions_read(raw, input_tokens=input_tokens, output_tokens=output_tokens)
        provider_request_id = event_provider_request_id(raw)
    except DimensionRefused as refused:
        raise EventRefused(refused.code, refused.message) from None
    return ParsedEvent(
        request_id=request_id,
        line=UsageLine(
            model=model,
            occurred_at=occurred_at,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached,
            reasoning_tokens=reasoning,
            images=images,
            features=_features(raw),
            multiplier=multiplier,
            **dimensions,
        ),
        operation_type=_text(raw, "operation_type"),
        user=_text(raw, "user"),
        conversation_id=_text(raw, "conversation_id"),
        metadata=metadata,
        features_raw=list(raw.get("features") or []),
        provider_request_id=provider_request_id,
    )
