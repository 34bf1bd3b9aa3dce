"""Reads for the account dashboard only. The balance page reads the wallet, the period's counters and the daily
rollups, never the events (the usage history's reads are in dashboard/history.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Sum

from billing.models import (
    Account,
    ApiKey,
    AutoRecharge,
    BillingPeriod,
    Invoice,
    Membership,
    Subscription,
    TopUp,
    Wallet,
)
from billing.selectors import UsageSummary, period_usage_summary
from pricing.catalog import CatalogSnapshot, PlanTermsVersion
from pricing.errors import NoPriceInForce
from pricing.money import CREDITS, USD, Money, precise
from pricing.rating import PlanCharge, PlanRecommendation, plan_charge, plan_recommendation
from pricing.selectors import catalog_snapshot, plan_terms_version
from usage.models import Alert, DailyUsage

WRITE_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.ADMIN})


# --- who may see which account -----------------------------------------------------------------------------------


def user_memberships(*, user: AbstractBaseUser) -> list[Membership]:
    """The user's accounts (with their role), by account name: the account switcher's choices."""
    return list(
        Membership.objects.filter(user_id=user.pk).select_related("account").order_by("account__name", "account_id")
    )


# --- the balance page --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateUsed:
    currency: str
    rate: Decimal
    effective_from: datetime


@dataclass(frozen=True)
class BalanceView:
    credits: Decimal
    held_credits: Decimal
    available_credits: Decimal
    usd: Money | None  # None when no credits rate is in force
    local: Money | None  # None when the display currency is USD or has no rate in force
    credits_rate: RateUsed | None
    local_rate: RateUsed | None
    low_balance: bool
    low_balance_threshold: Decimal

    @property
    def negative(self) -> bool:
        """Usage was recorded beyond the funds: the account owes credits."""
        return self.credits < 0

    @property
    def owed_credits(self) -> Decimal:
        return -self.credits if self.credits < 0 else Decimal(0)


def _rate(snapshot: CatalogSnapshot, currency: str, at: datetime) -> RateUsed | None:
    try:
        version = snapshot.rate_at(currency, at)
    except NoPriceInForce:
        return None
    return RateUsed(currency=currency, rate=version.rate, effective_from=version.effective_from)


def balance_view(*, account: Account, as_of: datetime) -> BalanceView:
    """The wallet in credits, worth in USD at today's credits rate and in the display currency at its rate (each
    with the rate and the date it took effect). A missing rate hides that value instead of failing the page."""
    wallet = Wallet.objects.only("balance", "held").get(account_id=account.pk)
    snapshot = catalog_snapshot()
    credits_rate = _rate(snapshot, CREDITS, as_of)
    currency = account.display_currency
    local_rate = _rate(snapshot, currency, as_of) if currency != USD else None
    usd = Money(wallet.balance / credits_rate.rate, USD).rounded() if credits_rate else None
    local = (
        Money(wallet.balance / credits_rate.rate, USD).convert(to=currency, rate=local_rate.rate).rounded()
        if credits_rate and local_rate
        else None
    )
    available = wallet.balance - wallet.held
    threshold = account.low_balance_threshold
    return BalanceView(
        credits=wallet.balance,
        held_credits=wallet.held,
        available_credits=available,
        usd=usd,
        local=local,
        credits_rate=credits_rate,
        local_rate=local_rate,
        low_balance=threshold > 0 and available < threshold,  # the rule of billing's wallet_balance_summary
        low_balance_threshold=threshold,
    )


def to_display(amount: Money, *, account: Account, as_of: datetime) -> Money | None:
    """A USD amount in the account's display currency at today's rate (None when USD already, or no rate)."""
    if account.display_currency == amount.currency:
        return None
    rate = _rate(catalog_snapshot(), account.display_currency, as_of)
    return amount.convert(to=account.display_currency, rate=rate.rate).rounded() if rate else None


def current_period(*, account: Account, as_of: datetime) -> BillingPeriod | None:
    """The open period containing `as_of` with its plan and terms, or None before its first use (read only: the
    first recorded event or API call opens it)."""
    return (
        BillingPeriod.objects.select_related("plan", "terms__plan")
        .filter(account_id=account.pk, start__lte=as_of, end__gt=as_of)
        .first()
    )


@dataclass(frozen=True)
class PeriodEstimate:
    usage: UsageSummary
    elapsed: Decimal  # share of the period gone, 0..1
    projected_units: Decimal
    so_far: PlanCharge
    projected: PlanCharge
    credits_used: Decimal
    recommendation: PlanRecommendation | None
    recommended_plan_name: str = ""


def _elapsed_share(period: BillingPeriod, as_of: datetime) -> Decimal:
    total = period.end - period.start
    gone = min(max(as_of - period.start, timedelta(0)), total)
    # whole seconds, as integers: no float on the way
    seconds = Decimal(gone.days * 86400 + gone.seconds)
    return seconds / Decimal(total.days * 86400 + total.seconds)


def public_plan_terms(*, snapshot: CatalogSnapshot, at: datetime) -> list[tuple[str, str, PlanTermsVersion]]:
    """(code, name, terms in force) of every public, active plan with terms at `at`."""
    found = []
    for plan in snapshot.plans.values():
        if not (plan.is_public and plan.is_active):
            continue
        try:
            found.append((plan.code, plan.name, plan.terms_at(at)))
        except NoPriceInForce:
            continue
    return found


def period_estimate(*, period: BillingPeriod, as_of: datetime) -> PeriodEstimate:
    """The period's charge so far and at this pace by its end, and the cheapest public plan of the same family for
    that projected usage (with the monthly saving when it is not the current one)."""
    terms = plan_terms_version(period.terms)
    share = _elapsed_share(period, as_of)
    # under an hour in, a projection would multiply noise: take the usage as it stands
    projected_units = period.units_used if share < Decimal("0.0015") else period.units_used / share
    projected_units = projected_units.quantize(Decimal(1)) if terms.unit != "credits" else precise(projected_units)
    snapshot = catalog_snapshot()
    candidates = public_plan_terms(snapshot=snapshot, at=as_of)
    recommendation = plan_recommendation(terms, [t for _, _, t in candidates], projected_units)
    names = {code: name for code, name, _ in candidates}
    return PeriodEstimate(
        usage=period_usage_summary(period=period),
        elapsed=share,
        projected_units=projected_units,
        so_far=plan_charge(terms, period.units_used),
        projected=recommendation.current,
        credits_used=period.credits_used,
        recommendation=recommendation if recommendation.should_switch else None,
        recommended_plan_name=names.get(recommendation.best.plan_code, recommendation.best.plan_code),
    )


@dataclass(frozen=True)
class DayUsage:
    day: date
    events: int
    credits: Decimal
    charge_usd: Decimal


def daily_usage(*, account: Account, start: date, end: date) -> list[DayUsage]:
    """One entry per UTC day from `start` to `end` inclusive (zero on days without usage), from the rollups."""
    rows = (
        DailyUsage.objects.filter(account_id=account.pk, day__gte=start, day__lte=end)
        .values("day")
        .annotate(events_sum=Sum("events"), credits_sum=Sum("credits"), charge_sum=Sum("charge_usd"))
        .order_by("day")
    )
    by_day = {row["day"]: row for row in rows}
    days = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        row = by_day.get(day)
        days.append(
            DayUsage(
                day=day,
                events=row["events_sum"] if row else 0,
                credits=stored_sum(row["credits_sum"]) if row else Decimal(0),
                charge_usd=stored_sum(row["charge_sum"]) if row else Decimal(0),
            )
        )
    return days


@dataclass(frozen=True)
class BreakdownRow:
    label: str
    events: int
    credits: Decimal
    charge_usd: Decimal
    tokens: int


BREAKDOWNS = {"model": "model_id", "operation": "operation_type"}


def usage_breakdown(*, account: Account, start: date, end: date, by: str) -> list[BreakdownRow]:
    """Usage per model or per operation between two UTC days inclusive, highest credits first, from the rollups."""
    column = BREAKDOWNS[by]
    rows = (
        DailyUsage.objects.filter(account_id=account.pk, day__gte=start, day__lte=end)
        .values(column)
        .annotate(
            events_sum=Sum("events"),
            credits_sum=Sum("credits"),
            charge_sum=Sum("charge_usd"),
            input_sum=Sum("input_tokens"),
            output_sum=Sum("output_tokens"),
        )
        .order_by(column)
    )
    result = [
        BreakdownRow(
            label=row[column] or "unspecified",
            events=row["events_sum"] or 0,
            credits=stored_sum(row["credits_sum"]),
            charge_usd=stored_sum(row["charge_sum"]),
            tokens=(row["input_sum"] or 0) + (row["output_sum"] or 0),
        )
        for row in rows
    ]
    return sorted(result, key=lambda r: (-r.credits, -r.charge_usd, r.label))


def stored_sum(value: Any) -> Decimal:
    """A summed amount at the stored precision (SQLite sums decimals as floating point; this rounds that away)."""
    return precise(Decimal(str(value))) if value is not None else Decimal(0)


# --- top-ups, plans, invoices, keys, alerts ----------------------------------------------------------------------


def account_topups(*, account: Account, limit: int = 20) -> list[TopUp]:
    return list(TopUp.objects.filter(account_id=account.pk).order_by("-created_at", "-id")[:limit])


def topup_for_session(*, account: Account, session_id: str) -> TopUp | None:
    if not session_id:
        return None
    return TopUp.objects.filter(account_id=account.pk, stripe_checkout_session_id=session_id).first()


def account_auto_recharge(*, account: Account) -> AutoRecharge | None:
    return AutoRecharge.objects.filter(account_id=account.pk).first()


def account_subscription(*, account: Account) -> Subscription | None:
    return Subscription.objects.select_related("plan", "pending_plan").filter(account_id=account.pk).first()


def account_invoice_list(*, account: Account, limit: int = 60) -> list[Invoice]:
    return list(
        Invoice.objects.filter(account_id=account.pk).select_related("period").order_by("-period__start")[:limit]
    )


def account_api_keys(*, account: Account) -> list[ApiKey]:
    """Live keys first, then revoked ones, newest first within each."""
    keys = ApiKey.objects.filter(account_id=account.pk).select_related("created_by").order_by("-created_at", "-id")
    return sorted(keys, key=lambda k: k.revoked_at is not None)


def account_members(*, account: Account) -> list[Membership]:
    """The account's people, owners first, then by name."""
    order: dict[str, int] = {Membership.Role.OWNER: 0, Membership.Role.ADMIN: 1, Membership.Role.VIEWER: 2}
    people = Membership.objects.filter(account_id=account.pk).select_related("user")
    return sorted(people, key=lambda m: (order.get(m.role, 9), m.user.get_username()))


def recent_alerts(*, account: Account, limit: int = 25) -> list[Alert]:
    return list(
        Alert.objects.filter(account_id=account.pk).prefetch_related("deliveries").order_by("-created_at")[:limit]
    )
