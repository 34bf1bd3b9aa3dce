"""What a forwarded call used, read from the provider's answer with the SDK's mapping (tokenledger.usage_mapping),
so the gateway and the SDK's wrappers count a call the same way.

A stream is read event by event as it passes: OpenAI chat streams carry usage in a last chunk (asked for by the
gateway, see formats.py), Responses streams in `response.completed` (or `incomplete`, `failed`), Anthropic streams
in `message_start` and `message_delta`. When a stream ends without its usage (the provider broke off), what was
produced is counted from the text that reached us, so the tokens the provider bills are never left unrecorded; an
Anthropic stream broken off after `message_start` keeps that event's input counts, and its output is the larger of
the one token it names and the text produced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tokenledger.usage_mapping import (
    AnthropicStreamUsage,
    MeteredUsage,
    openai_chat_usage,
    openai_responses_usage,
    usage_from_response,
)

from gateway.formats import Route

_EVENT_END = re.compile(rb"\r?\n\r?\n")
_RESPONSE_ENDS = {"response.completed", "response.incomplete", "response.failed"}


def response_usage(body: bytes) -> MeteredUsage | None:
    """The usage of a whole (non-streamed) answer, or None when it carries none."""
    try:
        return usage_from_response(json.loads(body))
    except (ValueError, TypeError, AttributeError):
        return None


@dataclass
class StreamEvent:
    raw: bytes  # the event as the provider sent it, separator included
    data: Any  # its JSON data, "[DONE]", or None


def _parse(raw: bytes) -> Any:
    lines = [line[5:].lstrip() for line in raw.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    payload = b"\n".join(lines)
    if payload == b"[DONE]":
        return "[DONE]"
    try:
        return json.loads(payload)
    except ValueError:
        return None


class SseSplitter:
    """Bytes in, whole server-sent events out (an event may arrive across several reads)."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> Iterator[StreamEvent]:
        self._pending += chunk
        while match := _EVENT_END.search(self._pending):
            raw, self._pending = self._pending[: match.end()], self._pending[match.end() :]
            yield StreamEvent(raw=raw, data=_parse(raw))

    def rest(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest


class StreamMeter:
    """Reads a stream's events for its usage, its end and the text produced so far."""

    def __init__(self, route: Route, *, client_wants_usage: bool) -> None:
        self.route = route
        self.client_wants_usage = client_wants_usage
        self.usage: MeteredUsage | None = None  # the provider's final count
        # what the provider counted before it broke off, not final (an Anthropic stream's message_start: its input,
        # and one output token); `usage_estimated` completes it from the text produced
        self.partial: MeteredUsage | None = None
        self.produced: list[str] = []
        self._anthropic = AnthropicStreamUsage()

    def observe(self, event: StreamEvent) -> tuple[bool, bool]:
        """Take in one event: answer (forward it to the client, it is the stream's last event)."""
        data = event.data
        if data == "[DONE]":
            return True, True
        if not isinstance(data, dict):
            return True, False
        endpoint = self.route.endpoint
        if endpoint == "chat":
            return self._chat(data)
        if endpoint == "responses":
            kind = data.get("type")
            if kind == "response.output_text.delta" and isinstance(data.get("delta"), str):
                self.produced.append(data["delta"])
            if kind in _RESPONSE_ENDS and isinstance(data.get("response"), dict):
                usage = data["response"].get("usage")
                if usage:
                    self.usage = openai_responses_usage(usage)
                    self.usage.provider_request_id = _text(data["response"].get("id"))
            return True, kind in _RESPONSE_ENDS
        self._anthropic.feed(data)
        delta = data.get("delta")
        if data.get("type") == "content_block_delta" and isinstance(delta, dict):
            self.produced.extend(v for k, v in delta.items() if k != "type" and isinstance(v, str))
        if self._anthropic.seen:
            counted = self._anthropic.usage()
            counted.provider_request_id = self._anthropic.message_id
            if self._anthropic.final:
                self.usage, self.partial = counted, None
            else:
                self.partial = counted
        return True, data.get("type") == "message_stop"

    def _chat(self, data: dict[str, Any]) -> tuple[bool, bool]:
        for choice in data.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                self.produced.append(delta["content"])
        usage = data.get("usage")
        if not usage:
            return True, False
        self.usage = openai_chat_usage(usage)
        self.usage.provider_request_id = _text(data.get("id"))
        # the usage chunk the gateway asked for is not the client's: it has no choices and is dropped
        return self.client_wants_usage or bool(data.get("choices")), False

    def produced_text(self) -> str:
        return "".join(self.produced)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
