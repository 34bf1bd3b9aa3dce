"""The gateway's database work, in two steps around the provider call (each one call from the async view).

`gateway_admit` decides before anything is forwarded: who the caller is, which model and upstream, the plan's rate
limit, and the reservation of the call's worst case (usage.services.authorization: the same locks and checks as
POST /api/usage/authorize). `gateway_settle` records the usage the provider reported (which settles the
reservation) and `gateway_release` frees the hold of a call that produced nothing.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from django.db import OperationalError, close_old_connections, router, transaction
from django.utils import timezone
from tokenledger.usage_mapping import MeteredUsage

from billing.errors import UnknownCustomer
from billing.models import Account, ServerKey
from billing.selectors import customer_by_external_id
from billing.services.api_keys import api_key_authenticate
from billing.services.server_keys import SERVER_KEY_PREFIX, server_key_authenticate
from gateway.errors import Alternative, GatewayRefusal
from gateway.formats import CallRequest, Route
from gateway.models import Upstream
from gateway.routing import UpstreamTarget, upstream_for
from gateway.upstream_keys import upstream_key_encrypt
from pricing.dimensions import Mode
from pricing.errors import InactiveModel, PricingError, UnknownModel
from pricing.selectors import catalog_snapshot
from usage.estimate import tokens_for
from usage.services.authorization import AuthorizeRequest, reservation_create
from usage.services.recording import REJECTED, EventResult, usage_record_batch
from usage.services.reservations import ReservationError, reservation_release
from usage.throttling import RateLimitUnavailable, plan_rate_take

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_OUTPUT_TOKENS = 10**9  # what an authorize may ask for (usage/api/authorize.py)
# reasons that concern what the account may do, not what it can pay for: 403; every other denial is 402
_FORBIDDEN_REASONS = {"account_suspended", "model_not_allowed"}


@dataclass(frozen=True)
class Credentials:
    """What the client sent to say who it is: its key and, with a server key, the customer."""

    api_key: str
    customer: str | None
    request_id: str | None  # TokenLedger-Request-Id: the client's own idempotency key for the call
    operation_type: str


@dataclass(frozen=True)
class Admission:
    """An authorized call: the hold is in place; what is needed to forward it and to record what it used."""

    account: Account
    request_id: str
    model_id: str
    input_tokens: int
    max_output_tokens: int
    operation_type: str
    user: str
    endpoint: str
    upstream: UpstreamTarget
    api_key_id: int | None = None  # the account key that called (its usage event records it); None for a server key


def caller_identify(*, credentials: Credentials) -> tuple[Account, int | None]:
    """The account the call is for and the account key that made it: an account key's account, or the customer
    a server key (with `usage`) names (no account key then)."""
    raw = credentials.api_key
    if not raw:
        raise GatewayRefusal(401, "missing_api_key", "Send your TokenLedger API key as the provider API key.")
    if raw.startswith(SERVER_KEY_PREFIX):
        server_key = server_key_authenticate(raw)
        if server_key is None:
            raise GatewayRefusal(401, "invalid_api_key", "The server key is unknown or revoked.")
        return _customer_of(server_key, credentials.customer), None
    key = api_key_authenticate(raw)
    if key is None:
        raise GatewayRefusal(401, "invalid_api_key", "The API key is unknown or revoked.")
    return _account_by_id(key.account_id), key.pk


def _account_by_id(account_id: int) -> Account:
    """The account an account key names, without a query: only its id is loaded, every other field is deferred (read
    from the database if something asks for it). The gateway's services lock and read the account's rows
    themselves; they need its id."""
    return Account.from_db(router.db_for_read(Account), ["id"], [account_id])


def _customer_of(server_key: ServerKey, customer: str | None) -> Account:
    if not server_key.allows(ServerKey.Scope.USAGE):
        raise GatewayRefusal(403, "insufficient_scope", "This server key does not have the 'usage' scope.")
    if not customer:
        raise GatewayRefusal(
            400, "customer_required", "A server key acts for a customer: name it with the TokenLedger-Customer header."
        )
    try:
        return customer_by_external_id(external_id=customer)
    except UnknownCustomer:
        raise GatewayRefusal(404, "customer_not_found", f"No customer {customer!r}.") from None


def _request_id(credentials: Credentials) -> str:
    chosen = credentials.request_id
    if chosen is None:
        return f"gw_{uuid.uuid4().hex}"
    if not 0 < len(chosen) <= 128 or not chosen.isprintable():
        raise GatewayRefusal(400, "invalid_request_id", "TokenLedger-Request-Id: 1 to 128 printable characters.")
    return chosen


def gateway_admit(*, route: Route, call: CallRequest, credentials: Credentials) -> Admission:
    """Authorize the call's worst case, or refuse it (GatewayRefusal) before it reaches the provider."""
    close_old_connections()
    account, api_key_id = caller_identify(credentials=credentials)
    snapshot = catalog_snapshot()
    try:
        entry = snapshot.active_model(call.model)
    except (UnknownModel, InactiveModel) as exc:
        raise GatewayRefusal(404, "model_not_found", exc.message) from None
    output = 0 if entry.mode == Mode.EMBEDDING or not route.output_fields else call.max_output_tokens
    if output is None:
        output = entry.max_output_tokens
    if output is None:
        names = " or ".join(route.output_fields)
        raise GatewayRefusal(400, "max_tokens_required", f"Send {names}: the catalog has no output limit for {entry.model_id!r}.")  # fmt: skip
    output *= call.choices  # the worst case: every one of the `n` answers as long as it may be
    if output > MAX_OUTPUT_TOKENS:
        raise GatewayRefusal(400, "max_tokens_invalid", f"n times the output bound asks for more than {MAX_OUTPUT_TOKENS} tokens.")  # fmt: skip
    upstream = upstream_for(kind=route.provider, model=call.model)
    _rate_limit_take(account)
    admission = Admission(
        account=account, request_id=_request_id(credentials), model_id=entry.model_id,
        input_tokens=tokens_for(call.input_text, provider=entry.provider) + call.input_token_ids,
        max_output_tokens=output, operation_type=credentials.operation_type, user=call.user,
        endpoint=route.endpoint, upstream=upstream, api_key_id=api_key_id,
    )  # fmt: skip
    _reserve(admission)
    return admission


def _rate_limit_take(account: Account) -> None:
    try:
        decision = plan_rate_take(account=account)
    except RateLimitUnavailable:
        raise GatewayRefusal(503, "rate_limit_unavailable", "The rate limiter cannot be reached; try again shortly.",
                             retry_after=10) from None  # fmt: skip
    if decision is not None and not decision.allowed:
        raise GatewayRefusal(
            429, "rate_limited", f"This plan allows {decision.limit} requests per hour; try again in "
            f"{decision.retry_after_seconds} s.", retry_after=decision.retry_after_seconds,
        )  # fmt: skip


def _reserve(admission: Admission) -> None:
    request = AuthorizeRequest(
        request_id=admission.request_id, model=admission.model_id, input_tokens=admission.input_tokens,
        max_output_tokens=admission.max_output_tokens, operation_type=admission.operation_type,
    )  # fmt: skip
    now = timezone.now()
    try:
        decision = reservation_create(account=admission.account, request=request, now=now)
    except ReservationError as exc:
        raise GatewayRefusal(exc.status_code, exc.code, exc.message) from None
    except PricingError as exc:
        raise GatewayRefusal(400, exc.code, exc.message) from None
    if not decision.allowed:
        status = 403 if decision.reason in _FORBIDDEN_REASONS else 402
        alternatives = [Alternative(a.model_id, a.credits, a.charge_usd) for a in decision.alternatives]
        raise GatewayRefusal(status, decision.reason, decision.message, alternatives=alternatives)
    if decision.reservation is not None and decision.reservation.created_at < now:
        # the hold of another call with this request id, in flight or answered and being recorded (a reservation
        # this call made is dated `now`): forwarding this one too would have the provider answer (and the operator
        # pay for) one call twice
        raise GatewayRefusal(409, "request_in_progress", "A call with this TokenLedger-Request-Id is in progress; "
                             "its answer is recorded under it.")  # fmt: skip


@dataclass(frozen=True)
class Recording:
    """What recording a call needs, and nothing else: it is written to the journal (gateway/journal.py) as it is."""

    account_id: int
    api_key_id: int | None
    event: dict[str, Any]


def recording_for(*, admission: Admission, usage: MeteredUsage, estimated: bool) -> Recording:
    event: dict[str, Any] = {
        "request_id": admission.request_id, "model": admission.model_id, **usage.event_fields(),
        "metadata": {"gateway": admission.endpoint, "usage": "estimated" if estimated else "reported"},
    }  # fmt: skip
    if admission.operation_type:
        event["operation_type"] = admission.operation_type
    if admission.user and len(admission.user) <= 200 and admission.user.isprintable():
        event["user"] = admission.user
    return Recording(account_id=admission.account.pk, api_key_id=admission.api_key_id, event=event)


_RETRY_DELAYS = (0.05, 0.25, 1.0)  # seconds


def _retried(work: Callable[..., _T]) -> Callable[..., _T]:
    """Work that runs after the client has its answer (or has gone), and is idempotent: retried when the database
    refuses it for a moment (a deadlock, a lost connection; SQLite's locked table), since nobody is there to retry
    it. The pool thread waits meanwhile, not the event loop."""

    @functools.wraps(work)
    def retrying(**kwargs: Any) -> _T:
        for delay in _RETRY_DELAYS:
            try:
                return work(**kwargs)
            except OperationalError as exc:
                logger.warning("gateway %s: %s, retried in %.2f s", work.__name__, type(exc).__name__, delay)
                time.sleep(delay)
        return work(**kwargs)

    return retrying


@_retried
def gateway_record(*, recording: Recording) -> EventResult:
    """Record what the call used (this settles its reservation). An event the catalog cannot rate is kept in the
    dead-letter table for replay, and its hold is freed meanwhile. Recording twice records once (the request id)."""
    close_old_connections()
    account = _account_by_id(recording.account_id)
    batch = usage_record_batch(account=account, raw_events=[recording.event], api_key_id=recording.api_key_id)
    result = batch.results[0]
    if result.status == REJECTED:
        request_id = recording.event["request_id"]
        logger.warning("gateway event %s refused: %s", request_id, (result.error or {}).get("code"))
        _release(account=account, request_id=request_id)
    return result


def gateway_settle(*, admission: Admission, usage: MeteredUsage, estimated: bool) -> EventResult:
    """Record what the call used (gateway_record)."""
    return gateway_record(recording=recording_for(admission=admission, usage=usage, estimated=estimated))


@_retried
def gateway_release(*, admission: Admission) -> None:
    """Free the hold of a call that failed or was abandoned before it produced anything."""
    close_old_connections()
    _release(account=admission.account, request_id=admission.request_id)


def _release(*, account: Account, request_id: str) -> None:
    try:
        reservation_release(account=account, request_id=request_id)
    except ReservationError as exc:  # already recorded (a race with settle) or gone: nothing is held
        logger.info("gateway release of %s: %s", request_id, exc.code)


def usage_estimated(*, admission: Admission, produced_text: str, partial: MeteredUsage | None = None) -> MeteredUsage:
    """A call whose answer carried no final usage: its output counted from the text produced; its input as the
    provider counted it before it broke off (`partial`), else as estimated at admission. The output is never less
    than what the provider had counted."""
    provider = catalog_snapshot().find_model(admission.model_id).provider
    produced = tokens_for(produced_text, provider=provider)
    if partial is None:
        return MeteredUsage(input_tokens=admission.input_tokens, output_tokens=produced)
    return replace(partial, output_tokens=max(partial.output_tokens, produced), extra=dict(partial.extra))


@transaction.atomic
def upstream_save(*, upstream: Upstream, api_key: str | None) -> Upstream:
    """Save an upstream from the console; a new provider key is stored encrypted (the clear key is kept nowhere),
    none given keeps the one stored. A new upstream needs a key."""
    if api_key:
        upstream.api_key_encrypted = upstream_key_encrypt(api_key)
        upstream.api_key_hint = api_key[-4:] if len(api_key) >= 12 else ""
    elif not upstream.api_key_encrypted:
        raise ValueError("a new upstream needs its provider API key")
    upstream.save()
    return upstream
