"""Every API operation as a `Call`: its method, path, body and how its answer is read. The sync and async clients
send the same calls, so both behave alike by construction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx

from tokenledger._http import Call, segment
from tokenledger.errors import Alternative, Denied, RejectedEvent
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
    build,
)

MAX_BATCH = 1000  # the server's batch limit; larger batches are sent in chunks

EVENT_FIELDS = (
    "request_id", "model", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
    "cache_write_input_tokens", "cache_write_1h_input_tokens", "service_tier", "images", "features", "multiplier",
    "operation_type", "user", "conversation_id", "provider_request_id", "occurred_at", "metadata", "customer",
)  # fmt: skip


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("times sent to TokenLedger must be aware (UTC), e.g. datetime.now(timezone.utc)")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        raise TypeError("send money and multipliers as Decimal or str, never float")
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def event_body(event: Mapping[str, Any]) -> dict[str, Any]:
    """A usage event as the API takes it: None values left out (metadata is sent as the JSON it is), a request id
    made when none is given."""
    body = {k: (v if k == "metadata" else _jsonable(v)) for k, v in event.items() if v is not None}
    body.setdefault("request_id", new_request_id())
    return body


def _json(response: httpx.Response) -> Any:
    return response.json()


def _parse(cls: Any) -> Any:
    return lambda response: build(cls, response.json())


def authorize(
    *, request_id: str | None, model: str, input_tokens: int, max_output_tokens: int, operation_type: str | None,
    features: Sequence[Any] | None, images: int | None,
) -> Call[Authorization]:  # fmt: skip
    body: dict[str, Any] = {
        "request_id": request_id or new_request_id(), "model": model, "input_tokens": input_tokens,
        "max_output_tokens": max_output_tokens,
    }  # fmt: skip
    if operation_type:
        body["operation_type"] = operation_type
    if features:
        body["features"] = _jsonable(list(features))
    if images:
        body["images"] = images

    def parse(response: httpx.Response) -> Authorization:
        data = response.json()
        if not data.get("allowed"):
            raise Denied(
                str(data.get("message") or data.get("reason") or "denied"),
                reason=str(data.get("reason") or "denied"),
                request_id=body["request_id"],
                alternatives=tuple(
                    Alternative(
                        model_id=a["model_id"], credits=Decimal(a["credits"]), charge_usd=Decimal(a["charge_usd"])
                    )
                    for a in data.get("alternatives") or []
                ),
            )
        return build(Authorization, {**data, "request_id": body["request_id"]})

    return Call("POST", "/api/usage/authorize", parse, json=body)


def record_one(event: Mapping[str, Any]) -> Call[EventResult]:
    body = event_body(event)

    def parse(response: httpx.Response) -> EventResult:
        data = response.json()
        result = build(EventResult, (data.get("results") or [{}])[0])
        if response.status_code == 400 and result.status == "rejected":
            raise RejectedEvent(
                str(data.get("message") or "the event was rejected"), code=str(data.get("error")), result=result,
                body=data,
            )  # fmt: skip
        return result

    return Call("POST", "/api/usage/events", parse, json=body, ok_statuses=frozenset({400}))


def _batch_result(response: httpx.Response) -> RecordResult:
    data = response.json()
    return RecordResult(
        results=[build(EventResult, r) for r in data.get("results") or []],
        recorded=int(data.get("recorded") or 0),
        duplicate=int(data.get("duplicate") or 0),
        rejected=int(data.get("rejected") or 0),
    )


def record_batches(events: Iterable[Mapping[str, Any]]) -> list[Call[RecordResult]]:
    bodies = [event_body(event) for event in events]
    return [
        Call("POST", "/api/usage/events", _batch_result, json={"events": bodies[start : start + MAX_BATCH]})
        for start in range(0, len(bodies), MAX_BATCH)
    ]


def merge(results: list[RecordResult]) -> RecordResult:
    return RecordResult(
        results=[r for part in results for r in part.results],
        recorded=sum(r.recorded for r in results),
        duplicate=sum(r.duplicate for r in results),
        rejected=sum(r.rejected for r in results),
    )


def release(request_id: str) -> Call[Release]:
    return Call("POST", f"/api/usage/reservations/{segment(request_id)}/release", _parse(Release))


def reservation(request_id: str) -> Call[Reservation]:
    return Call("GET", f"/api/usage/reservations/{segment(request_id)}", _parse(Reservation))


def estimate(*, model: str, text: str | None, messages: Any, max_output_tokens: int) -> Call[Estimate]:
    body: dict[str, Any] = {"model": model, "max_output_tokens": max_output_tokens}
    if text is not None:
        body["text"] = text
    if messages is not None:
        body["messages"] = messages
    if text is None and messages is None:
        raise ValueError("estimate needs text or messages")
    return Call("POST", "/api/usage/estimate", _parse(Estimate), json=body)


def _range(start: date | None, end: date | None) -> dict[str, str]:
    params = {}
    if start is not None:
        params["from"] = start.isoformat()
    if end is not None:
        params["to"] = end.isoformat()
    return params


def balance(prefix: str = "/api/billing/balance") -> Call[Balance]:
    return Call("GET", prefix, _parse(Balance))


def usage(path: str = "/api/tokens/usage") -> Call[Usage]:
    return Call("GET", path, _parse(Usage))


def stats(start: date | None, end: date | None, path: str = "/api/usage/stats") -> Call[Stats]:
    return Call("GET", path, _parse(Stats), params=_range(start, end))


def models(tier: str | None) -> Call[list[Model]]:
    def parse(response: httpx.Response) -> list[Model]:
        data = response.json()
        rows = data.get("results", data) if isinstance(data, dict) else data
        return [build(Model, row) for row in rows]

    return Call("GET", "/api/tokens/models", parse, params={"tier": tier} if tier else None)


def features() -> Call[list[Feature]]:
    def parse(response: httpx.Response) -> list[Feature]:
        data = response.json()
        rows = data.get("results", data) if isinstance(data, dict) else data
        return [build(Feature, row) for row in rows]

    return Call("GET", "/api/tokens/features", parse)


def exchange() -> Call[list[ExchangeRate]]:
    def parse(response: httpx.Response) -> list[ExchangeRate]:
        data = response.json()
        rows = data.get("results", data) if isinstance(data, dict) else data
        return [build(ExchangeRate, row) for row in rows]

    return Call("GET", "/api/tokens/exchange", parse)


def invoices(path: str = "/api/billing/invoices") -> Call[list[dict[str, Any]]]:
    def parse(response: httpx.Response) -> list[dict[str, Any]]:
        data = response.json()
        return list(data.get("results", []) if isinstance(data, dict) else data)

    return Call("GET", path, parse)


# customers (a server key with the `customers` scope)


def _customer_path(external_id: str, tail: str = "") -> str:
    return f"/api/customers/{segment(external_id)}{tail}"


def customer_upsert(external_id: str, fields: Mapping[str, Any]) -> Call[Customer]:
    body = {k: _jsonable(v) for k, v in fields.items() if v is not None}
    return Call("PUT", _customer_path(external_id), _parse(Customer), json=body)


def customer_get(external_id: str) -> Call[Customer]:
    return Call("GET", _customer_path(external_id), _parse(Customer))


def customer_list(*, cursor: str | None, plan: str | None, status: str | None) -> Call[CustomerPage]:
    params = {k: v for k, v in {"cursor": cursor, "plan": plan, "status": status}.items() if v}

    def parse(response: httpx.Response) -> CustomerPage:
        data = response.json()
        return CustomerPage([build(Customer, row) for row in data.get("results") or []], data.get("next_cursor"))

    return Call("GET", "/api/customers", parse, params=params)


def customer_action(external_id: str, action: str, body: Mapping[str, Any] | None = None) -> Call[Customer]:
    return Call("POST", _customer_path(external_id, f"/{action}"), _parse(Customer), json=dict(body or {}))


def customer_grant(
    external_id: str, *, credits: Decimal | int | str, reason: str, expires_at: datetime | None,
    idempotency_key: str | None,
) -> Call[Grant]:  # fmt: skip
    body: dict[str, Any] = {"credits": _jsonable(credits), "reason": reason}
    if expires_at is not None:
        body["expires_at"] = _jsonable(expires_at)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", _customer_path(external_id, "/credits"), _parse(Grant), json=body, headers=headers)


def customer_key_create(external_id: str, name: str | None) -> Call[ApiKey]:
    return Call("POST", _customer_path(external_id, "/api-keys"), _parse(ApiKey), json={"name": name} if name else {})


def customer_key_list(external_id: str) -> Call[list[ApiKey]]:
    def parse(response: httpx.Response) -> list[ApiKey]:
        data = response.json()
        rows = data.get("results", []) if isinstance(data, dict) else data
        return [build(ApiKey, row) for row in rows]

    return Call("GET", _customer_path(external_id, "/api-keys"), parse)


def customer_key_revoke(external_id: str, key_id: str | int) -> Call[None]:
    return Call("DELETE", _customer_path(external_id, f"/api-keys/{segment(str(key_id))}"), lambda _: None)


def customer_portal_session(external_id: str, return_url: str | None) -> Call[PortalSession]:
    body = {"return_url": return_url} if return_url else {}
    return Call("POST", _customer_path(external_id, "/portal-sessions"), _parse(PortalSession), json=body)
