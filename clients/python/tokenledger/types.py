"""Typed results. Money is `Decimal` (never float), times are aware `datetime`s; `raw` keeps the whole answer, so a
field the server adds later is readable before this package names it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

T = TypeVar("T")


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):  # JSON never carries our money as a float; a float here is kept exactly as sent
        return Decimal(repr(value))
    return Decimal(str(value))


def _datetime(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _date(value: Any) -> date | None:
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def build(cls: type[T], data: Any) -> T:
    """An instance of the result dataclass `cls` from a JSON object: known fields converted by their declared type,
    missing ones at their default, the whole object in `raw`."""
    data = data if isinstance(data, dict) else {}
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if item.name == "raw":
            values["raw"] = data
            continue
        if item.name not in data:
            continue
        value = data[item.name]
        kind = str(item.type)
        if "Decimal" in kind:
            value = _decimal(value)
        elif "datetime" in kind:
            value = _datetime(value)
        elif kind.startswith("date"):
            value = _date(value)
        values[item.name] = value
    return cls(**values)


@dataclass(frozen=True)
class Authorization:
    """An allowed call: `held_credits` are held until the request is recorded, released, or `expires_at`."""

    request_id: str
    reservation_id: int | None = None
    held_credits: Decimal | None = None
    expires_at: datetime | None = None
    remaining: Decimal | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class EventResult:
    """One recorded event: `status` is recorded, duplicate (the first result, nothing changed) or rejected."""

    request_id: str = ""
    status: str = ""
    cost_usd: Decimal | None = None
    charge_usd: Decimal | None = None
    credits: Decimal | None = None
    error: dict[str, str] | None = None
    over_reservation: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class RecordResult:
    """A batch: one EventResult per event, in order, and the counts."""

    results: list[EventResult]
    recorded: int
    duplicate: int
    rejected: int


@dataclass(frozen=True)
class Reservation:
    request_id: str = ""
    status: str = ""  # active, settled, released or expired
    model_id: str = ""
    held_credits: Decimal | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    closed_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Release:
    request_id: str = ""
    status: str = ""  # released (or expired: the expiry freed it before)
    released_credits: Decimal | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Estimate:
    model_id: str = ""
    input_tokens: int = 0
    max_output_tokens: int = 0
    cost_usd: Decimal | None = None
    charge_usd: Decimal | None = None
    credits: Decimal | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Balance:
    credits: Decimal | None = None
    held_credits: Decimal | None = None
    available_credits: Decimal | None = None
    usd_equivalent: Decimal | None = None
    local_currency: str = ""
    local_amount: Decimal | None = None
    low_balance: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Usage:
    """The account's current period against its plan."""

    plan: str = ""
    unit: str = ""
    limit: Decimal | None = None
    used: Decimal | None = None
    remaining: Decimal | None = None
    usage_percentage: Decimal | None = None
    status: str = ""  # ok, moderate, high, exceeded
    period_start: datetime | None = None
    period_end: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Stats:
    total_events: int = 0
    total_tokens: int = 0
    total_cost_usd: Decimal | None = None
    avg_cost_usd: Decimal | None = None
    by_operation_type: dict[str, Any] = field(default_factory=dict)
    by_model: dict[str, Any] = field(default_factory=dict)
    by_day: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Model:
    model_id: str = ""
    display_name: str = ""
    provider: str = ""
    input_price_per_million: Decimal | None = None
    cached_input_price_per_million: Decimal | None = None
    output_price_per_million: Decimal | None = None
    image_price_per_unit: Decimal | None = None
    allowed_tiers: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Feature:
    feature_key: str = ""
    display_name: str = ""
    cost_type: str = ""
    cost_usd: Decimal | None = None
    tier_multipliers: dict[str, Any] = field(default_factory=dict)
    cepo_multiplier: Decimal | None = None
    is_billable: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ExchangeRate:
    from_currency: str = ""
    to_currency: str = ""
    rate: Decimal | None = None
    effective_from: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Customer:
    external_id: str = ""
    account_id: int | None = None
    name: str = ""
    email: str | None = None
    plan: str = ""
    pending_plan: str | None = None  # the plan from the next period, after change_plan(..., when="next_period")
    status: str = ""
    display_currency: str = ""
    created_at: datetime | None = None
    balance: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class CustomerPage:
    results: list[Customer]
    next_cursor: str | None


@dataclass(frozen=True)
class Grant:
    """A grant: the customer's credits just after it, and what it granted."""

    balance: Decimal | None = None
    credits: Decimal | None = None
    expires_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ApiKey:
    """A customer's own API key; `api_key` (the secret) is only present in the answer that created it."""

    key_id: Any = None
    prefix: str = ""
    name: str = ""
    api_key: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PortalSession:
    url: str = ""
    expires_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
