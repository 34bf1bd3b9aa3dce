"""`wrap_anthropic(client, ledger)`: the official Anthropic client, metered.

`messages.create`, sync (`Anthropic` with `TokenLedger`) and async (`AsyncAnthropic` with `AsyncTokenLedger`),
streaming (`stream=True`) or not. Every call is authorized before it leaves (a denial raises `Denied` and nothing is
sent to Anthropic) and recorded with its usage: cache reads and the 5-minute and 1-hour cache writes as the
contract names them (see `tokenledger.usage_mapping`); a stream's usage is read from `message_start` and
`message_delta`. The `messages.stream(...)` helper is metered too: authorized when its `with` block opens (the
request leaves then), recorded from the message it accumulated when the block closes, however the stream was read
(`text_stream`, events, `get_final_message()`), or left early. A call that fails releases its hold.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from tokenledger._wrapping import AsyncMeter, Plan, Proxy, SyncMeter, WrapOptions, is_async_client, plan_call
from tokenledger.usage_mapping import AnthropicStreamUsage, MeteredUsage, usage_from_response

REQUEST_ID_HEADER = "request-id"


class MessageStreamMeter:
    def __init__(self) -> None:
        self.items = 0
        self._usage = AnthropicStreamUsage()
        self._chars = 0

    def feed(self, event: Any) -> None:
        self.items += 1
        self._usage.feed(event)
        if getattr(event, "type", "") == "content_block_delta":
            delta = getattr(event, "delta", None)  # text, a tool's input as JSON, or thinking: all billed as output
            self._chars += sum(len(getattr(delta, name, None) or "") for name in ("text", "partial_json", "thinking"))

    def usage(self) -> MeteredUsage | None:
        if not self._usage.seen:
            return None
        metered = self._usage.usage()
        if self._usage.message_id:
            metered.extra["message_id"] = self._usage.message_id
        return metered

    @property
    def final(self) -> bool:
        return self._usage.final

    def seen_output_tokens(self) -> int:
        return -(-self._chars // 4)


class SnapshotMeter:
    """The usage of a `messages.stream(...)` helper's stream, read from the message it accumulated: the helper
    reads the events itself, so the wrapper looks at the result rather than at each event."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _snapshot(self) -> Any:
        try:
            return self._stream.current_message_snapshot
        except AssertionError:  # no message_start came: nothing was produced
            return None

    @property
    def items(self) -> int:
        return 0 if self._snapshot() is None else 1

    def usage(self) -> MeteredUsage | None:
        snapshot = self._snapshot()
        if snapshot is None or getattr(snapshot, "usage", None) is None:
            return None
        metered = usage_from_response(snapshot)
        metered.extra["message_id"] = getattr(snapshot, "id", None)
        metered.provider_request_id = None  # the stream's request-id header is the provider's request id
        return metered

    @property
    def final(self) -> bool:
        """The snapshot's output count is final once message_delta has given its stop reason."""
        snapshot = self._snapshot()
        return snapshot is not None and getattr(snapshot, "stop_reason", None) is not None

    def seen_output_tokens(self) -> int:
        snapshot = self._snapshot()
        blocks = getattr(snapshot, "content", None) or []
        return -(-sum(_block_chars(block) for block in blocks) // 4)


def _block_chars(block: Any) -> int:
    """The characters a content block holds as output: its text, its thinking, or a tool's input as JSON."""
    if getattr(block, "type", "") == "tool_use":
        return len(json.dumps(getattr(block, "input", None) or {}))
    return len(getattr(block, "text", None) or getattr(block, "thinking", None) or "")


class MeteredStreamManager:
    """`messages.stream(...)`, metered: the request leaves when the `with` block opens, so it is authorized then."""

    def __init__(self, meter: SyncMeter, plan: Plan, open_manager: Callable[[], Any]) -> None:
        self._meter, self._plan, self._open = meter, plan, open_manager
        self._manager: Any = None
        self._stream: Any = None

    def __enter__(self) -> Any:
        self._meter.ledger.authorize(**self._plan.authorize_kwargs())  # Denied: nothing is sent
        try:
            self._manager = self._open()
            self._stream = self._manager.__enter__()
        except BaseException:
            self._meter.release(self._plan)
            raise
        return self._stream

    def __exit__(self, *exc: object) -> None:
        try:
            self._manager.__exit__(*exc)
        finally:
            self._meter.finish(self._plan, SnapshotMeter(self._stream), self._stream.request_id)


class AsyncMeteredStreamManager:
    """`AsyncAnthropic.messages.stream(...)`, metered as `MeteredStreamManager` is."""

    def __init__(self, meter: AsyncMeter, plan: Plan, open_manager: Callable[[], Any]) -> None:
        self._meter, self._plan, self._open = meter, plan, open_manager
        self._manager: Any = None
        self._stream: Any = None

    async def __aenter__(self) -> Any:
        await self._meter.ledger.authorize(**self._plan.authorize_kwargs())
        try:
            self._manager = self._open()
            self._stream = await self._manager.__aenter__()
        except BaseException:
            await self._meter.release(self._plan)
            raise
        return self._stream

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._manager.__aexit__(*exc)
        finally:
            await self._meter.finish(self._plan, SnapshotMeter(self._stream), self._stream.request_id)


def _plan(kwargs: dict[str, Any], options: WrapOptions) -> Plan:
    parts = (kwargs.get("system") or "", kwargs.get("messages") or [], kwargs.get("tools") or [])
    return plan_call(kwargs, options, max_output=kwargs.get("max_tokens"), input_parts=parts)


def wrap_anthropic(
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
    """The client, metered by `ledger` (a `TokenLedger` for `Anthropic`, an `AsyncTokenLedger` for
    `AsyncAnthropic`). The output is held at the call's `max_tokens`; per call, `tokenledger={...}` overrides the
    options as for `wrap_openai`."""
    from tokenledger.client import AsyncTokenLedger, TokenLedger

    options = WrapOptions(
        operation_type=operation_type, user=user, metadata=metadata, default_max_output_tokens=default_max_output_tokens,
        estimate_input_tokens=estimate_input_tokens, on_record_error=on_record_error,
    )  # fmt: skip
    create = client.messages.create
    if is_async_client(client, create):
        if not isinstance(ledger, AsyncTokenLedger):
            raise TypeError("an AsyncAnthropic client is metered by an AsyncTokenLedger")
        meter_async = AsyncMeter(ledger, options)

        @functools.wraps(create)
        async def create_async(*args: Any, **kwargs: Any) -> Any:
            plan = _plan(kwargs, options)
            if kwargs.get("stream"):
                return await meter_async.stream(
                    plan, lambda: create(*args, **kwargs), MessageStreamMeter(), REQUEST_ID_HEADER
                )
            return await meter_async.call(plan, lambda: create(*args, **kwargs), usage_from_response)

        def stream_async(*args: Any, **kwargs: Any) -> AsyncMeteredStreamManager:
            plan = _plan(kwargs, options)
            return AsyncMeteredStreamManager(meter_async, plan, lambda: client.messages.stream(*args, **kwargs))

        return Proxy(client, messages=Proxy(client.messages, create=create_async, stream=stream_async))
    if not isinstance(ledger, TokenLedger):
        raise TypeError("an Anthropic client is metered by a TokenLedger (AsyncAnthropic by an AsyncTokenLedger)")
    meter_sync = SyncMeter(ledger, options)

    @functools.wraps(create)
    def create_sync(*args: Any, **kwargs: Any) -> Any:
        plan = _plan(kwargs, options)
        if kwargs.get("stream"):
            return meter_sync.stream(plan, lambda: create(*args, **kwargs), MessageStreamMeter(), REQUEST_ID_HEADER)
        return meter_sync.call(plan, lambda: create(*args, **kwargs), usage_from_response)

    def stream_sync(*args: Any, **kwargs: Any) -> MeteredStreamManager:
        plan = _plan(kwargs, options)
        return MeteredStreamManager(meter_sync, plan, lambda: client.messages.stream(*args, **kwargs))

    return Proxy(client, messages=Proxy(client.messages, create=create_sync, stream=stream_sync))
