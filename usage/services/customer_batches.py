"""One batch, many customers: each event goes to the account its `customer` names (or the batch's default), and
each account's events are recorded by the ordinary batch service; the answers come back in the request's order.

An event whose customer cannot be used is rejected on its own, never the batch: `customer_required` (a server key
sent no header and the event names no customer), `unknown_customer`, `customer_mismatch` (an account key may only
name its own account's external id). These are not kept as dead letters: there is no account to replay them for;
the client sees why in the answer and resends them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from billing.models import Account
from usage.events import request_id_of
from usage.services.recording import REJECTED, BatchResult, EventResult, usage_record_batch

CUSTOMER_FIELD = "customer"


@dataclass(frozen=True)
class EventRouting:
    """Where a batch's events go. `default`: the account key's account, or the customer of a server key's header
    (None when it sent none); `customers`: the accounts named by the events, by external id; `own_only`: an
    account key, whose events may name only its own account; `api_key_id`: that account key (stored on each event)."""

    default: Account | None
    customers: Mapping[str, Account]
    own_only: bool
    api_key_id: int | None = None


def event_customers(raw_events: list[Any]) -> set[str]:
    """The external ids the events name (to look them up in one query)."""
    return {e[CUSTOMER_FIELD] for e in raw_events if isinstance(e, dict) and isinstance(e.get(CUSTOMER_FIELD), str)}


def _refused(raw: Any, code: str, message: str) -> EventResult:
    return EventResult(request_id=request_id_of(raw), status=REJECTED, error={"code": code, "message": message})


def _route(raw: Any, routing: EventRouting) -> Account | EventResult:
    named = raw.get(CUSTOMER_FIELD) if isinstance(raw, dict) else None
    if named is None:
        if routing.default is None:
            return _refused(raw, "customer_required",
                            "name the customer: the event's `customer` or the TokenLedger-Customer header")  # fmt: skip
        return routing.default
    if not isinstance(named, str) or not 1 <= len(named) <= 128:
        return _refused(raw, "invalid_event", "customer must be the customer's external id (1 to 128 characters)")
    if routing.own_only:
        default = routing.default
        if default is None or default.external_id != named:
            return _refused(raw, "customer_mismatch", "an account key records only its own account's events")
        return default
    account = routing.customers.get(named)
    if account is None:
        return _refused(raw, "unknown_customer", f"no customer {named!r}")
    return account


def usage_record_routed(
    *, routing: EventRouting, raw_events: list[Any], ip: str | None = None, user_agent: str = ""
) -> BatchResult:
    """Record each event for its customer; one batch (one transaction, one ledger entry) per account, in account
    order. The results are in the order of `raw_events`."""
    results: list[EventResult | None] = [None] * len(raw_events)
    groups: dict[int, list[int]] = {}
    accounts: dict[int, Account] = {}
    for index, raw in enumerate(raw_events):
        routed = _route(raw, routing)
        if isinstance(routed, EventResult):
            results[index] = routed
            continue
        groups.setdefault(routed.pk, []).append(index)
        accounts[routed.pk] = routed
    batch_id: uuid.UUID | None = None
    for account_id in sorted(groups):
        indexes = groups[account_id]
        batch = usage_record_batch(
            account=accounts[account_id],
            raw_events=[raw_events[i] for i in indexes],
            ip=ip,
            user_agent=user_agent,
            api_key_id=routing.api_key_id,
        )
        batch_id = batch_id or batch.batch_id
        for index, result in zip(indexes, batch.results, strict=True):
            results[index] = result
    return BatchResult(batch_id=batch_id or uuid.uuid4(), results=[r for r in results if r is not None])
