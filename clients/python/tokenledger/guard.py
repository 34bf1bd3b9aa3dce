"""`ledger.guard(...)`: one metered LLM call as a context manager.

    with ledger.guard(model="gpt-4o-mini", input_tokens=1200, max_output_tokens=500) as g:
        response = openai_client.chat.completions.create(...)
        g.record(response)

On entry it authorizes (a denial raises `Denied`, before the block, so the provider is never called). Inside, the
caller makes its call and records what it used: `g.record(response)` reads the usage from an OpenAI or Anthropic
response, `g.record(input_tokens=..., output_tokens=...)` takes counts. When the block raises before anything was
recorded, the hold is released at once and the exception goes on. When recording itself fails (TokenLedger
unreachable after its retries), the hold is left to expire rather than released: the usage happened and may still
be recorded with the same request id. A block that ends without recording releases the hold and warns.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tokenledger._calls import new_request_id
from tokenledger.errors import AlreadyRecorded, NotFoundError, TokenLedgerError
from tokenledger.types import Authorization, EventResult
from tokenledger.usage_mapping import MeteredUsage, usage_from_response

if TYPE_CHECKING:
    from tokenledger.client import AsyncTokenLedger, TokenLedger


class _GuardBase:
    def __init__(
        self, *, model: str, input_tokens: int, max_output_tokens: int, request_id: str | None,
        operation_type: str | None, features: Sequence[Any] | None, images: int | None,
        event_fields: Mapping[str, Any],
    ) -> None:  # fmt: skip
        self.model = model
        self.input_tokens = input_tokens
        self.max_output_tokens = max_output_tokens
        self.request_id = request_id or new_request_id()
        self.operation_type = operation_type
        self.features = features
        self.images = images
        self.event_fields = dict(event_fields)
        self.authorization: Authorization | None = None
        self.result: EventResult | None = None
        self._record_failed = False

    def _authorize_kwargs(self) -> dict[str, Any]:
        return {
            "model": self.model, "input_tokens": self.input_tokens, "max_output_tokens": self.max_output_tokens,
            "request_id": self.request_id, "operation_type": self.operation_type, "features": self.features,
            "images": self.images,
        }  # fmt: skip

    def _event(self, response: Any, counts: Mapping[str, Any]) -> dict[str, Any]:
        if self.result is not None:
            raise RuntimeError(f"request {self.request_id} is recorded already")
        metered = usage_from_response(response) if response is not None else None
        if metered is None and ("input_tokens" not in counts or "output_tokens" not in counts):
            raise TypeError("record(response) or record(input_tokens=..., output_tokens=...)")
        event: dict[str, Any] = {
            "request_id": self.request_id, "model": self.model, "operation_type": self.operation_type,
            "features": list(self.features) if self.features else None, "images": self.images, **self.event_fields,
        }  # fmt: skip
        if metered is not None:
            event.update(_metered_fields(metered))
        event.update(counts)
        return event


def _metered_fields(metered: MeteredUsage) -> dict[str, Any]:
    fields = metered.event_fields()
    if metered.model:
        fields["model"] = metered.model  # the model that answered (a dated snapshot resolves to its catalog entry)
    return fields


class Guard(_GuardBase):
    def __init__(self, ledger: TokenLedger, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ledger = ledger

    def __enter__(self) -> Guard:
        self.authorization = self._ledger.authorize(**self._authorize_kwargs())
        return self

    def record(self, response: Any = None, /, **counts: Any) -> EventResult:
        """Record the call's usage, from a provider response or from counts (and any other event fields)."""
        event = self._event(response, counts)
        try:
            self.result = self._ledger.record(event)
        except TokenLedgerError:
            self._record_failed = True
            raise
        return self.result

    def release(self) -> None:
        """Free the hold now (the call will not be made)."""
        with contextlib.suppress(AlreadyRecorded, NotFoundError):
            self._ledger.release(self.request_id)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.result is not None or self._record_failed or self.authorization is None:
            return
        if exc_type is None:
            warnings.warn(
                f"the guarded block of request {self.request_id} recorded no usage; its hold is released",
                RuntimeWarning,
                stacklevel=2,
            )
        try:
            self.release()
        except TokenLedgerError:
            if exc_type is None:
                raise
            # the block's own exception matters more; the hold expires on its own


class AsyncGuard(_GuardBase):
    def __init__(self, ledger: AsyncTokenLedger, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ledger = ledger

    async def __aenter__(self) -> AsyncGuard:
        self.authorization = await self._ledger.authorize(**self._authorize_kwargs())
        return self

    async def record(self, response: Any = None, /, **counts: Any) -> EventResult:
        event = self._event(response, counts)
        try:
            self.result = await self._ledger.record(event)
        except TokenLedgerError:
            self._record_failed = True
            raise
        return self.result

    async def release(self) -> None:
        with contextlib.suppress(AlreadyRecorded, NotFoundError):
            await self._ledger.release(self.request_id)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.result is not None or self._record_failed or self.authorization is None:
            return
        if exc_type is None:
            warnings.warn(
                f"the guarded block of request {self.request_id} recorded no usage; its hold is released",
                RuntimeWarning,
                stacklevel=2,
            )
        try:
            await self.release()
        except TokenLedgerError:
            if exc_type is None:
                raise
