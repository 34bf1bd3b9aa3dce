"""What both provider wrappers share: authorize before the call, record after it, release when it fails, and meter
streams as they are read."""

from __future__ import annotations

import contextlib
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tokenledger._calls import new_request_id
from tokenledger.errors import AlreadyRecorded, NotFoundError, TokenLedgerError
from tokenledger.usage_mapping import MeteredUsage

OPTION_KEYS = frozenset(
    {"request_id", "operation_type", "user", "conversation_id", "metadata", "features", "max_output_tokens",
     "input_tokens"}
)  # fmt: skip


@dataclass
class WrapOptions:
    """What a wrapper adds to every call (per call, pass `tokenledger={...}` to the provider method)."""

    operation_type: str | None = None
    user: str | None = None
    metadata: Mapping[str, Any] | None = None
    default_max_output_tokens: int = 4096
    estimate_input_tokens: Callable[[Mapping[str, Any]], int] | None = None
    on_record_error: str = "raise"  # or "warn": the provider's answer is returned and the hold left to expire

    def __post_init__(self) -> None:
        if self.on_record_error not in ("raise", "warn"):
            raise ValueError('on_record_error is "raise" or "warn"')


@dataclass
class Plan:
    """One wrapped call: what is authorized and what goes on the recorded event."""

    request_id: str
    model: str
    input_tokens: int
    max_output_tokens: int
    operation_type: str | None
    features: Any
    event_fields: dict[str, Any] = field(default_factory=dict)

    def authorize_kwargs(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id, "model": self.model, "input_tokens": self.input_tokens,
            "max_output_tokens": self.max_output_tokens, "operation_type": self.operation_type,
            "features": self.features,
        }  # fmt: skip

    def event(self, metered: MeteredUsage, *, estimated: bool = False) -> dict[str, Any]:
        event: dict[str, Any] = {
            "request_id": self.request_id, "model": metered.model or self.model,
            "operation_type": self.operation_type, "features": self.features, **self.event_fields,
        }  # fmt: skip
        event.update(metered.event_fields())
        if estimated:  # the stream ended without the provider's usage: what was seen, marked as an estimate
            event["metadata"] = {**(event.get("metadata") or {}), "tokenledger_usage_estimated": True}
        return event


def is_async_client(client: Any, method: Any) -> bool:
    """Whether a provider client is the asyncio one (its methods may be wrapped by decorators that hide it)."""
    return inspect.iscoroutinefunction(inspect.unwrap(method)) or type(client).__name__.startswith("Async")


def _text_chars(value: Any, key: str = "") -> int:
    if isinstance(value, str):
        return 0 if key in ("type", "role", "id", "model", "cache_control", "detail") else len(value)
    if isinstance(value, Mapping):
        return sum(_text_chars(v, str(k)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(_text_chars(v) for v in value)
    return 0


def estimate_tokens(*parts: Any) -> int:
    """A rough input-token estimate for authorize (about four characters a token, plus a little per message)."""
    messages = sum(len(p) for p in parts if isinstance(p, list | tuple))
    return math.ceil(sum(_text_chars(p) for p in parts) / 4) + 4 * messages + 3


def plan_call(
    kwargs: dict[str, Any],
    options: WrapOptions,
    *,
    max_output: int | None,
    input_parts: tuple[Any, ...],
    input_count: int | None = None,
    choices: int = 1,
) -> Plan:
    """Take our per-call options out of the provider kwargs (`tokenledger={...}`) and plan the call. `choices`: the
    answers the call asks for (OpenAI's `n`), each held at the output bound (a `max_output_tokens` option given in
    `tokenledger={...}` is the whole call's)."""
    own = dict(kwargs.pop("tokenledger", None) or {})
    unknown = set(own) - OPTION_KEYS
    if unknown:
        raise TypeError(f"unknown tokenledger options: {', '.join(sorted(unknown))}")
    model = kwargs.get("model")
    if not isinstance(model, str) or not model:
        raise TypeError("the call needs a model")
    if "input_tokens" in own:
        input_tokens = int(own["input_tokens"])
    elif options.estimate_input_tokens is not None:
        input_tokens = int(options.estimate_input_tokens(kwargs))
    elif input_count is not None:  # the call gives its input as token ids: they are counted, not estimated
        input_tokens = input_count
    else:
        input_tokens = estimate_tokens(*input_parts)
    metadata = {**(options.metadata or {}), **(own.get("metadata") or {})} or None
    fields = {
        "user": own.get("user", options.user), "conversation_id": own.get("conversation_id"), "metadata": metadata,
    }  # fmt: skip
    return Plan(
        request_id=own.get("request_id") or new_request_id(),
        model=model,
        input_tokens=input_tokens,
        max_output_tokens=int(
            own["max_output_tokens"]
            if own.get("max_output_tokens") is not None
            else _first_given(max_output, options.default_max_output_tokens) * choices
        ),
        operation_type=own.get("operation_type", options.operation_type),
        features=own.get("features"),
        event_fields={k: v for k, v in fields.items() if v is not None},
    )


def _first_given(*values: Any) -> Any:
    """The first value that is not None (0 is a value: an embedding holds no output)."""
    return next(value for value in values if value is not None)


class StreamOutcome(Protocol):
    """What a stream used once it ended: the usage when the provider sent it, else what was seen."""

    @property
    def items(self) -> int:
        """How many items have passed (0: nothing came, and the hold is released)."""

    def usage(self) -> MeteredUsage | None: ...

    @property
    def final(self) -> bool:
        """Whether `usage()` is the provider's final count: an Anthropic stream counts its input and one output token
        when it starts and its output when it ends, so one broken off between them has counted only part."""

    def seen_output_tokens(self) -> int: ...


class StreamMeter(StreamOutcome, Protocol):
    """Reads a provider stream's items as they pass."""

    def feed(self, item: Any) -> None: ...


def stream_outcome(plan: Plan, meter: StreamOutcome, provider_request_id: str | None) -> dict[str, Any] | None:
    """The event for a stream that ended (or was closed, or broke): the provider's usage when it came; an estimate
    from what was streamed when it did not (the input as the provider counted it, when it had, else as estimated;
    the output from the text seen, never less than the provider had counted); None when nothing came at all (the hold
    is released instead)."""
    metered = meter.usage()
    estimated = metered is None or not meter.final
    if metered is None:
        if meter.items == 0:
            return None
        metered = MeteredUsage(input_tokens=plan.input_tokens, output_tokens=meter.seen_output_tokens())
    elif estimated:
        metered.output_tokens = max(metered.output_tokens, meter.seen_output_tokens())
    if provider_request_id and not metered.provider_request_id:
        metered.provider_request_id = provider_request_id
    return plan.event(metered, estimated=estimated)


def response_event(plan: Plan, response: Any, to_usage: Callable[[Any], MeteredUsage]) -> dict[str, Any]:
    """The event of a complete response; one that carries no usage is recorded at what was authorized (the input
    estimate and the output held), marked as an estimate, rather than not at all."""
    try:
        return plan.event(to_usage(response))
    except ValueError:
        worst_case = MeteredUsage(input_tokens=plan.input_tokens, output_tokens=plan.max_output_tokens)
        return plan.event(worst_case, estimated=True)


def record_failed(options: WrapOptions, error: TokenLedgerError) -> None:
    if options.on_record_error == "raise":
        raise error
    warnings.warn(f"TokenLedger could not record a call: {error}", RuntimeWarning, stacklevel=3)


def header(stream: Any, name: str) -> str | None:
    response = getattr(stream, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get(name) if headers is not None else None
    return value if isinstance(value, str) and value else None


class SyncMeter:
    """Runs one wrapped call against a sync ledger."""

    def __init__(self, ledger: Any, options: WrapOptions) -> None:
        self.ledger, self.options = ledger, options

    def release(self, plan: Plan) -> None:
        try:
            self.ledger.release(plan.request_id)
        except (AlreadyRecorded, NotFoundError):
            pass
        except TokenLedgerError:
            pass  # the provider's error is what the caller must see; the hold expires on its own

    def call(self, plan: Plan, invoke: Callable[[], Any], to_usage: Callable[[Any], MeteredUsage]) -> Any:
        self.ledger.authorize(**plan.authorize_kwargs())  # Denied: the provider is never called
        try:
            response = invoke()
        except BaseException:
            self.release(plan)
            raise
        try:
            self.ledger.record(response_event(plan, response, to_usage))
        except TokenLedgerError as error:
            record_failed(self.options, error)
        return response

    def stream(self, plan: Plan, invoke: Callable[[], Any], meter: StreamMeter, request_id_header: str) -> Any:
        self.ledger.authorize(**plan.authorize_kwargs())
        try:
            stream = invoke()
        except BaseException:
            self.release(plan)
            raise
        return MeteredStream(stream, meter, lambda: self.finish(plan, meter, header(stream, request_id_header)))

    def finish(self, plan: Plan, meter: StreamOutcome, provider_request_id: str | None) -> None:
        """Record what a stream used when it ended, or release its hold when nothing came."""
        event = stream_outcome(plan, meter, provider_request_id)
        if event is None:
            self.release(plan)
            return
        try:
            self.ledger.record(event)
        except TokenLedgerError as error:
            record_failed(self.options, error)


class AsyncMeter:
    """Runs one wrapped call against an async ledger."""

    def __init__(self, ledger: Any, options: WrapOptions) -> None:
        self.ledger, self.options = ledger, options

    async def release(self, plan: Plan) -> None:
        with contextlib.suppress(TokenLedgerError):
            await self.ledger.release(plan.request_id)

    async def call(self, plan: Plan, invoke: Callable[[], Any], to_usage: Callable[[Any], MeteredUsage]) -> Any:
        await self.ledger.authorize(**plan.authorize_kwargs())
        try:
            response = await invoke()
        except BaseException:
            await self.release(plan)
            raise
        try:
            await self.ledger.record(response_event(plan, response, to_usage))
        except TokenLedgerError as error:
            record_failed(self.options, error)
        return response

    async def stream(self, plan: Plan, invoke: Callable[[], Any], meter: StreamMeter, request_id_header: str) -> Any:
        await self.ledger.authorize(**plan.authorize_kwargs())
        try:
            stream = await invoke()
        except BaseException:
            await self.release(plan)
            raise
        return AsyncMeteredStream(stream, meter, lambda: self.finish(plan, meter, header(stream, request_id_header)))

    async def finish(self, plan: Plan, meter: StreamOutcome, provider_request_id: str | None) -> None:
        """Record what a stream used when it ended, or release its hold when nothing came."""
        event = stream_outcome(plan, meter, provider_request_id)
        if event is None:
            await self.release(plan)
            return
        try:
            await self.ledger.record(event)
        except TokenLedgerError as error:
            record_failed(self.options, error)


class MeteredStream:
    """The provider's stream, read through: every item passes to the meter; the end (exhausted, closed, broken or
    left with `with`) records the usage once. Everything else is the provider stream's own."""

    def __init__(self, stream: Any, meter: StreamMeter, finish: Callable[[], None]) -> None:
        self._stream, self._meter, self._finish = stream, meter, finish
        self._iterator = iter(stream)
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __iter__(self) -> MeteredStream:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._iterator)
        except StopIteration:
            self._end()
            raise
        except BaseException:
            self._end()
            raise
        self._meter.feed(item)
        return item

    def _end(self) -> None:
        if not self._done:
            self._done = True
            self._finish()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._end()

    def __enter__(self) -> MeteredStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMeteredStream:
    """The async twin of MeteredStream."""

    def __init__(self, stream: Any, meter: StreamMeter, finish: Callable[[], Any]) -> None:
        self._stream, self._meter, self._finish = stream, meter, finish
        self._iterator = stream.__aiter__()
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __aiter__(self) -> AsyncMeteredStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._iterator.__anext__()
        except BaseException:
            await self._end()
            raise
        self._meter.feed(item)
        return item

    async def _end(self) -> None:
        if not self._done:
            self._done = True
            await self._finish()

    async def close(self) -> None:
        try:
            await self._stream.close()
        finally:
            await self._end()

    async def __aenter__(self) -> AsyncMeteredStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Proxy:
    """An object that is `target` except for the attributes given."""

    def __init__(self, target: Any, **overrides: Any) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_overrides", overrides)

    def __getattr__(self, name: str) -> Any:
        overrides = object.__getattribute__(self, "_overrides")
        if name in overrides:
            return overrides[name]
        return getattr(object.__getattribute__(self, "_target"), name)

    def __repr__(self) -> str:
        return f"<metered {object.__getattribute__(self, '_target')!r}>"
