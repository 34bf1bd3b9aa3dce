"""`wrap_anthropic(client, ledger)`: the official Anthropic client, metered.

`messages.create`, sync (`Anthropic` with `TokenLedger`) and async (`AsyncAnthropic` with `AsyncTokenLedger`),
streaming (`stream=True`) or not. Every call is authorized before it leaves (a denial raises `Denied` and nothing is
sent to Anthropic) and recorded with its usage: cache reads and the 5-minute and 1-hour cache writes as the
contract names them (see `tokenledger.usage_mapping`); a stream's usage is read from `message_start` and
`message_delta`. A call that fails releases its hold. The `messages.stream(...)` helper is not metered: use
`create(stream=True)`.
"""

from __future__ import annotations

import functools
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
            delta = getattr(event, "delta", None)
            self._chars += len(getattr(delta, "text", None) or getattr(delta, "partial_json", None) or "")

    def usage(self) -> MeteredUsage | None:
        if not self._usage.seen:
            return None
        metered = self._usage.usage()
        if self._usage.message_id:
            metered.extra["message_id"] = self._usage.message_id
        return metered

    def seen_output_tokens(self) -> int:
        return -(-self._chars // 4)


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

        return Proxy(client, messages=Proxy(client.messages, create=create_async))
    if not isinstance(ledger, TokenLedger):
        raise TypeError("an Anthropic client is metered by a TokenLedger (AsyncAnthropic by an AsyncTokenLedger)")
    meter_sync = SyncMeter(ledger, options)

    @functools.wraps(create)
    def create_sync(*args: Any, **kwargs: Any) -> Any:
        plan = _plan(kwargs, options)
        if kwargs.get("stream"):
            return meter_sync.stream(plan, lambda: create(*args, **kwargs), MessageStreamMeter(), REQUEST_ID_HEADER)
        return meter_sync.call(plan, lambda: create(*args, **kwargs), usage_from_response)

    return Proxy(client, messages=Proxy(client.messages, create=create_sync))
