"""Subscriptions and billing periods.

Periods are calendar months by default (UTC), or months from the subscription's start day ("anniversary"); yearly
plans use twelve-month periods. A period is opened when first needed with the plan terms in force at its start
and keeps them: a change to a plan's terms, or a change of plan, applies from the next period, unless a plan
change is asked to apply now (then the open period switches to the new plan's terms and its counters carry over).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.errors import NoSubscription, PeriodNotEnded
from billing.models import Account, BillingPeriod, Invoice, Subscription
from billing.services.audit import Actor, audit_record
from pricing.errors import NoPriceInForce, UnknownPlan
from pricing.models import Plan, PlanTerms
from pricing.money import Money
from pricing.rating import plan_charge
from pricing.selectors import plan_terms_version


def add_months(moment: datetime, months: int, *, day: int | None = None) -> datetime:
    """`moment` moved by whole months, on `day` (default its own) clamped to the month's length."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    wanted = day or moment.day
    return moment.replace(year=year, month=month, day=min(wanted, calendar.monthrange(year, month)[1]))


def period_bounds(*, subscription: Subscription, as_of: datetime) -> tuple[datetime, datetime]:
    """The start and end of the subscription's period that contains `as_of`."""
    months = 12 if subscription.interval == "year" else 1
    if subscription.period_anchor == Subscription.Anchor.ANNIVERSARY:
        anchor = subscription.started_at.astimezone(UTC)
        day = anchor.day
        elapsed = (as_of.year - anchor.year) * 12 + (as_of.month - anchor.month)
        start = add_months(anchor, elapsed - elapsed % months, day=day)
        if start > as_of:
            start = add_months(anchor, elapsed - elapsed % months - months, day=day)
        return start, add_months(start, months, day=day)
    base = as_of.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if months == 12:
        base = base.replace(month=1)
    return base, add_months(base, months)


def plan_terms_at(*, plan: Plan, at: datetime) -> PlanTerms:
    terms = PlanTerms.objects.filter(plan=plan, effective_from__lte=at).order_by("-effective_from").first()
    if terms is None:
        raise NoPriceInForce(f"plan {plan.code!r} has no terms in force at {at.isoformat()}")
    return terms


def plan_by_code(code: str) -> Plan:
    plan = Plan.objects.filter(code=code, is_active=True).first()
    if plan is None:
        raise UnknownPlan(f"unknown plan {code!r}")
    return plan


@transaction.atomic
def subscription_start(*, account: Account, plan: Plan, as_of: datetime, anchor: str = "calendar") -> Subscription:
    plan_terms_at(plan=plan, at=as_of)  # a plan without terms cannot be subscribed to
    subscription = Subscription(account=account, plan=plan, started_at=as_of, period_anchor=anchor)
    subscription.interval = plan_terms_at(plan=plan, at=as_of).interval
    start, end = period_bounds(subscription=subscription, as_of=as_of)
    subscription.current_period_start, subscription.current_period_end = start, end
    subscription.save()
    return subscription


@transaction.atomic
def subscription_change_plan(
    *, account: Account, plan: Plan, apply_now: bool = False, as_of: datetime | None = None, actor: Actor = None,
    ip: str | None = None,
) -> Subscription:  # fmt: skip
    """Change the plan from the next period, or now (the open period then uses the new plan's terms)."""
    as_of = as_of or timezone.now()
    if not plan.is_active:
        raise UnknownPlan(f"plan {plan.code!r} is not active")
    Account.objects.select_for_update().get(pk=account.pk)
    subscription = Subscription.objects.select_for_update().filter(account=account).first()
    if subscription is None:
        raise NoSubscription(f"account {account.pk} has no subscription")
    terms = plan_terms_at(plan=plan, at=as_of)
    before = {
        "plan": subscription.plan.code,
        "pending_plan": subscription.pending_plan.code if subscription.pending_plan else None,
    }
    if apply_now:
        subscription.plan, subscription.pending_plan = plan, None
        period = period_current(account=account, as_of=as_of)
        locked = BillingPeriod.objects.select_for_update().get(pk=period.pk)
        locked.plan, locked.terms, locked.unit, locked.included_units = plan, terms, terms.unit, terms.included_units
        locked.save(update_fields=["plan", "terms", "unit", "included_units"])
    else:
        subscription.pending_plan = plan if plan != subscription.plan else None
    subscription.save()
    after = {
        "plan": subscription.plan.code,
        "pending_plan": plan.code if subscription.pending_plan else None,
        "apply_now": apply_now,
    }
    audit_record(action="plan_changed", account=account, object_type="Subscription", object_key=str(subscription.pk),
                 actor=actor, ip=ip, before=before, after=after)  # fmt: skip
    return subscription


def _period_open(*, account: Account, subscription: Subscription, as_of: datetime) -> BillingPeriod:
    start, end = period_bounds(subscription=subscription, as_of=as_of)
    if subscription.pending_plan_id and start >= subscription.current_period_end:
        subscription.plan, subscription.pending_plan = subscription.pending_plan, None  # type: ignore[assignment]
    if start > subscription.current_period_start:  # a period opened for a past time never rewinds the subscription
        subscription.current_period_start, subscription.current_period_end = start, end
    subscription.save()
    terms = plan_terms_at(plan=subscription.plan, at=start)
    try:
        with transaction.atomic():
            return BillingPeriod.objects.create(
                account=account, start=start, end=end, plan=subscription.plan, terms=terms, unit=terms.unit,
                included_units=terms.included_units,
            )  # fmt: skip
    except IntegrityError:  # opened by a concurrent caller
        return BillingPeriod.objects.get(account=account, start=start)


@transaction.atomic
def period_current(*, account: Account, as_of: datetime) -> BillingPeriod:
    """The account's period containing `as_of`, opened now if it is the first use of that period."""
    period = BillingPeriod.objects.filter(account=account, start__lte=as_of, end__gt=as_of).first()
    if period is not None:
        return period
    subscription = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("plan", "pending_plan")
        .filter(account=account)
        .first()
    )
    if subscription is None:
        raise NoSubscription(f"account {account.pk} has no subscription")
    return _period_open(account=account, subscription=subscription, as_of=as_of)


@transaction.atomic
def period_close(*, period: BillingPeriod, as_of: datetime) -> Invoice:
    """Close an ended period: the invoice from the plan charge (fee, overage, cap), then open the next period.

    Idempotent: closing a closed period returns its invoice and changes nothing.
    """
    Account.objects.select_for_update().get(pk=period.account_id)
    locked = (
        BillingPeriod.objects.select_for_update(of=("self",)).select_related("terms__plan", "account").get(pk=period.pk)
    )
    if locked.end > as_of:
        raise PeriodNotEnded(f"period {locked.pk} ends at {locked.end.isoformat()}, after {as_of.isoformat()}")
    if locked.status != BillingPeriod.Status.OPEN:
        return Invoice.objects.get(period=locked)
    charge = plan_charge(plan_terms_version(locked.terms), locked.units_used)
    total = charge.total
    cents = total.to_minor_units()
    invoice = Invoice.objects.create(
        account=locked.account,
        period=locked,
        plan_code=locked.terms.plan.code,
        unit=locked.unit,
        units=locked.units_used,
        included_units=locked.included_units,
        overage_units=charge.overage_units,
        input_tokens=locked.input_tokens,
        output_tokens=locked.output_tokens,
        messages=locked.messages,
        api_cost_usd=locked.provider_cost_usd,
        charge_usd=locked.charge_usd,
        base_charge=charge.base.amount,
        overage=charge.overage.amount,
        cap_applied=charge.cap_applied,
        total=total.amount,
        currency=total.currency,
        amount_cents=cents,
        # nothing to collect is settled at once; anything else waits for payment
        status=Invoice.Status.PAID if cents == 0 else Invoice.Status.OPEN,
        paid_at=as_of if cents == 0 else None,
    )
    locked.status, locked.closed_at = BillingPeriod.Status.CLOSED, as_of
    locked.overage_units = charge.overage_units
    locked.overage_usd = (
        (total - charge.base).amount if total.amount > charge.base.amount else Money.zero(total.currency).amount
    )
    locked.save(update_fields=["status", "closed_at", "overage_units", "overage_usd"])
    subscription = Subscription.objects.select_for_update().filter(account_id=locked.account_id).first()
    if subscription is not None and subscription.status != Subscription.Status.CANCELED:
        if subscription.cancel_at_period_end:
            subscription.status = Subscription.Status.CANCELED
            subscription.save(update_fields=["status"])
        else:
            _period_open(account=locked.account, subscription=subscription, as_of=locked.end)
    return invoice


def periods_due(*, as_of: datetime) -> list[int]:
    """Ids of the open periods that ended by `as_of`, oldest first."""
    return list(
        BillingPeriod.objects.filter(status=BillingPeriod.Status.OPEN, end__lte=as_of)
        .order_by("end", "pk")
        .values_list("pk", flat=True)
    )


def periods_close_due(*, as_of: datetime) -> tuple[list[Invoice], list[tuple[int, str]]]:
    """Close every period that ended by `as_of`, each in its own transaction, so a crash midway leaves the closed
    ones closed and a re-run finishes the rest. Returns the invoices written and (period id, error) failures."""
    invoices, failures = [], []
    for period_id in periods_due(as_of=as_of):
        period = BillingPeriod.objects.get(pk=period_id)
        try:
            invoices.append(period_close(period=period, as_of=as_of))
        except Exception as exc:  # one account's failure must not stop the others; it is reported
            failures.append((period_id, f"{type(exc).__name__}: {exc}"))
    return invoices, failures
