"""A local stand-in for the OpenAI and Anthropic HTTP APIs, given to the real `openai` and `anthropic` clients as an
httpx2 transport (no network). It speaks both formats, streaming (server-sent events) and not, and can be told to
fail the next calls with a status."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx  # the provider clients (openai, anthropic) speak httpx2, a fork of httpx with its API

CHAT_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 100, "audio_tokens": 0},
}
RESPONSES_USAGE = {
    "input_tokens": 800,
    "input_tokens_details": {"cached_tokens": 200},
    "output_tokens": 250,
    "output_tokens_details": {"reasoning_tokens": 50},
    "total_tokens": 1050,
}
# Anthropic counts the uncached input apart: 100 + 2,000 read + 500 written = 2,600 input tokens in the contract
ANTHROPIC_USAGE = {
    "input_tokens": 100,
    "cache_read_input_tokens": 2000,
    "cache_creation_input_tokens": 500,
    "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 200},
    "output_tokens": 400,
    "service_tier": "standard",
}


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        prefix = f"event: {name}\n" if name else ""
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append(f"{prefix}data: {payload}\n\n")
    return "".join(out).encode()


@dataclass
class FakeProvider:
    calls: list[dict[str, Any]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # statuses for the next calls, in order
    served: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def async_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.calls.append({"path": request.url.path, "body": body})
        if self.failures:
            status = self.failures.pop(0)
            return httpx.Response(
                status,
                json={"error": {"type": "server_error", "message": f"fake {status}"}},
                headers={"retry-after-ms": "1"},
            )
        self.served += 1
        path = request.url.path
        if path.endswith("/chat/completions"):
            return self._chat(body)
        if path.endswith("/responses"):
            return self._responses(body)
        if path.endswith("/messages"):
            return self._messages(body)
        if path.endswith("/embeddings"):
            return self._embeddings(body)
        return httpx.Response(404, json={"error": {"message": f"no route {path}"}})

    def _chat(self, body: dict[str, Any]) -> httpx.Response:
        request_id = f"req_openai_{self.served}"
        base = {"id": f"chatcmpl-{self.served}", "created": 1765000000, "model": "gpt-4o-mini-2024-07-18",
                "service_tier": "default", "system_fingerprint": "fp_1"}  # fmt: skip
        if not body.get("stream"):
            return httpx.Response(
                200,
                headers={"x-request-id": request_id},
                json={
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "Hello there"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": CHAT_USAGE,
                },
            )
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[str | None, Any]] = [
            (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}]}),
            (None, {**chunk, "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "stop"}]}),
        ]
        if (body.get("stream_options") or {}).get("include_usage"):  # OpenAI sends usage only when asked
            events.append((None, {**chunk, "choices": [], "usage": CHAT_USAGE}))
        events.append((None, "[DONE]"))
        return httpx.Response(
            200, headers={"x-request-id": request_id, "content-type": "text/event-stream"}, content=_sse(events)
        )

    def _responses(self, body: dict[str, Any]) -> httpx.Response:
        request_id = f"req_openai_{self.served}"
        response = {
            "id": f"resp_{self.served}", "object": "response", "created_at": 1765000000, "model": "gpt-4o-mini",
            "status": "completed", "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "Hello there", "annotations": []}]}],
            "usage": RESPONSES_USAGE,
        }  # fmt: skip
        if not body.get("stream"):
            return httpx.Response(200, headers={"x-request-id": request_id}, json=response)
        created = {**response, "status": "in_progress", "output": [], "usage": None}
        events: list[tuple[str | None, Any]] = [
            ("response.created", {"type": "response.created", "sequence_number": 0, "response": created}),
            ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 1,
             "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Hello there", "logprobs": []}),
            ("response.completed", {"type": "response.completed", "sequence_number": 2, "response": response}),
        ]  # fmt: skip
        return httpx.Response(
            200, headers={"x-request-id": request_id, "content-type": "text/event-stream"}, content=_sse(events)
        )

    def _embeddings(self, body: dict[str, Any]) -> httpx.Response:
        """One vector per input; the usage counts 7 tokens per text, or the token ids given."""
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else list(raw or [])
        tokens = sum(len(item) if isinstance(item, list) else 7 for item in inputs)
        if raw and isinstance(raw[0], int):
            tokens = len(raw)
        data = [{"object": "embedding", "index": i, "embedding": [0.5, -0.25]} for i, _ in enumerate(inputs)]
        return httpx.Response(
            200,
            headers={"x-request-id": f"req_openai_{self.served}"},
            json={"object": "list", "data": data, "model": body.get("model"),
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
        )  # fmt: skip

    def _messages(self, body: dict[str, Any]) -> httpx.Response:
        request_id = f"req_anthropic_{self.served}"
        message = {
            "id": f"msg_{self.served}", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": ANTHROPIC_USAGE,
        }  # fmt: skip
        if not body.get("stream"):
            return httpx.Response(200, headers={"request-id": request_id}, json=message)
        start_usage = {**ANTHROPIC_USAGE, "output_tokens": 1}
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                                    "usage": start_usage}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "Hello there"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": 400}}),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        return httpx.Response(
            200, headers={"request-id": request_id, "content-type": "text/event-stream"}, content=_sse(events)
        )
