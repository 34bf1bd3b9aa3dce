"""What a call to TokenLedger can raise. Every API error carries the contract's error `code` and the HTTP status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


class TokenLedgerError(Exception):
    """The base of everything this package raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(TokenLedgerError):
    """TokenLedger could not be reached (after the retries): DNS, refused connection, reset, TLS."""


class APITimeoutError(APIConnectionError):
    """TokenLedger did not answer in time (after the retries)."""


class APIError(TokenLedgerError):
    """TokenLedger answered with an error: `status_code`, the contract's `code`, `message` and per-field `fields`."""

    def __init__(
        self, message: str, *, status_code: int, code: str, fields: Mapping[str, Any] | None = None, body: Any = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.fields = dict(fields or {})
        self.body = body

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.message}"


class BadRequestError(APIError):
    """400: the request was refused as sent (see `code`, `fields`)."""


class RejectedEvent(BadRequestError):
    """A single usage event was refused (400); `result` is its EventResult, kept by the server for replay."""

    def __init__(self, message: str, *, code: str, result: Any, body: Any = None) -> None:
        super().__init__(message, status_code=400, code=code, body=body)
        self.result = result


class AuthenticationError(APIError):
    """401: the key is missing, unknown or revoked."""


class PermissionDeniedError(APIError):
    """403: the key may not do this (e.g. a server key without the scope)."""


class NotFoundError(APIError):
    """404: no such reservation, customer or key."""


class ConflictError(APIError):
    """409: the request contradicts an earlier one."""


class IdempotencyConflict(ConflictError):
    """409 `idempotency_conflict`: the same request id or Idempotency-Key was used with other parameters."""


class AlreadyRecorded(ConflictError):
    """409 `already_recorded`: the request id was recorded already; authorize or release it no more."""


class PayloadTooLargeError(APIError):
    """413: the body or the batch is too large."""


class RateLimitError(APIError):
    """429 (after the retries): `retry_after` is the server's `Retry-After` in seconds, when it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx (after the retries): TokenLedger or a service behind it is unavailable."""


@dataclass(frozen=True)
class Alternative:
    """A model the account's plan allows that would fit the budget left, with what the call would cost there."""

    model_id: str
    credits: Decimal
    charge_usd: Decimal


class Denied(TokenLedgerError):
    """The call may not run now: `reason` (e.g. insufficient_credits, quota_exceeded), `message` and the cheaper
    `alternatives` the server suggests. Raised by authorize and by guards and wrappers before the provider call."""

    def __init__(
        self, message: str, *, reason: str, request_id: str, alternatives: tuple[Alternative, ...] = ()
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.request_id = request_id
        self.alternatives = alternatives

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}
_BY_CODE: dict[str, type[APIError]] = {
    "idempotency_conflict": IdempotencyConflict,
    "already_recorded": AlreadyRecorded,
}


def error_for(status_code: int, body: Any, *, retry_after: float | None = None) -> APIError:
    """The typed exception for an error answer, from the contract's `{"error", "message", "fields"}` body."""
    if isinstance(body, Mapping):
        code = str(body.get("error") or "error")
        message = str(body.get("message") or code)
        fields = body.get("fields") if isinstance(body.get("fields"), Mapping) else None
    else:
        code, message, fields = f"http_{status_code}", (str(body or "")[:500] or f"HTTP {status_code}"), None
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status_code) or (ServerError if status_code >= 500 else APIError)
    if cls is RateLimitError:
        return RateLimitError(
            message, retry_after=retry_after, status_code=status_code, code=code, fields=fields, body=body
        )
    return cls(message, status_code=status_code, code=code, fields=fields, body=body)
