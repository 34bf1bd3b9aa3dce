"""Authorize (reserve) before a provider call, settle when its usage is recorded, expire what is never recorded.

`reservation_create` runs in one transaction with the account, wallet and period locked, so concurrent callers are
decided one after another against the same balance and quota: a credit can never be promised twice. It checks, in
order: account_suspended, account_past_due (after the grace period), model_not_allowed, message_limit_exceeded,
daily_cost_limit, monthly_cost_limit, quota_exceeded, spend_cap_reached, insufficient_credits — against the worst
case, the input estimate plus `max_output_tokens`. An allowed call holds that worst case until the event is
recorded (the hold is released and the actual amount debited), released by the client, or the reservation expires.
A request id is used once: authorizing it again with the same parameters answers the first decision, with other
parameters is IdempotencyConflict, and after it was recorded is AlreadyRecorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from billing.models import Account, BillingPeriod, Subscription, Wallet
from billing.services.locks import LockedRows, account_rows_lock, account_rows_lock_then, raw_sql_enabled
from billing.services.periods import period_current
from billing.services.wallet import wallet_held_release, wallet_hold, wallet_lock
from core.decimals import decimal_string
from core.statements import transaction_in_round_trips
from pricing.catalog import CatalogSnapshot, PlanTermsVersion
from pricing.errors import ModelNotAllowed
from pricing.plans import debits_wallet, event_units, quota_allowed_units, quota_enforced, spend_cap_enforced
from pricing.rating import FeatureUse, Rating, UsageLine, plan_charge, rate_usage, usage_line_worst_case
from pricing.selectors import catalog_snapshot, plan_terms_by_id
from usage.event_store import RequestState, request_state_of, request_state_statement, reservation_insert
from usage.models import DailyUsage, Reservation
from usage.services.reservations import AlreadyRecorded, IdempotencyConflict, request_recorded


@dataclass(frozen=True)
class AuthorizeRequest:
    request_id: str
    model: str
    input_tokens: int
    max_output_tokens: int
    operation_type: str = ""
    features: tuple[FeatureUse, ...] = ()
    images: int = 0
    # the price dimensions the client knows before the call (docs/pricing-dimensions.md); input_tokens is the total
    dimensions: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alternative:
    model_id: str
    credits: Decimal
    charge_usd: Decimal


@dataclass
class Decision:
    allowed: bool
    reason: str = ""
    message: str = ""
    reservation: Reservation | None = None
    remaining: Decimal | None = None
    alternatives: list[Alternative] = field(default_factory=list)


class _Denied(Exception):
    """The one way a rule refuses: a reason, a message and, for a cost refusal, the budget left (for the
    alternatives offered)."""

    def __init__(
        self, reason: str, message: str, *, budget_usd: Decimal | None = None, budget_credits: Decimal | None = None
    ) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message
        self.budget_usd, self.budget_credits = budget_usd, budget_credits

    @property
    def cost_related(self) -> bool:
        return self.budget_usd is not None or self.budget_credits is not None


@dataclass
class _Gate:
    """What the decision reads, all of it under the account's locks (account, wallet, period)."""

    rows: LockedRows
    period: BillingPeriod
    request: RequestState


@dataclass
class _Ask:
    """The call as the rules see it: its worst-case rating and what it counts against the plan."""

    request: AuthorizeRequest
    snapshot: CatalogSnapshot
    terms: PlanTermsVersion
    rating: Rating
    units: Decimal
    now: datetime


def _line(request: AuthorizeRequest, model: str, at: datetime, snapshot: CatalogSnapshot) -> UsageLine:
    """The worst case of the call: its input as sent (its total decides the long-context tier) and every one of
    `max_output_tokens` at the dearest output price the model has (usage_line_worst_case)."""
    line = UsageLine(
        model=model, occurred_at=at, input_tokens=request.input_tokens, output_tokens=request.max_output_tokens,
        images=request.images, features=request.features, **request.dimensions,
    )  # fmt: skip
    return usage_line_worst_case(line, snapshot)


def reservation_create(
    *, account: Account, request: AuthorizeRequest, now: datetime | None = None,
    snapshot: CatalogSnapshot | None = None,
) -> Decision:  # fmt: skip
    """Decide whether the account may make this call now; if so, hold its worst-case cost. `snapshot` is the
    catalog the caller already holds for this request (read now when not given).

    One transaction whose BEGIN and COMMIT ride with its statements (core.statements.transaction_in_round_trips);
    the first call of a new period finds no period to lock, opens it, and decides again."""
    now = now or timezone.now()
    with _one_transaction():
        gate = _gate_read(account=account, request_id=request.request_id, now=now)
        if gate is not None:
            return _decision(account=account, request=request, now=now, snapshot=snapshot, gate=gate)
    period_current(account=account, as_of=now)
    with _one_transaction():
        gate = _gate_read(account=account, request_id=request.request_id, now=now)
        assert gate is not None, "the period in force was just opened"
        return _decision(account=account, request=request, now=now, snapshot=snapshot, gate=gate)


def _one_transaction() -> AbstractContextManager[None]:
    """PostgreSQL's statements send BEGIN and COMMIT in their own round trips; the ORM path is transaction.atomic()
    (its savepoint for the reservation's insert cannot run in the folded transaction)."""
    return transaction_in_round_trips() if raw_sql_enabled() else transaction.atomic()


def _decision(
    *, account: Account, request: AuthorizeRequest, now: datetime, snapshot: CatalogSnapshot | None, gate: _Gate
) -> Decision:
    fingerprint = authorize_fingerprint(request)
    existing = gate.request.existing
    if existing is not None:  # a retried authorize answers what the first one decided, if it asks the same
        if existing.status == Reservation.Status.SETTLED or (
            existing.status != Reservation.Status.ACTIVE and gate.request.recorded
        ):
            raise AlreadyRecorded(f"Request {request.request_id!r} is already recorded; use a new request_id.")
        if existing.fingerprint and existing.fingerprint != fingerprint:
            raise IdempotencyConflict(
                f"Request {request.request_id!r} was authorized with other parameters; use a new request_id."
            )
        snapshot = snapshot or catalog_snapshot()
        terms = plan_terms_by_id(terms_id=gate.period.terms_id, snapshot=snapshot)
        # what is left now, this call's hold counted (as the first answer said)
        committed = gate.period.units_used + _reserved_units(account=account, gate=gate, terms=terms)
        remaining = _remaining(gate=gate, terms=terms, committed=committed, held=gate.rows.wallet.held)
        return Decision(allowed=True, reservation=existing, remaining=remaining)
    if gate.request.recorded:
        raise AlreadyRecorded(f"Request {request.request_id!r} is already recorded; use a new request_id.")
    snapshot = snapshot or catalog_snapshot()
    terms = plan_terms_by_id(terms_id=gate.period.terms_id, snapshot=snapshot)
    try:
        ask = _ask(request=request, snapshot=snapshot, terms=terms, now=now, gate=gate)
        held, committed = _decide(account=account, gate=gate, ask=ask)
    except _Denied as denied:
        alternatives = _alternatives(request=request, snapshot=snapshot, terms=terms, now=now, denied=denied)
        return Decision(allowed=False, reason=denied.reason, message=denied.message, alternatives=alternatives)
    return _reserve(account=account, gate=gate, ask=ask, held=held, committed=committed, fingerprint=fingerprint)


def _gate_read(*, account: Account, request_id: str, now: datetime) -> _Gate | None:
    """Lock the account, wallet and period in force, then read the request's state: two statements in one round
    trip on PostgreSQL. None when no period is in force (nothing is locked then)."""
    rows, state = _locked_with_state(account=account, request_id=request_id, now=now)
    if rows is None:
        return None
    return _Gate(rows=rows, period=next(iter(rows.periods.values())), request=state)


def _locked_with_state(*, account: Account, request_id: str, now: datetime) -> tuple[LockedRows | None, RequestState]:
    if raw_sql_enabled():
        state_read = request_state_statement(account_id=account.pk, request_id=request_id)
        rows, state_rows = account_rows_lock_then(account_id=account.pk, at=now, then=state_read)
        return rows, request_state_of(state_rows)
    rows = account_rows_lock(account_id=account.pk, at=now)
    return rows, _request_state_orm(account=account, request_id=request_id)


def _request_state_orm(*, account: Account, request_id: str) -> RequestState:
    """event_store.request_state_statement through the ORM."""
    subscription = Subscription.objects.filter(account=account).values_list("status", "past_due_since").first()
    return RequestState(
        subscription_status=subscription[0] if subscription else None,
        past_due_since=subscription[1] if subscription else None,
        existing=Reservation.objects.filter(account=account, request_id=request_id).first(),
        recorded=request_recorded(account=account, request_id=request_id),
    )


def authorize_fingerprint(request: AuthorizeRequest) -> str:
    """A hash of everything an authorize asks (not its request id): a retry must send the same to be answered."""
    asked = [
        request.model, request.input_tokens, request.max_output_tokens, request.operation_type, request.images,
        sorted([feature.key, str(feature.quantity), feature.cepo] for feature in request.features),
        sorted((name, str(value)) for name, value in request.dimensions.items()),
    ]  # fmt: skip
    return hashlib.sha256(json.dumps(asked, separators=(",", ":")).encode()).hexdigest()


def _ask(*, request: AuthorizeRequest, snapshot: CatalogSnapshot, terms: PlanTermsVersion, now: datetime,
         gate: _Gate) -> _Ask:  # fmt: skip
    _account_in_good_standing(gate=gate, now=now)
    try:
        rating = rate_usage(_line(request, request.model, now, snapshot), snapshot, tier=terms.plan_code, terms=terms)
    except ModelNotAllowed as exc:
        raise _Denied("model_not_allowed", str(exc)) from None
    units = event_units(unit=terms.unit, line_input=request.input_tokens, line_output=request.max_output_tokens,
                        credits=rating.credits)  # fmt: skip
    return _Ask(request=request, snapshot=snapshot, terms=terms, rating=rating, units=units, now=now)


def _decide(*, account: Account, gate: _Gate, ask: _Ask) -> tuple[Decimal, Decimal]:
    """Apply the plan's rules in order; answer the credits to hold and the units committed before this call (used
    and reserved), or raise _Denied."""
    _message_limits_check(account=account, gate=gate, ask=ask)
    committed = gate.period.units_used + _reserved_units(account=account, gate=gate, terms=ask.terms)
    _quota_check(gate=gate, ask=ask, committed=committed)
    return _credits_check(gate=gate, ask=ask, committed=committed), committed


def _account_in_good_standing(*, gate: _Gate, now: datetime) -> None:
    if gate.rows.status == Account.Status.SUSPENDED:
        raise _Denied("account_suspended", "This account is suspended.")
    since = gate.request.past_due_since
    grace = timedelta(days=settings.PAST_DUE_GRACE_DAYS)
    if gate.request.subscription_status == Subscription.Status.PAST_DUE and since and now - since > grace:
        raise _Denied("account_past_due", "A payment is overdue past the grace period.")


def _message_limits_check(*, account: Account, gate: _Gate, ask: _Ask) -> None:
    """The plan's per-operation limits: tokens per message, then today's and this period's spend."""
    request = ask.request
    limit = ask.snapshot.operation_limit(plan_code=ask.terms.plan_code, operation_type=request.operation_type)
    if limit is None:
        return
    checks = (
        (limit.max_input_tokens, request.input_tokens, "input"),
        (limit.max_output_tokens, request.max_output_tokens, "output"),
        (limit.max_total_tokens, request.input_tokens + request.max_output_tokens, "total"),
    )
    for maximum, asked, what in checks:
        if maximum is not None and asked > maximum:
            raise _Denied("message_limit_exceeded", f"{asked} {what} tokens exceed the limit of {maximum} per message.")
    operation, today = request.operation_type, ask.now.date()
    if limit.max_daily_cost_usd is not None:
        spent = _charged(account=account, operation_type=operation, since=today, until=today)
        if spent + ask.rating.charge_usd > limit.max_daily_cost_usd:
            raise _Denied(
                "daily_cost_limit", f"Today's spend on {operation} would pass ${limit.max_daily_cost_usd}.",
                budget_usd=limit.max_daily_cost_usd - spent,
            )  # fmt: skip
    if limit.max_monthly_cost_usd is not None:
        spent = _charged(account=account, operation_type=operation, since=gate.period.start.date(), until=today)
        if spent + ask.rating.charge_usd > limit.max_monthly_cost_usd:
            raise _Denied(
                "monthly_cost_limit", f"This period's spend on {operation} would pass ${limit.max_monthly_cost_usd}.",
                budget_usd=limit.max_monthly_cost_usd - spent,
            )  # fmt: skip


def _reserved_units(*, account: Account, gate: _Gate, terms: PlanTermsVersion) -> Decimal:
    """What open reservations hold counts against a quota or a spend cap; a plan with neither needs no sum."""
    if gate.period.included_units is None and not spend_cap_enforced(terms):
        return Decimal(0)
    active = Reservation.objects.filter(account=account, status=Reservation.Status.ACTIVE)
    return active.aggregate(units=Sum("estimated_units"))["units"] or Decimal(0)


def _quota_check(*, gate: _Gate, ask: _Ask, committed: Decimal) -> None:
    terms, included = ask.terms, gate.period.included_units
    if included is not None and quota_enforced(terms, included):
        allowed_units = quota_allowed_units(terms, included)
        if committed + ask.units > allowed_units:
            raise _Denied(
                "quota_exceeded",
                f"This would use {committed + ask.units} of the {allowed_units} {terms.unit} allowed this period.",
            )
    if spend_cap_enforced(terms):
        charge = plan_charge(terms, committed + ask.units)
        if charge.base.amount + charge.overage.amount > terms.monthly_spend_cap:  # type: ignore[operator]
            raise _Denied("spend_cap_reached", f"This period's charges would pass the ${terms.monthly_spend_cap} cap.")


def _credits_check(*, gate: _Gate, ask: _Ask, committed: Decimal) -> Decimal:
    """The credits to hold on a credit plan (what lies beyond the included credits left); refused when more
    than the wallet has available."""
    if not debits_wallet(ask.terms):
        return Decimal(0)
    included, wallet = gate.period.included_units, gate.rows.wallet
    free_left = Decimal(0) if included is None else max(Decimal(0), included - committed)
    held = max(Decimal(0), ask.units - free_left)
    available = wallet.balance - wallet.held
    if held > available:
        may_cost, left = decimal_string(held), decimal_string(max(available, Decimal(0)))
        raise _Denied(
            "insufficient_credits", f"This call may cost {may_cost} credits; {left} are available.",
            budget_credits=available + free_left,
        )  # fmt: skip
    return held


def _reserve(
    *, account: Account, gate: _Gate, ask: _Ask, held: Decimal, committed: Decimal, fingerprint: str
) -> Decision:
    """Create the reservation and hold its credits (billing's wallet_hold, under the wallet's lock)."""
    request, now = ask.request, ask.now
    reservation = Reservation(
        account_id=account.pk, request_id=request.request_id, fingerprint=fingerprint, model_id=ask.rating.model_id,
        operation_type=request.operation_type, held_credits=held, estimated_cost_usd=ask.rating.charge_usd,
        estimated_units=ask.units, created_at=now, expires_at=now + timedelta(seconds=settings.RESERVATION_TTL_SECONDS),
    )  # fmt: skip
    if not _reservation_insert(reservation, wallet=gate.rows.wallet, held=held):
        return Decision(
            allowed=True, reservation=Reservation.objects.get(account=account, request_id=request.request_id)
        )
    remaining = _remaining(
        gate=gate, terms=ask.terms, committed=committed + ask.units, held=gate.rows.wallet.held + held
    )
    return Decision(allowed=True, reservation=reservation, remaining=remaining)


def _remaining(*, gate: _Gate, terms: PlanTermsVersion, committed: Decimal, held: Decimal) -> Decimal | None:
    """What an allowed call answers as `remaining`, `committed` units used and reserved and `held` credits on the
    wallet counting this call: on a credit plan the included credits left plus the wallet's available credits;
    on a quota plan the included units left (None without a quota)."""
    included = gate.period.included_units
    units_left = None if included is None else max(Decimal(0), included - committed)
    if debits_wallet(terms):
        return (units_left or Decimal(0)) + gate.rows.wallet.balance - held
    return units_left


def _reservation_insert(reservation: Reservation, *, wallet: Wallet, held: Decimal) -> bool:
    """Insert unless the request id has a reservation (the unique constraint decides; a savepoint off PostgreSQL)
    and hold its credits (billing's wallet hold, under the wallet's lock): one statement on PostgreSQL."""
    if raw_sql_enabled():  # the last statement: COMMIT goes with it
        return reservation_insert(reservation=reservation, wallet=wallet, held=held, commit=True)
    try:
        with transaction.atomic():
            reservation.save(force_insert=True)
    except IntegrityError:
        return False
    wallet_hold(wallet=wallet, credits=held)
    return True


def _charged(*, account: Account, operation_type: str, since: object, until: object) -> Decimal:
    total = DailyUsage.objects.filter(
        account=account, operation_type=operation_type, day__gte=since, day__lte=until
    ).aggregate(total=Sum("charge_usd"))["total"]
    return total or Decimal(0)


def _alternatives(
    *, request: AuthorizeRequest, snapshot: CatalogSnapshot, terms: PlanTermsVersion, now: datetime, denied: _Denied
) -> list[Alternative]:
    """For a cost refusal: the cheaper models this tier may use that would fit the budget left (at most three)."""
    if not denied.cost_related:
        return []
    tier = terms.plan_code
    mode = snapshot.find_model(request.model).mode  # an embedding model is no alternative for a chat call
    options = []
    for entry in snapshot.models.values():
        if not entry.is_active or not entry.allows(tier) or entry.model_id == request.model or entry.mode != mode:
            continue
        try:
            rating = rate_usage(_line(request, entry.model_id, now, snapshot), snapshot, tier=tier, terms=terms)
        except Exception:  # noqa: S112 - a model without a price now is simply not an alternative
            continue
        if denied.budget_usd is not None and rating.charge_usd > denied.budget_usd:
            continue
        if denied.budget_credits is not None and rating.credits > denied.budget_credits:
            continue
        if rating.charge_usd <= 0 and entry.prices and request.input_tokens + request.max_output_tokens > 0:
            # a model priced only per image costs nothing for text; it is no alternative for a text call
            price = entry.price_at(now)
            if price.input_per_million == 0 and price.output_per_million == 0:
                continue
        options.append(Alternative(model_id=entry.model_id, credits=rating.credits, charge_usd=rating.charge_usd))
    options.sort(key=lambda a: (a.charge_usd, a.model_id))
    return options[:3]


@transaction.atomic
def reservations_expire(*, as_of: datetime) -> int:
    """Release the holds of reservations that were never settled by `as_of`. Idempotent."""
    expired = 0
    account_ids = (
        Reservation.objects.filter(status=Reservation.Status.ACTIVE, expires_at__lte=as_of)
        .values_list("account_id", flat=True)
        .distinct()
    )
    for account_id in sorted(set(account_ids)):
        with transaction.atomic():
            account = Account.objects.select_for_update().get(pk=account_id)
            wallet = wallet_lock(account=account)
            due = list(
                Reservation.objects.select_for_update().filter(
                    account=account, status=Reservation.Status.ACTIVE, expires_at__lte=as_of
                )
            )
            released = sum((r.held_credits for r in due), Decimal(0))
            Reservation.objects.filter(pk__in=[r.pk for r in due]).update(
                status=Reservation.Status.EXPIRED, closed_at=as_of
            )
            wallet_held_release(wallet=wallet, credits=released)
            expired += len(due)
    return expired
