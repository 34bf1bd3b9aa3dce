"""Provider usage -> TokenLedger event fields, in one place (the SDK's wrappers and the metering gateway read it).

It reads the official clients' response objects and their plain-JSON form alike, and needs neither package.

- OpenAI Chat Completions: `prompt_tokens` -> input_tokens, `prompt_tokens_details.cached_tokens` ->
  cached_input_tokens (a part of the input), `completion_tokens` -> output_tokens,
  `completion_tokens_details.reasoning_tokens` -> reasoning_tokens (a part of the output).
- OpenAI Responses: `input_tokens`, `input_tokens_details.cached_tokens`, `output_tokens`,
  `output_tokens_details.reasoning_tokens`, the same way.
- Anthropic Messages: Anthropic's `input_tokens` counts only the uncached input, so the event's input_tokens is
  `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`; cache reads -> cached_input_tokens;
  cache writes -> cache_write_input_tokens (5-minute) and cache_write_1h_input_tokens (1-hour), from
  `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens` (all writes are 5-minute when the
  split is absent). In a stream, `message_start` carries the input side and `message_delta` the running output
  (and, in newer API versions, updated input counts): the latest value of each count wins.
- The service tier: OpenAI's `default`/`auto` -> default, `flex`, `priority`; Anthropic's `standard` -> default,
  `priority`, `batch`. Others are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OPENAI_TIERS = {"default": "default", "auto": "default", "flex": "flex", "priority": "priority"}
ANTHROPIC_TIERS = {"standard": "default", "priority": "priority", "batch": "batch"}


def _get(obj: Any, name: str) -> Any:
    """A field of a response object or of its JSON form."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(obj: Any, *path: str) -> int:
    for name in path:
        obj = _get(obj, name)
    return obj if isinstance(obj, int) and not isinstance(obj, bool) and obj > 0 else 0


@dataclass
class MeteredUsage:
    """What one provider call used, as TokenLedger event fields."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_input_tokens: int = 0
    cache_write_1h_input_tokens: int = 0
    service_tier: str | None = None
    model: str | None = None
    provider_request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def event_fields(self) -> dict[str, Any]:
        """The fields to send on the event (zero subsets and unknown values left out)."""
        fields: dict[str, Any] = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        for name in ("cached_input_tokens", "reasoning_tokens", "cache_write_input_tokens",
                     "cache_write_1h_input_tokens"):  # fmt: skip
            if getattr(self, name):
                fields[name] = getattr(self, name)
        if self.service_tier:
            fields["service_tier"] = self.service_tier
        if self.provider_request_id:
            fields["provider_request_id"] = self.provider_request_id
        return fields


def openai_chat_usage(usage: Any) -> MeteredUsage:
    """A Chat Completions `usage` object (or dict)."""
    return MeteredUsage(
        input_tokens=_int(usage, "prompt_tokens"),
        output_tokens=_int(usage, "completion_tokens"),
        cached_input_tokens=_int(usage, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_int(usage, "completion_tokens_details", "reasoning_tokens"),
    )


def openai_responses_usage(usage: Any) -> MeteredUsage:
    """A Responses API `usage` object (or dict)."""
    return MeteredUsage(
        input_tokens=_int(usage, "input_tokens"),
        output_tokens=_int(usage, "output_tokens"),
        cached_input_tokens=_int(usage, "input_tokens_details", "cached_tokens"),
        reasoning_tokens=_int(usage, "output_tokens_details", "reasoning_tokens"),
    )


def anthropic_usage(usage: Any) -> MeteredUsage:
    """An Anthropic Messages `usage` object (or dict)."""
    uncached = _int(usage, "input_tokens")
    cache_read = _int(usage, "cache_read_input_tokens")
    cache_written = _int(usage, "cache_creation_input_tokens")
    split = _get(usage, "cache_creation")
    one_hour = _int(split, "ephemeral_1h_input_tokens")
    five_minutes = _int(split, "ephemeral_5m_input_tokens") if split is not None else cache_written - one_hour
    if split is not None and five_minutes + one_hour < cache_written:  # a split that does not cover every write
        five_minutes = cache_written - one_hour
    tier = _get(usage, "service_tier")
    return MeteredUsage(
        input_tokens=uncached + cache_read + max(cache_written, five_minutes + one_hour),
        output_tokens=_int(usage, "output_tokens"),
        cached_input_tokens=cache_read,
        cache_write_input_tokens=max(0, five_minutes),
        cache_write_1h_input_tokens=one_hour,
        service_tier=ANTHROPIC_TIERS.get(tier) if isinstance(tier, str) else None,
    )


def _request_id(response: Any) -> str | None:
    value = getattr(response, "_request_id", None)
    if isinstance(value, str) and value:
        return value
    return None


def usage_from_response(response: Any) -> MeteredUsage:
    """The usage of a complete provider response: an OpenAI ChatCompletion or Response, or an Anthropic Message
    (objects from the official clients, or their JSON). Raises ValueError when it carries no usage."""
    usage = _get(response, "usage")
    if usage is None:
        raise ValueError("this response carries no usage; record explicit counts instead")
    kind = _get(response, "object") or _get(response, "type")
    if kind == "message" or _get(usage, "cache_read_input_tokens") is not None:
        metered = anthropic_usage(usage)
    elif kind == "response" or _get(usage, "input_tokens") is not None:
        metered = openai_responses_usage(usage)
        tier = _get(response, "service_tier")
        metered.service_tier = OPENAI_TIERS.get(tier) if isinstance(tier, str) else None
    else:
        metered = openai_chat_usage(usage)
        tier = _get(response, "service_tier")
        metered.service_tier = OPENAI_TIERS.get(tier) if isinstance(tier, str) else None
    model = _get(response, "model")
    metered.model = model if isinstance(model, str) and model else None
    metered.provider_request_id = _request_id(response) or _str(_get(response, "id"))
    return metered


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class AnthropicStreamUsage:
    """Usage gathered from the events of an Anthropic Messages stream (message_start, message_delta)."""

    def __init__(self) -> None:
        self.counts: dict[str, Any] = {}
        self.model: str | None = None
        self.message_id: str | None = None
        self.seen = False
        # `message_start` counts the input and only the first output token; the output is final once a
        # `message_delta` has carried its usage (a stream broken off before it produced more than it says)
        self.final = False

    def feed(self, event: Any) -> None:
        kind = _get(event, "type")
        if kind == "message_start":
            message = _get(event, "message")
            self.model = _str(_get(message, "model")) or self.model
            self.message_id = _str(_get(message, "id")) or self.message_id
            self._merge(_get(message, "usage"))
        elif kind == "message_delta":
            usage = _get(event, "usage")
            self._merge(usage)
            self.final = self.final or usage is not None

    def _merge(self, usage: Any) -> None:
        if usage is None:
            return
        self.seen = True
        for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                     "service_tier"):  # fmt: skip
            value = _get(usage, name)
            if value is not None:
                self.counts[name] = value
        split = _get(usage, "cache_creation")
        if split is not None:
            self.counts["cache_creation"] = {
                "ephemeral_5m_input_tokens": _int(split, "ephemeral_5m_input_tokens"),
                "ephemeral_1h_input_tokens": _int(split, "ephemeral_1h_input_tokens"),
            }

    def usage(self) -> MeteredUsage:
        metered = anthropic_usage(self.counts)
        metered.model = self.model
        return metered
