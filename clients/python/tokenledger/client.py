"""`TokenLedger` and `AsyncTokenLedger`: the HTTP API as typed methods, with retries that never charge twice."""

from __future__ import annotations

import builtins
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from tokenledger import _calls
from tokenledger._http import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, AsyncTransport, Settings, SyncTransport
from tokenledger.types import (
    ApiKey,
    Authorization,
    Balance,
    Customer,
    CustomerPage,
    Estimate,
    EventResult,
    ExchangeRate,
    Feature,
    Grant,
    Model,
    PortalSession,
    RecordResult,
    Release,
    Reservation,
    Stats,
    Usage,
)

if TYPE_CHECKING:
    from tokenledger.guard import AsyncGuard, Guard


def _settings(
    api_key: str | None, base_url: str | None, customer: str | None, timeout: float | httpx.Timeout | None,
    max_retries: int, backoff: float, max_backoff: float, max_retry_after: float,
) -> Settings:  # fmt: skip
    api_key = api_key or os.environ.get("TOKENLEDGER_API_KEY")
    base_url = base_url or os.environ.get("TOKENLEDGER_BASE_URL")
    if not api_key:
        raise ValueError("an api_key is needed (or set TOKENLEDGER_API_KEY)")
    if not base_url:
        raise ValueError("a base_url is needed, e.g. https://ledger.example.com (or set TOKENLEDGER_BASE_URL)")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    elif not isinstance(timeout, httpx.Timeout):
        timeout = httpx.Timeout(timeout)
    return Settings(
        api_key=api_key, base_url=base_url.rstrip("/"), customer=customer, timeout=timeout,
        max_retries=max(0, max_retries), backoff=backoff, max_backoff=max_backoff, max_retry_after=max_retry_after,
    )  # fmt: skip


def _event(event: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**(event or {}), **fields}
    unknown = set(merged) - set(_calls.EVENT_FIELDS)
    if unknown:
        raise TypeError(f"unknown event fields: {', '.join(sorted(unknown))}")
    return merged


class _Base:
    _settings: Settings

    @property
    def customer(self) -> str | None:
        """The customer (external id) this client acts for with a server key, if any."""
        return self._settings.customer


class TokenLedger(_Base):
    """A TokenLedger client.

    `api_key` is an account key (`tl_...`) or a server key (`tls_...`); with a server key, `customer` names the
    customer (its external id) every account call acts for. Calls are retried on connection errors, timeouts,
    429 and 5xx (`max_retries` times, with backoff and jitter, honouring `Retry-After`), always with the same
    `request_id` and `Idempotency-Key`, so a retry never charges or grants twice.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        customer: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._settings = _settings(api_key, base_url, customer, timeout, max_retries, backoff, max_backoff,
                                   max_retry_after)  # fmt: skip
        self._transport = SyncTransport(self._settings, http_client)
        self.catalog = Catalog(self)
        self.customers = Customers(self)

    def with_customer(self, customer: str) -> TokenLedger:
        """The same client (same connections) acting for another customer (server keys)."""
        clone = object.__new__(TokenLedger)
        clone._settings = Settings(**{**vars(self._settings), "customer": customer})
        clone._transport = SyncTransport(clone._settings, self._transport.client)
        clone.catalog, clone.customers = Catalog(clone), Customers(clone)
        return clone

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> TokenLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def authorize(
        self, *, model: str, input_tokens: int, max_output_tokens: int, request_id: str | None = None,
        operation_type: str | None = None, features: Sequence[Any] | None = None, images: int | None = None,
    ) -> Authorization:  # fmt: skip
        """Ask before the provider call; hold its worst case. Raises `Denied` when the call may not run."""
        return self._transport.send(
            _calls.authorize(
                request_id=request_id, model=model, input_tokens=input_tokens, max_output_tokens=max_output_tokens,
                operation_type=operation_type, features=features, images=images,
            )
        )  # fmt: skip

    def record(self, event: Mapping[str, Any] | None = None, /, **fields: Any) -> EventResult:
        """Record one call's usage (`request_id`, `model`, `input_tokens`, `output_tokens`, ...); settles its
        reservation. A replay answers `duplicate` with the first result; a refused event raises `RejectedEvent`."""
        return self._transport.send(_calls.record_one(_event(event, fields)))

    def record_batch(self, events: Iterable[Mapping[str, Any]]) -> RecordResult:
        """Record many events (sent 1,000 per request); each is answered recorded, duplicate or rejected."""
        return _calls.merge([self._transport.send(call) for call in _calls.record_batches(events)])

    def release(self, request_id: str) -> Release:
        """The call failed or was cancelled: free its hold now. Idempotent; `AlreadyRecorded` once recorded."""
        return self._transport.send(_calls.release(request_id))

    def reservation(self, request_id: str) -> Reservation:
        return self._transport.send(_calls.reservation(request_id))

    def estimate(
        self, *, model: str, text: str | None = None, messages: Any = None, max_output_tokens: int = 0
    ) -> Estimate:
        return self._transport.send(
            _calls.estimate(model=model, text=text, messages=messages, max_output_tokens=max_output_tokens)
        )

    def balance(self) -> Balance:
        return self._transport.send(_calls.balance())

    def usage(self) -> Usage:
        return self._transport.send(_calls.usage())

    def stats(self, *, start: date | None = None, end: date | None = None) -> Stats:
        return self._transport.send(_calls.stats(start, end))

    def invoices(self) -> list[dict[str, Any]]:
        return self._transport.send(_calls.invoices())

    def guard(
        self, *, model: str, input_tokens: int, max_output_tokens: int, request_id: str | None = None,
        operation_type: str | None = None, features: Sequence[Any] | None = None, images: int | None = None,
        **event_fields: Any,
    ) -> Guard:  # fmt: skip
        """A context manager around one LLM call: authorize on entry (`Denied` before the call), record with
        `g.record(response)` or counts, release the hold if the block raises. Extra keywords (user,
        conversation_id, metadata, ...) go on the recorded event."""
        from tokenledger.guard import Guard

        return Guard(
            self, model=model, input_tokens=input_tokens, max_output_tokens=max_output_tokens, request_id=request_id,
            operation_type=operation_type, features=features, images=images, event_fields=event_fields,
        )  # fmt: skip


class Catalog:
    def __init__(self, ledger: TokenLedger) -> None:
        self._ledger = ledger

    def models(self, *, tier: str | None = None) -> list[Model]:
        return self._ledger._transport.send(_calls.models(tier))

    def features(self) -> list[Feature]:
        return self._ledger._transport.send(_calls.features())

    def exchange(self) -> list[ExchangeRate]:
        return self._ledger._transport.send(_calls.exchange())


class ApiKeys:
    def __init__(self, ledger: TokenLedger) -> None:
        self._ledger = ledger

    def create(self, external_id: str, *, name: str | None = None) -> ApiKey:
        """A new key for the customer; its secret `api_key` is in this answer only."""
        return self._ledger._transport.send(_calls.customer_key_create(external_id, name))

    def list(self, external_id: str) -> list[ApiKey]:
        return self._ledger._transport.send(_calls.customer_key_list(external_id))

    def revoke(self, external_id: str, key_id: str | int) -> None:
        self._ledger._transport.send(_calls.customer_key_revoke(external_id, key_id))


class Customers:
    """Customers by your own ids (a server key with the `customers` scope)."""

    def __init__(self, ledger: TokenLedger) -> None:
        self._ledger = ledger
        self.api_keys = ApiKeys(ledger)

    def _send(self, call: Any) -> Any:
        return self._ledger._transport.send(call)

    def upsert(
        self, external_id: str, *, name: str | None = None, email: str | None = None, plan: str | None = None,
        display_currency: str | None = None, low_balance_threshold: Decimal | int | str | None = None,
        alert_webhook_url: str | None = None, metadata: Mapping[str, Any] | None = None,
    ) -> Customer:  # fmt: skip
        """Create (a name is needed) or update the customer; the same call twice changes nothing."""
        fields = {
            "name": name, "email": email, "plan": plan, "display_currency": display_currency,
            "low_balance_threshold": low_balance_threshold, "alert_webhook_url": alert_webhook_url,
            "metadata": metadata,
        }  # fmt: skip
        return self._send(_calls.customer_upsert(external_id, fields))

    def get(self, external_id: str) -> Customer:
        return self._send(_calls.customer_get(external_id))

    def list(self, *, cursor: str | None = None, plan: str | None = None, status: str | None = None) -> CustomerPage:
        return self._send(_calls.customer_list(cursor=cursor, plan=plan, status=status))

    def iter(self, *, plan: str | None = None, status: str | None = None) -> Iterator[Customer]:
        """Every customer, page after page."""
        cursor: str | None = None
        while True:
            page = self.list(cursor=cursor, plan=plan, status=status)
            yield from page.results
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def suspend(self, external_id: str) -> Customer:
        return self._send(_calls.customer_action(external_id, "suspend"))

    def reactivate(self, external_id: str) -> Customer:
        return self._send(_calls.customer_action(external_id, "reactivate"))

    def change_plan(self, external_id: str, plan: str, *, when: str = "next_period") -> Customer:
        """`when` is "now" (the open period takes the plan's terms) or "next_period" (the server's default)."""
        return self._send(_calls.customer_action(external_id, "plan", {"plan": plan, "when": when}))

    def grant(
        self, external_id: str, *, credits: Decimal | int | str, reason: str, expires_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Grant:  # fmt: skip
        """Grant credits. Pass your own `idempotency_key` (e.g. your order id) to make a grant safe to repeat
        across processes; without one, a key is made for this call and reused by its retries."""
        return self._send(
            _calls.customer_grant(
                external_id, credits=credits, reason=reason, expires_at=expires_at, idempotency_key=idempotency_key
            )
        )

    def portal_session(self, external_id: str, *, return_url: str | None = None) -> PortalSession:
        """A one-time URL (a few minutes) that signs the customer's owner into the dashboard."""
        return self._send(_calls.customer_portal_session(external_id, return_url))

    def balance(self, external_id: str) -> Balance:
        return self._send(_calls.balance(f"/api/customers/{_calls.segment(external_id)}/balance"))

    def usage(self, external_id: str) -> Usage:
        return self._send(_calls.usage(f"/api/customers/{_calls.segment(external_id)}/usage"))

    def stats(self, external_id: str, *, start: date | None = None, end: date | None = None) -> Stats:
        return self._send(_calls.stats(start, end, f"/api/customers/{_calls.segment(external_id)}/stats"))

    def invoices(self, external_id: str) -> builtins.list[dict[str, Any]]:
        return self._send(_calls.invoices(f"/api/customers/{_calls.segment(external_id)}/invoices"))


# the async twin: the same calls, awaited


class AsyncTokenLedger(_Base):
    """The asyncio twin of `TokenLedger`: the same methods, awaited; `guard` is used with `async with`."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        customer: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = _settings(api_key, base_url, customer, timeout, max_retries, backoff, max_backoff,
                                   max_retry_after)  # fmt: skip
        self._transport = AsyncTransport(self._settings, http_client)
        self.catalog = AsyncCatalog(self)
        self.customers = AsyncCustomers(self)

    def with_customer(self, customer: str) -> AsyncTokenLedger:
        clone = object.__new__(AsyncTokenLedger)
        clone._settings = Settings(**{**vars(self._settings), "customer": customer})
        clone._transport = AsyncTransport(clone._settings, self._transport.client)
        clone.catalog, clone.customers = AsyncCatalog(clone), AsyncCustomers(clone)
        return clone

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncTokenLedger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def authorize(
        self, *, model: str, input_tokens: int, max_output_tokens: int, request_id: str | None = None,
        operation_type: str | None = None, features: Sequence[Any] | None = None, images: int | None = None,
    ) -> Authorization:  # fmt: skip
        return await self._transport.send(
            _calls.authorize(
                request_id=request_id, model=model, input_tokens=input_tokens, max_output_tokens=max_output_tokens,
                operation_type=operation_type, features=features, images=images,
            )
        )  # fmt: skip

    async def record(self, event: Mapping[str, Any] | None = None, /, **fields: Any) -> EventResult:
        return await self._transport.send(_calls.record_one(_event(event, fields)))

    async def record_batch(self, events: Iterable[Mapping[str, Any]]) -> RecordResult:
        return _calls.merge([await self._transport.send(call) for call in _calls.record_batches(events)])

    async def release(self, request_id: str) -> Release:
        return await self._transport.send(_calls.release(request_id))

    async def reservation(self, request_id: str) -> Reservation:
        return await self._transport.send(_calls.reservation(request_id))

    async def estimate(
        self, *, model: str, text: str | None = None, messages: Any = None, max_output_tokens: int = 0
    ) -> Estimate:
        return await self._transport.send(
            _calls.estimate(model=model, text=text, messages=messages, max_output_tokens=max_output_tokens)
        )

    async def balance(self) -> Balance:
        return await self._transport.send(_calls.balance())

    async def usage(self) -> Usage:
        return await self._transport.send(_calls.usage())

    async def stats(self, *, start: date | None = None, end: date | None = None) -> Stats:
        return await self._transport.send(_calls.stats(start, end))

    async def invoices(self) -> list[dict[str, Any]]:
        return await self._transport.send(_calls.invoices())

    def guard(
        self, *, model: str, input_tokens: int, max_output_tokens: int, request_id: str | None = None,
        operation_type: str | None = None, features: Sequence[Any] | None = None, images: int | None = None,
        **event_fields: Any,
    ) -> AsyncGuard:  # fmt: skip
        from tokenledger.guard import AsyncGuard

        return AsyncGuard(
            self, model=model, input_tokens=input_tokens, max_output_tokens=max_output_tokens, request_id=request_id,
            operation_type=operation_type, features=features, images=images, event_fields=event_fields,
        )  # fmt: skip


class AsyncCatalog:
    def __init__(self, ledger: AsyncTokenLedger) -> None:
        self._ledger = ledger

    async def models(self, *, tier: str | None = None) -> list[Model]:
        return await self._ledger._transport.send(_calls.models(tier))

    async def features(self) -> list[Feature]:
        return await self._ledger._transport.send(_calls.features())

    async def exchange(self) -> list[ExchangeRate]:
        return await self._ledger._transport.send(_calls.exchange())


class AsyncApiKeys:
    def __init__(self, ledger: AsyncTokenLedger) -> None:
        self._ledger = ledger

    async def create(self, external_id: str, *, name: str | None = None) -> ApiKey:
        return await self._ledger._transport.send(_calls.customer_key_create(external_id, name))

    async def list(self, external_id: str) -> list[ApiKey]:
        return await self._ledger._transport.send(_calls.customer_key_list(external_id))

    async def revoke(self, external_id: str, key_id: str | int) -> None:
        await self._ledger._transport.send(_calls.customer_key_revoke(external_id, key_id))


class AsyncCustomers:
    def __init__(self, ledger: AsyncTokenLedger) -> None:
        self._ledger = ledger
        self.api_keys = AsyncApiKeys(ledger)

    async def _send(self, call: Any) -> Any:
        return await self._ledger._transport.send(call)

    async def upsert(
        self, external_id: str, *, name: str | None = None, email: str | None = None, plan: str | None = None,
        display_currency: str | None = None, low_balance_threshold: Decimal | int | str | None = None,
        alert_webhook_url: str | None = None, metadata: Mapping[str, Any] | None = None,
    ) -> Customer:  # fmt: skip
        fields = {
            "name": name, "email": email, "plan": plan, "display_currency": display_currency,
            "low_balance_threshold": low_balance_threshold, "alert_webhook_url": alert_webhook_url,
            "metadata": metadata,
        }  # fmt: skip
        return await self._send(_calls.customer_upsert(external_id, fields))

    async def get(self, external_id: str) -> Customer:
        return await self._send(_calls.customer_get(external_id))

    async def list(
        self, *, cursor: str | None = None, plan: str | None = None, status: str | None = None
    ) -> CustomerPage:
        return await self._send(_calls.customer_list(cursor=cursor, plan=plan, status=status))

    async def iter(self, *, plan: str | None = None, status: str | None = None) -> AsyncIterator[Customer]:
        cursor: str | None = None
        while True:
            page = await self.list(cursor=cursor, plan=plan, status=status)
            for customer in page.results:
                yield customer
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def suspend(self, external_id: str) -> Customer:
        return await self._send(_calls.customer_action(external_id, "suspend"))

    async def reactivate(self, external_id: str) -> Customer:
        return await self._send(_calls.customer_action(external_id, "reactivate"))

    async def change_plan(self, external_id: str, plan: str, *, when: str = "next_period") -> Customer:
        return await self._send(_calls.customer_action(external_id, "plan", {"plan": plan, "when": when}))

    async def grant(
        self, external_id: str, *, credits: Decimal | int | str, reason: str, expires_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Grant:  # fmt: skip
        return await self._send(
            _calls.customer_grant(
                external_id, credits=credits, reason=reason, expires_at=expires_at, idempotency_key=idempotency_key
            )
        )

    async def portal_session(self, external_id: str, *, return_url: str | None = None) -> PortalSession:
        return await self._send(_calls.customer_portal_session(external_id, return_url))

    async def balance(self, external_id: str) -> Balance:
        return await self._send(_calls.balance(f"/api/customers/{_calls.segment(external_id)}/balance"))

    async def usage(self, external_id: str) -> Usage:
        return await self._send(_calls.usage(f"/api/customers/{_calls.segment(external_id)}/usage"))

    async def stats(self, external_id: str, *, start: date | None = None, end: date | None = None) -> Stats:
        return await self._send(_calls.stats(start, end, f"/api/customers/{_calls.segment(external_id)}/stats"))

    async def invoices(self, external_id: str) -> builtins.list[dict[str, Any]]:
        return await self._send(_calls.invoices(f"/api/customers/{_calls.segment(external_id)}/invoices"))
