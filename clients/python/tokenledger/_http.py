"""HTTP to TokenLedger with retries that never charge twice.

Each logical call is built once (`Call`): its body, including the `request_id`, and its `Idempotency-Key` are fixed
before the first attempt, so every retry sends exactly the same request and the server answers the first result.
Connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and full jitter; a 429 or 503
`Retry-After` is honoured (up to `max_retry_after`).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from tokenledger import __version__
from tokenledger.errors import APIConnectionError, APITimeoutError, error_for

R = TypeVar("R")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_MAX_RETRIES = 3


def segment(value: str) -> str:
    """A path segment: any request id or external id, quoted."""
    return quote(value, safe="")


@dataclass
class Call(Generic[R]):
    """One logical API call: the same request is sent on every attempt."""

    method: str
    path: str
    parse: Callable[[httpx.Response], R]
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ok_statuses: frozenset[int] = frozenset()  # error statuses parsed by `parse` instead of raised (a rejected event)

    def __post_init__(self) -> None:
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            self.headers.setdefault("Idempotency-Key", uuid.uuid4().hex)


@dataclass(frozen=True)
class Settings:
    api_key: str
    base_url: str
    customer: str | None
    timeout: httpx.Timeout
    max_retries: int
    backoff: float
    max_backoff: float
    max_retry_after: float

    def headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"tokenledger-python/{__version__}",
        }
        if self.customer:
            headers["TokenLedger-Customer"] = self.customer
        return headers


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _delay(settings: Settings, attempt: int, response: httpx.Response | None) -> float:
    if response is not None:
        after = _retry_after(response)
        if after is not None:
            return min(after, settings.max_retry_after)
    return random.uniform(0, min(settings.max_backoff, settings.backoff * 2**attempt))


def _outcome(call: Call[R], response: httpx.Response) -> R:
    if response.is_success or response.status_code in call.ok_statuses:
        return call.parse(response)
    raise error_for(response.status_code, _body(response), retry_after=_retry_after(response))


def _connection_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"TokenLedger did not answer in time: {exc!r}")
    return APIConnectionError(f"TokenLedger could not be reached: {exc!r}")


class SyncTransport:
    def __init__(self, settings: Settings, http_client: httpx.Client | None = None) -> None:
        self.settings = settings
        self._own = http_client is None
        self.client = http_client or httpx.Client(timeout=settings.timeout)

    def send(self, call: Call[R]) -> R:
        url = self.settings.base_url + call.path
        headers = {**self.settings.headers(), **call.headers}
        for attempt in range(self.settings.max_retries + 1):
            last = attempt == self.settings.max_retries
            try:
                response = self.client.request(
                    call.method, url, json=call.json, params=call.params, headers=headers, timeout=self.settings.timeout
                )
            except httpx.TransportError as exc:
                if last:
                    raise _connection_error(exc) from exc
                time.sleep(_delay(self.settings, attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(_delay(self.settings, attempt, response))
                continue
            return _outcome(call, response)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._own:
            self.client.close()


class AsyncTransport:
    def __init__(self, settings: Settings, http_client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._own = http_client is None
        self.client = http_client or httpx.AsyncClient(timeout=settings.timeout)

    async def send(self, call: Call[R]) -> R:
        url = self.settings.base_url + call.path
        headers = {**self.settings.headers(), **call.headers}
        for attempt in range(self.settings.max_retries + 1):
            last = attempt == self.settings.max_retries
            try:
                response = await self.client.request(
                    call.method, url, json=call.json, params=call.params, headers=headers, timeout=self.settings.timeout
                )
            except httpx.TransportError as exc:
                if last:
                    raise _connection_error(exc) from exc
                await asyncio.sleep(_delay(self.settings, attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                await asyncio.sleep(_delay(self.settings, attempt, response))
                continue
            return _outcome(call, response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        if self._own:
            await self.client.aclose()
