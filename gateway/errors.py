"""The gateway's refusals, answered in the caller's provider format (gateway/formats.py writes the body).

Codes (the `code` field of the error object, CONTRACT.md "Metering gateway"):
400 invalid_json, invalid_body, nul_character, model_required, max_tokens_required, max_tokens_invalid, n_invalid,
invalid_request_id, invalid_header, invalid_operation_type;
401 missing_api_key, invalid_api_key; 400 customer_required / 404 customer_not_found (server keys);
403 insufficient_scope, account_suspended, model_not_allowed; 404 model_not_found, no_upstream;
402 insufficient_credits, quota_exceeded, spend_cap_reached, daily_cost_limit, monthly_cost_limit,
message_limit_exceeded, account_past_due; 408 request_timeout; 409 already_recorded, idempotency_conflict;
413 request_too_large; 429 rate_limited (with Retry-After); 503 rate_limit_unavailable; 502 upstream_unreachable,
upstream_auth_failed, upstream_key_unreadable; 504 upstream_timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Alternative:
    model_id: str
    credits: Decimal
    charge_usd: Decimal


@dataclass
class GatewayRefusal(Exception):
    """A call the gateway answers itself, never forwarded (or whose upstream failed before any answer)."""

    status: int
    code: str
    message: str
    alternatives: list[Alternative] = field(default_factory=list)
    retry_after: int | None = None
    request_id: str | None = None  # the call's id, once it has one (answered as TokenLedger-Request-Id)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"
