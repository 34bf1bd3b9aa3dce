"""Subscriptions and billing periods.

Periods are calendar months by default (UTC), or months from the subscription's start day ("anniversary"); yearly
plans use twelve-month periods. A period is opened when first needed with the plan terms in force at its start
and keeps them: a change to a plan's terms, or a change of plan, applies from the next period, unless a plan
change is asked to apply now (then the open period switches to the new plan's terms and its counters carry over).
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import row_store
from billing.errors import CloseInFuture, NoSubscription, PeriodNotEnded
from billing.models import Account, BillingPeriod, Invoice, Subscription
from billing.services.audit import Actor, audit_record
from billing.services.late_usage import late_usage_link, late_usage_price
from billing.services.locks import raw_sql_enabled
from billing.services.outbox import outbox_write
from core.statements import Statement
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


TermsLookup = dict[tuple[int, datetime], PlanTerms]


def _terms_at(plan: Plan, start: datetime, cache: TermsLookup | None) -> PlanTerms:
    if cache is None:
        return plan_terms_at(plan=plan, at=start)
    key = (plan.pk, start)
    if key not in cache:
        cache[key] = plan_terms_at(plan=plan, at=start)
    return cache[key]


def _next_period(
    *, account_id: int, subscription: Subscription, as_of: datetime, terms_cache: TermsLookup | None = None
) -> BillingPeriod:
    """The (unsaved) period of `subscription` containing `as_of`, applying a pending plan change when it starts a
    new period. Moves the subscription's current period forward (the caller saves it)."""
    start, end = period_bounds(subscription=subscription, as_of=as_of)
    if subscription.pending_plan_id and start >= subscription.current_period_end:
        subscription.plan, subscription.pending_plan = subscription.pending_plan, None  # type: ignore[assignment]
    if start > subscription.current_period_start:  # a period opened for a past time never rewinds the subscription
        subscription.current_period_start, subscription.current_period_end = start, end
    terms = _terms_at(subscription.plan, start, terms_cache)
    return BillingPeriod(
        account_id=account_id, start=start, end=end, plan=subscription.plan, terms=terms, unit=terms.unit,
        included_units=terms.included_units,
    )  # fmt: skip


def _period_open(*, account: Account, subscription: Subscription, as_of: datetime) -> BillingPeriod:
    period = _next_period(account_id=account.pk, subscription=subscription, as_of=as_of)
    subscription.save(update_fields=["plan", "pending_plan", "current_period_start", "current_period_end"])
    try:
        with transaction.atomic():
            period.save(force_insert=True)
            return period
    except IntegrityError:  # opened by a concurrent caller
        return BillingPeriod.objects.get(account=account, start=period.start)


def period_current(*, account: Account, as_of: datetime) -> BillingPeriod:
    """The account's period containing `as_of`, opened now if it is the first use of that period."""
    if raw_sql_enabled():  # on every recorded batch: SQL written once, not a query the ORM builds each time
        period = row_store.period_in_force(account_id=account.pk, at=as_of)
    else:
        period = BillingPeriod.objects.filter(account=account, start__lte=as_of, end__gt=as_of).first()
    if period is not None:  # the usual case: one read, no transaction of its own
        return period
    return _period_current_open(account=account, as_of=as_of)


def period_counters_statement(period: BillingPeriod) -> Statement:
    """The statement that writes the period's usage counters (units, tokens, messages, amounts, overage so far) as
    they stand on the instance, for a caller that holds the period's lock and sends it with its own statements
    (core.statements). PostgreSQL only; elsewhere period_counters_save."""
    return row_store.period_counters_statement(period)


def period_counters_save(*, period: BillingPeriod) -> None:
    """Write the period's usage counters as they stand on the instance; the caller holds the period's lock."""
    period.save(update_fields=row_store.PERIOD_COUNTERS)


@transaction.atomic
def _period_current_open(*, account: Account, as_of: datetime) -> BillingPeriod:
    Account.objects.select_for_update().get(pk=account.pk)  # lock order: the account, then its subscription
    subscription = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("plan", "pending_plan")
        .filter(account=account)
        .first()
    )
    if subscription is None:
        raise NoSubscription(f"account {account.pk} has no subscription")
    # a concurrent caller may have opened it while this one waited for the subscription's lock
    period = BillingPeriod.objects.filter(account=account, start__lte=as_of, end__gt=as_of).first()
    return period or _period_open(account=account, subscription=subscription, as_of=as_of)


def _invoice_for(period: BillingPeriod, as_of: datetime) -> Invoice:
    """The (unsaved) invoice of an ended period, and the period's closing fields set: the plan charge from the
    period's own terms (fee, overage, then the cap), the total in cents rounded once, half up."""
    charge = plan_charge(plan_terms_version(period.terms), period.units_used)
    total = charge.total
    cents = total.to_minor_units()
    period.status, period.closed_at = BillingPeriod.Status.CLOSED, as_of
    period.overage_units = charge.overage_units
    period.overage_usd = max(total.amount - charge.base.amount, Money.zero(total.currency).amount)
    return Invoice(
        account_id=period.account_id,
        period=period,
        plan_code=period.terms.plan.code,
        unit=period.unit,
        units=period.units_used,
        included_units=period.included_units,
        overage_units=charge.overage_units,
        input_tokens=period.input_tokens,
        output_tokens=period.output_tokens,
        messages=period.messages,
        api_cost_usd=period.provider_cost_usd,
        charge_usd=period.charge_usd,
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


PERIOD_CLOSE_FIELDS = ["status", "closed_at", "overage_units", "overage_usd"]
SUBSCRIPTION_PERIOD_FIELDS = ["plan", "pending_plan", "status", "current_period_start", "current_period_end"]


def _subscription_roll(
    *, period: BillingPeriod, subscription: Subscription | None, terms_cache: TermsLookup | None = None
) -> BillingPeriod | None:
    """After `period` closed: the next period to open (unsaved), or None when the subscription ends with it."""
    if subscription is None or subscription.status == Subscription.Status.CANCELED:
        return None
    if subscription.cancel_at_period_end:
        subscription.status = Subscription.Status.CANCELED
        return None
    return _next_period(
        account_id=period.account_id, subscription=subscription, as_of=period.end, terms_cache=terms_cache
    )


def close_as_of_check(*, as_of: datetime) -> None:
    """A close is for a time that has come: an `as_of` after now would close periods that have not ended, and the
    usage still to come in them would land in a closed period."""
    now = timezone.now()
    if as_of > now:
        raise CloseInFuture(
            f"as_of {as_of.isoformat()} is in the future (now is {now.isoformat()}); periods are closed only after "
            "they end"
        )


@transaction.atomic
def period_close(*, period: BillingPeriod, as_of: datetime) -> Invoice:
    """Close an ended period: the invoice from the plan charge (fee, overage, cap) plus the account's late usage,
    its outbox rows (overage billing, monthly summary) in the same transaction, then open the next period.

    Idempotent: closing a closed period returns its invoice and changes nothing. An `as_of` in the future is refused.
    """
    close_as_of_check(as_of=as_of)
    account = Account.objects.select_for_update().get(pk=period.account_id)
    locked = BillingPeriod.objects.select_for_update(of=("self",)).select_related("terms__plan").get(pk=period.pk)
    if locked.end > as_of:
        raise PeriodNotEnded(f"period {locked.pk} ends at {locked.end.isoformat()}, after {as_of.isoformat()}")
    if locked.status != BillingPeriod.Status.OPEN:
        return Invoice.objects.get(period=locked)
    invoice = _invoice_for(locked, as_of)
    late = late_usage_price(invoices=[invoice], at=as_of)
    invoice.save(force_insert=True)
    late_usage_link(adjustments=late)
    outbox_write(invoices=[invoice])
    locked.save(update_fields=PERIOD_CLOSE_FIELDS)
    subscription = (
        Subscription.objects.select_for_update(of=("self",)).select_related("plan", "pending_plan")
        .filter(account_id=locked.account_id).first()
    )  # fmt: skip
    following = _subscription_roll(period=locked, subscription=subscription)
    if subscription is not None:
        subscription.save(update_fields=SUBSCRIPTION_PERIOD_FIELDS)
    if following is not None:
        BillingPeriod.objects.bulk_create([following], ignore_conflicts=True)
    invoice.account = account
    return invoice


@transaction.atomic
def periods_close_chunk(*, period_ids: list[int], as_of: datetime) -> list[Invoice]:
    """Close a chunk of ended periods in one transaction with bulk writes: the same rules as period_close.

    Locks the accounts (in id order), then the periods, then the subscriptions. Periods already closed are
    skipped, so a re-run after a crash finishes the rest and does nothing twice; the outbox rows are written with
    the invoices, so what must follow them is never lost with the process.
    """
    close_as_of_check(as_of=as_of)
    account_ids = sorted(set(BillingPeriod.objects.filter(pk__in=period_ids).values_list("account_id", flat=True)))
    accounts = {a.pk: a for a in Account.objects.select_for_update().filter(pk__in=account_ids).order_by("pk")}
    periods = list(
        BillingPeriod.objects.select_for_update(of=("self",)).select_related("terms__plan")
        .filter(pk__in=period_ids, status=BillingPeriod.Status.OPEN, end__lte=as_of).order_by("account_id", "end")
    )  # fmt: skip
    if not periods:
        return []
    invoices = [_invoice_for(period, as_of) for period in periods]
    late = late_usage_price(invoices=invoices, at=as_of)
    Invoice.objects.bulk_create(invoices)
    late_usage_link(adjustments=late)
    outbox_write(invoices=invoices)
    for invoice in invoices:
        invoice.account = accounts[invoice.account_id]
    _update_grouped(BillingPeriod, periods, PERIOD_CLOSE_FIELDS)
    subscriptions = {
        s.account_id: s
        for s in Subscription.objects.select_for_update(of=("self",)).select_related("plan", "pending_plan")
        .filter(account_id__in=account_ids)
    }  # fmt: skip
    terms_cache: TermsLookup = {}
    following = [
        nxt
        for period in periods
        if (nxt := _subscription_roll(period=period, subscription=subscriptions.get(period.account_id), terms_cache=terms_cache))
    ]  # fmt: skip
    BillingPeriod.objects.bulk_create(following, ignore_conflicts=True)
    _update_grouped(Subscription, list(subscriptions.values()), SUBSCRIPTION_PERIOD_FIELDS)
    return invoices


def _update_grouped(model: type[Any], rows: list[Any], fields: list[str]) -> None:
    """Write `fields` of many rows with one UPDATE per distinct set of values: a month's close gives few distinct
    sets (same dates, a handful of plans and overage amounts), far cheaper than a CASE per row."""
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    attnames = [model._meta.get_field(name).attname for name in fields]
    for row in rows:
        groups[tuple(getattr(row, attname) for attname in attnames)].append(row.pk)
    for values, pks in groups.items():
        model.objects.filter(pk__in=pks).update(**dict(zip(attnames, values, strict=True)))


def periods_due(*, as_of: datetime) -> list[int]:
    """Ids of the open periods that ended by `as_of`, oldest first."""
    return list(
        BillingPeriod.objects.filter(status=BillingPeriod.Status.OPEN, end__lte=as_of)
        .order_by("end", "pk")
        .values_list("pk", flat=True)
    )


def periods_close_due(*, as_of: datetime) -> tuple[list[Invoice], list[tuple[int, str]]]:
    """Close every period that ended by `as_of`, in chunks that each commit, so a crash midway leaves the closed ones
    closed and a re-run finishes the rest. A chunk that fails is retried one period at a time, so one account's
    problem never holds up the others. Returns the invoices written and (period id, error) failures.

    An `as_of` in the future is refused (CloseInFuture) before anything is closed."""
    close_as_of_check(as_of=as_of)
    chunk_size = settings.BILLING_CLOSE_CHUNK
    invoices: list[Invoice] = []
    failures: list[tuple[int, str]] = []
    due = periods_due(as_of=as_of)
    for offset in range(0, len(due), chunk_size):
        chunk = due[offset : offset + chunk_size]
        try:
            invoices.extend(periods_close_chunk(period_ids=chunk, as_of=as_of))
            continue
        except Exception:  # noqa: S110 - retried period by period below, where each failure is reported
            pass
        for period_id in chunk:
            try:
                period = BillingPeriod.objects.only("pk", "account_id").get(pk=period_id)
                invoices.append(period_close(period=period, as_of=as_of))
            except Exception as exc:
                failures.append((period_id, f"{type(exc).__name__}: {exc}"))
    return invoices, failures
