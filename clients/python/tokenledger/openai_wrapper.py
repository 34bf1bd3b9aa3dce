"""`wrap_openai(client, ledger)`: the official OpenAI client, metered.

Chat Completions (`chat.completions.create` and `.parse`), the Responses API (`responses.create`) and embeddings
(`embeddings.create`: the input is held, no output; input given as token ids is counted exactly), sync
(`OpenAI` with `TokenLedger`) and async (`AsyncOpenAI` with `AsyncTokenLedger`), streaming or not. Every call is
authorized before it leaves (a denial raises `Denied` and nothing is sent to OpenAI), and recorded with the usage
OpenAI reports: a chat stream is asked for its usage (`stream_options={"include_usage": True}`), a Responses stream
carries it in `response.completed`. A call that fails releases its hold. Everything else on the client is untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from tokenledger._wrapping import AsyncMeter, Plan, Proxy, SyncMeter, WrapOptions, is_async_client, plan_call
from tokenledger.usage_mapping import (
    OPENAI_TIERS,
    MeteredUsage,
    openai_chat_usage,
    usage_from_response,
)

REQUEST_ID_HEADER = "x-request-id"


class ChatStreamMeter:
    def __init__(self) -> None:
        self.items = 0
        self._usage: MeteredUsage | None = None
        self._chars = 0
        self._model: str | None = None
        self._tier: str | None = None

    def feed(self, chunk: Any) -> None:
        self.items += 1
        self._model = getattr(chunk, "model", None) or self._model
        self._tier = getattr(chunk, "service_tier", None) or self._tier
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = openai_chat_usage(usage)
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            self._chars += len(getattr(delta, "content", None) or "")

    def usage(self) -> MeteredUsage | None:
        if self._usage is not None:
            self._usage.model = self._model
            self._usage.service_tier = OPENAI_TIERS.get(self._tier or "")
        return self._usage

    final = True  # the usage comes whole, in the stream's last chunk

    def seen_output_tokens(self) -> int:
        return -(-self._chars // 4)


class ResponsesStreamMeter:
    def __init__(self) -> None:
        self.items = 0
        self._usage: MeteredUsage | None = None
        self._chars = 0

    def feed(self, event: Any) -> None:
        self.items += 1
        kind = getattr(event, "type", "")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = getattr(event, "response", None)
            if getattr(response, "usage", None) is not None:
                self._usage = usage_from_response(response)
        elif kind == "response.output_text.delta":
            self._chars += len(getattr(event, "delta", None) or "")

    def usage(self) -> MeteredUsage | None:
        return self._usage

    final = True  # the usage comes whole, with the response's end

    def seen_output_tokens(self) -> int:
        return -(-self._chars // 4)


def _chat_plan(kwargs: dict[str, Any], options: WrapOptions) -> Plan:
    max_output = kwargs.get("max_completion_tokens") or kwargs.get("max_tokens")
    n = kwargs.get("n")  # answers asked for: each generated and billed in full, the input once
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    return plan_call(kwargs, options, max_output=max_output, choices=choices,
                     input_parts=(kwargs.get("messages") or [], kwargs.get("tools") or []))  # fmt: skip


def _responses_plan(kwargs: dict[str, Any], options: WrapOptions) -> Plan:
    parts = (kwargs.get("input") or "", kwargs.get("instructions") or "", kwargs.get("tools") or [])
    return plan_call(kwargs, options, max_output=kwargs.get("max_output_tokens"), input_parts=parts)


def _token_ids(value: Any) -> int | None:
    """How many tokens an embeddings input given as token ids holds (a list of ints, or a list of such lists);
    None when the input is text."""
    if isinstance(value, list) and value and all(isinstance(item, int) for item in value):
        return len(value)
    if isinstance(value, list) and value and all(isinstance(item, list) for item in value):
        return sum(len(item) for item in value)
    return None


def _embeddings_plan(kwargs: dict[str, Any], options: WrapOptions) -> Plan:
    raw = kwargs.get("input")
    texts = [raw] if isinstance(raw, str) else [item for item in raw or [] if isinstance(item, str)]
    return plan_call(kwargs, options, max_output=0, input_parts=(" ".join(texts),), input_count=_token_ids(raw))


def _with_stream_usage(kwargs: dict[str, Any]) -> None:
    kwargs["stream_options"] = {**(kwargs.get("stream_options") or {}), "include_usage": True}


def _sync_method(method: Callable[..., Any], meter: SyncMeter, chat: bool) -> Callable[..., Any]:
    @functools.wraps(method)
    def create(*args: Any, **kwargs: Any) -> Any:
        plan = _chat_plan(kwargs, meter.options) if chat else _responses_plan(kwargs, meter.options)
        if kwargs.get("stream"):
            if chat:
                _with_stream_usage(kwargs)
            stream_meter = ChatStreamMeter() if chat else ResponsesStreamMeter()
            return meter.stream(plan, lambda: method(*args, **kwargs), stream_meter, REQUEST_ID_HEADER)
        return meter.call(plan, lambda: method(*args, **kwargs), usage_from_response)

    return create


def _async_method(method: Callable[..., Any], meter: AsyncMeter, chat: bool) -> Callable[..., Any]:
    @functools.wraps(method)
    async def create(*args: Any, **kwargs: Any) -> Any:
        plan = _chat_plan(kwargs, meter.options) if chat else _responses_plan(kwargs, meter.options)
        if kwargs.get("stream"):
            if chat:
                _with_stream_usage(kwargs)
            stream_meter = ChatStreamMeter() if chat else ResponsesStreamMeter()
            return await meter.stream(plan, lambda: method(*args, **kwargs), stream_meter, REQUEST_ID_HEADER)
        return await meter.call(plan, lambda: method(*args, **kwargs), usage_from_response)

    return create


def _sync_embeddings(method: Callable[..., Any], meter: SyncMeter) -> Callable[..., Any]:
    @functools.wraps(method)
    def create(*args: Any, **kwargs: Any) -> Any:
        return meter.call(_embeddings_plan(kwargs, meter.options), lambda: method(*args, **kwargs), usage_from_response)

    return create


def _async_embeddings(method: Callable[..., Any], meter: AsyncMeter) -> Callable[..., Any]:
    @functools.wraps(method)
    async def create(*args: Any, **kwargs: Any) -> Any:
        plan = _embeddings_plan(kwargs, meter.options)
        return await meter.call(plan, lambda: method(*args, **kwargs), usage_from_response)

    return create


def wrap_openai(
    client: Any,
    ledger: Any,
    *,
    operation_type: str | None = None,
    user: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    default_max_output_tokens: int = 4096,
    estimate_input_tokens: Callable[[Mapping[str, Any]], int] | None = None,
    on_record_error: str = "raise",
) -> Any:
    """The client, metered by `ledger` (a `TokenLedger` for `OpenAI`, an `AsyncTokenLedger` for `AsyncOpenAI`).

    The input is estimated from the messages (about four characters a token) unless `estimate_input_tokens` is
    given; the output is held at the call's `max_completion_tokens` / `max_tokens` / `max_output_tokens`, else
    `default_max_output_tokens`. Per call, `tokenledger={"request_id", "operation_type", "user",
    "conversation_id", "metadata", "features", "input_tokens", "max_output_tokens"}` overrides these.
    """
    from tokenledger.client import AsyncTokenLedger, TokenLedger

    options = WrapOptions(
        operation_type=operation_type, user=user, metadata=metadata, default_max_output_tokens=default_max_output_tokens,
        estimate_input_tokens=estimate_input_tokens, on_record_error=on_record_error,
    )  # fmt: skip
    is_async = is_async_client(client, client.chat.completions.create)
    if is_async and not isinstance(ledger, AsyncTokenLedger):
        raise TypeError("an AsyncOpenAI client is metered by an AsyncTokenLedger")
    if not is_async and not isinstance(ledger, TokenLedger):
        raise TypeError("an OpenAI client is metered by a TokenLedger (AsyncOpenAI by an AsyncTokenLedger)")
    completions = client.chat.completions
    methods: dict[str, Any]
    if is_async:
        meter_async = AsyncMeter(ledger, options)
        methods = {"create": _async_method(completions.create, meter_async, chat=True)}
        if hasattr(completions, "parse"):
            methods["parse"] = _async_method(completions.parse, meter_async, chat=True)
        responses = Proxy(client.responses, create=_async_method(client.responses.create, meter_async, chat=False))
        embeddings = Proxy(client.embeddings, create=_async_embeddings(client.embeddings.create, meter_async))
    else:
        meter_sync = SyncMeter(ledger, options)
        methods = {"create": _sync_method(completions.create, meter_sync, chat=True)}
        if hasattr(completions, "parse"):
            methods["parse"] = _sync_method(completions.parse, meter_sync, chat=True)
        responses = Proxy(client.responses, create=_sync_method(client.responses.create, meter_sync, chat=False))
        embeddings = Proxy(client.embeddings, create=_sync_embeddings(client.embeddings.create, meter_sync))
    chat = Proxy(client.chat, completions=Proxy(completions, **methods))
    return Proxy(client, chat=chat, responses=responses, embeddings=embeddings)
