"""TokenLedger for Python: authorize, meter and bill AI calls; wrappers for the OpenAI and Anthropic clients."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from tokenledger.client import AsyncTokenLedger, TokenLedger
from tokenledger.errors import (
    AlreadyRecorded,
    Alternative,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Denied,
    IdempotencyConflict,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    RejectedEvent,
    ServerError,
    TokenLedgerError,
)
from tokenledger.guard import AsyncGuard, Guard
from tokenledger.usage_mapping import MeteredUsage, usage_from_response


def wrap_openai(client: Any, ledger: Any, **options: Any) -> Any:
    """See tokenledger.openai_wrapper.wrap_openai (imported lazily: `openai` is an optional extra)."""
    from tokenledger.openai_wrapper import wrap_openai as wrap

    return wrap(client, ledger, **options)


def wrap_anthropic(client: Any, ledger: Any, **options: Any) -> Any:
    """See tokenledger.anthropic_wrapper.wrap_anthropic (imported lazily: `anthropic` is an optional extra)."""
    from tokenledger.anthropic_wrapper import wrap_anthropic as wrap

    return wrap(client, ledger, **options)


__all__ = [
    "APIConnectionError", "APIError", "APITimeoutError", "AlreadyRecorded", "Alternative", "AsyncGuard",
    "AsyncTokenLedger", "AuthenticationError", "BadRequestError", "ConflictError", "Denied", "Guard",
    "IdempotencyConflict", "MeteredUsage", "NotFoundError", "PayloadTooLargeError", "PermissionDeniedError",
    "RateLimitError", "RejectedEvent", "ServerError", "TokenLedger", "TokenLedgerError", "usage_from_response",
    "wrap_anthropic", "wrap_openai",
]  # fmt: skip
