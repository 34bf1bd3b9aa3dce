"""Authorize (reserve) before a provider call, settle when its usage is recorded, expire what is never recorded.

`reservation_create` runs in one transaction with the account, wallet and period locked, so concurrent callers are
decided one after another against the same balance and quota: a credit can never be promised twice. It checks, in
order: account_suspended, account_past_due (after the grace period), model_not_allowed, message_limit_exceeded,
daily_cost_limit, monthly_cost_limit, quota_exceeded, spend_cap_reached, insufficient_credits — against the worst
case, the input estimate plus `max_output_tokens`. An allowed call holds that worst case until the event is
recorded (the hold is released and the actual amount debited) or the reservation expires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from billing.models import Account, BillingPeriod, Subscription, Wallet
from billing.services.periods import period_current
from billing.services.wallet import wallet_lock
from pricing.catalog import CatalogSnapshot, PlanTermsVersion
from pricing.errors import ModelNotAllowed
from pricing.rating import FeatureUse, UsageLine, plan_charge, rate_usage, usage_line_worst_case
from pricing.selectors import catalog_snapshot, plan_terms_by_id
from usage.models import DailyUsage, Reservation
from usage.services.recording import debits_wallet, event_units, quota_allowed_units


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
    def __init__(self, reason: str, message: str, *, cost_related: bool = False) -> None:
        super().__init__(message)
        self.reason, self.message, self.cost_related = reason, message, cost_related


def _line(request: AuthorizeRequest, model: str, at: datetime, snapshot: CatalogSnapshot) -> UsageLine:
    """The worst case of the call: its input as sent (its total decides the long-context tier) and every one of
    `max_output_tokens` at the dearest output price the model has (usage_line_worst_case)."""
    line = UsageLine(
        model=model, occurred_at=at, input_tokens=request.input_tokens, output_tokens=request.max_output_tokens,
        images=request.images, features=request.features, **request.dimensions,
    )  # fmt: skip
    return usage_line_worst_case(line, snapshot)


@transaction.atomic
def reservation_create(*, account: Account, request: AuthorizeRequest, now: datetime | None = None) -> Decision:
    """Decide whether the account may make this call now; if so, hold its worst-case cost."""
    now = now or timezone.now()
    locked_account = Account.objects.select_for_update().get(pk=account.pk)
    existing = Reservation.objects.filter(account=account, request_id=request.request_id).first()
    if existing is not None:  # a retried authorize answers what the first one decided
        return Decision(allowed=True, reservation=existing)
    try:
        return _decide(account=locked_account, request=request, now=now)
    except _Denied as denied:
        return Decision(allowed=False, reason=denied.reason, message=denied.message)


def _decide(*, account: Account, request: AuthorizeRequest, now: datetime) -> Decision:
    if account.status == Account.Status.SUSPENDED:
        raise _Denied("account_suspended", "This account is suspended.")
    # read after the account's lock, never joined to it: a joined row would be as it was before the lock's wait
    subscription = Subscription.objects.filter(account=account).first()
    grace = timedelta(days=settings.PAST_DUE_GRACE_DAYS)
    past_due_since = subscription.past_due_since if subscription else None
    if (
        subscription
        and subscription.status == Subscription.Status.PAST_DUE
        and past_due_since
        and now - past_due_since > grace
    ):
        raise _Denied("account_past_due", "A payment is overdue past the grace period.")
    wallet = wallet_lock(account=account)
    in_force = BillingPeriod.objects.select_for_update().filter(account=account, start__lte=now, end__gt=now)
    period = in_force.first()
    if period is None:  # the first call of a new period opens it
        period = in_force.get(pk=period_current(account=account, as_of=now).pk)
    snapshot = catalog_snapshot()
    terms = plan_terms_by_id(terms_id=period.terms_id, snapshot=snapshot)
    tier = terms.plan_code
    try:
        rating = rate_usage(_line(request, request.model, now, snapshot), snapshot, tier=tier, terms=terms)
    except ModelNotAllowed as exc:
        raise _Denied("model_not_allowed", str(exc)) from None

    limit = snapshot.operation_limit(plan_code=tier, operation_type=request.operation_type)
    if limit is not None:
        checks = (
            (limit.max_input_tokens, request.input_tokens, "input"),
            (limit.max_output_tokens, request.max_output_tokens, "output"),
            (limit.max_total_tokens, request.input_tokens + request.max_output_tokens, "total"),
        )
        for maximum, asked, what in checks:
            if maximum is not None and asked > maximum:
                raise _Denied(
                    "message_limit_exceeded", f"{asked} {what} tokens exceed the limit of {maximum} per message."
                )
        if limit.max_daily_cost_usd is not None:
            today = _charged(account=account, operation_type=request.operation_type, since=now.date(), until=now.date())
            if today + rating.charge_usd > limit.max_daily_cost_usd:
                return _deny_for_cost(
                    "daily_cost_limit", f"Today's spend on {request.operation_type} would pass ${limit.max_daily_cost_usd}.",
                    request=request, snapshot=snapshot, tier=tier, terms=terms, now=now,
                    budget_usd=limit.max_daily_cost_usd - today,
                )  # fmt: skip
        if limit.max_monthly_cost_usd is not None:
            month = _charged(
                account=account, operation_type=request.operation_type, since=period.start.date(), until=now.date()
            )
            if month + rating.charge_usd > limit.max_monthly_cost_usd:
                return _deny_for_cost(
                    "monthly_cost_limit", f"This period's spend on {request.operation_type} would pass ${limit.max_monthly_cost_usd}.",
                    request=request, snapshot=snapshot, tier=tier, terms=terms, now=now,
                    budget_usd=limit.max_monthly_cost_usd - month,
                )  # fmt: skip

    units = event_units(unit=terms.unit, line_input=request.input_tokens, line_output=request.max_output_tokens,
                        credits=rating.credits)  # fmt: skip
    included = period.included_units
    # what open reservations hold counts against a quota or a spend cap; a plan with neither needs no sum
    reserved = Decimal(0)
    if included is not None or (terms.monthly_spend_cap is not None and not debits_wallet(terms)):
        active = Reservation.objects.filter(account=account, status=Reservation.Status.ACTIVE)
        reserved = active.aggregate(units=Sum("estimated_units"))["units"] or Decimal(0)
    committed = period.units_used + reserved
    if included is not None and not (debits_wallet(terms) and terms.overage_allowed and not terms.hard_limit):
        allowed_units = quota_allowed_units(terms, included)
        if committed + units > allowed_units:
            raise _Denied(
                "quota_exceeded",
                f"This would use {committed + units} of the {allowed_units} {terms.unit} allowed this period.",
            )
    if terms.monthly_spend_cap is not None and not debits_wallet(terms):
        charge = plan_charge(terms, committed + units)
        if charge.base.amount + charge.overage.amount > terms.monthly_spend_cap:
            raise _Denied("spend_cap_reached", f"This period's charges would pass the ${terms.monthly_spend_cap} cap.")

    held = Decimal(0)
    if debits_wallet(terms):
        free_left = Decimal(0) if included is None else max(Decimal(0), included - committed)
        held = max(Decimal(0), units - free_left)
        available = wallet.balance - wallet.held
        if held > available:
            return _deny_for_cost(
                "insufficient_credits", f"This call may cost {held} credits; {max(available, Decimal(0))} are available.",
                request=request, snapshot=snapshot, tier=tier, terms=terms, now=now,
                budget_credits=available + free_left,
            )  # fmt: skip
    try:
        with transaction.atomic():
            reservation = Reservation.objects.create(
                account=account, request_id=request.request_id, model_id=rating.model_id,
                operation_type=request.operation_type, held_credits=held, estimated_cost_usd=rating.charge_usd,
                estimated_units=units, created_at=now,
                expires_at=now + timedelta(seconds=settings.RESERVATION_TTL_SECONDS),
            )  # fmt: skip
    except IntegrityError:
        return Decision(
            allowed=True, reservation=Reservation.objects.get(account=account, request_id=request.request_id)
        )
    if held:
        Wallet.objects.filter(pk=wallet.pk).update(held=F("held") + held)
    remaining: Decimal | None
    if debits_wallet(terms):
        remaining = wallet.balance - wallet.held - held
    else:
        remaining = None if included is None else max(Decimal(0), included - committed - units)
    return Decision(allowed=True, reservation=reservation, remaining=remaining)


def _charged(*, account: Account, operation_type: str, since: object, until: object) -> Decimal:
    total = DailyUsage.objects.filter(
        account=account, operation_type=operation_type, day__gte=since, day__lte=until
    ).aggregate(total=Sum("charge_usd"))["total"]
    return total or Decimal(0)


def _deny_for_cost(
    reason: str, message: str, *, request: AuthorizeRequest, snapshot: CatalogSnapshot, tier: str,
    terms: PlanTermsVersion, now: datetime, budget_usd: Decimal | None = None, budget_credits: Decimal | None = None,
) -> Decision:  # fmt: skip
    """A cost denial, with the cheaper models this tier may use that would fit the budget left."""
    options = []
    for entry in snapshot.models.values():
        if not entry.is_active or not entry.allows(tier) or entry.model_id == request.model:
            continue
        try:
            rating = rate_usage(_line(request, entry.model_id, now, snapshot), snapshot, tier=tier, terms=terms)
        except Exception:  # noqa: S112 - a model without a price now is simply not an alternative
            continue
        if budget_usd is not None and rating.charge_usd > budget_usd:
            continue
        if budget_credits is not None and rating.credits > budget_credits:
            continue
        if rating.charge_usd <= 0 and entry.prices and request.input_tokens + request.max_output_tokens > 0:
            # a model priced only per image costs nothing for text; it is no alternative for a text call
            price = entry.price_at(now)
            if price.input_per_million == 0 and price.output_per_million == 0:
                continue
        options.append(Alternative(model_id=entry.model_id, credits=rating.credits, charge_usd=rating.charge_usd))
    options.sort(key=lambda a: (a.charge_usd, a.model_id))
    return Decision(allowed=False, reason=reason, message=message, alternatives=options[:3])


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
            if released:
                Wallet.objects.filter(pk=wallet.pk).update(held=F("held") - released)
            expired += len(due)
    return expired
