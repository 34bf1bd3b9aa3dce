"""Reads for the account dashboard only. The balance page reads the wallet, the period's counters and the daily
rollups, never the events; the usage history pages through the events on the (account, occurred_at) index by
keyset, never counting them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet, Sum

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
from core.csv_export import csv_lines
from pricing.catalog import CatalogSnapshot, PlanTermsVersion
from pricing.errors import NoPriceInForce
from pricing.money import CREDITS, USD, Money, precise
from pricing.rating import PlanCharge, PlanRecommendation, plan_charge, plan_recommendation
from pricing.selectors import catalog_snapshot, plan_terms_version
from usage.models import Alert, DailyUsage, UsageEvent
from usage.selectors import EXPORT_COLUMNS

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
                credits=_sum(row["credits_sum"]) if row else Decimal(0),
                charge_usd=_sum(row["charge_sum"]) if row else Decimal(0),
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
            credits=_sum(row["credits_sum"]),
            charge_usd=_sum(row["charge_sum"]),
            tokens=(row["input_sum"] or 0) + (row["output_sum"] or 0),
        )
        for row in rows
    ]
    return sorted(result, key=lambda r: (-r.credits, -r.charge_usd, r.label))


def _sum(value: Any) -> Decimal:
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


# --- usage history -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageFilter:
    start: date | None = None
    end: date | None = None  # inclusive
    model: str = ""
    operation: str = ""
    user: str = ""  # the customer's own end user, exactly as sent on the events

    def events(self, account: Account) -> QuerySet[UsageEvent]:
        events = UsageEvent.objects.filter(account_id=account.pk)
        if self.start:
            events = events.filter(occurred_at__gte=datetime.combine(self.start, datetime.min.time(), tzinfo=UTC))
        if self.end:
            end = datetime.combine(self.end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            events = events.filter(occurred_at__lt=end)
        if self.model:
            events = events.filter(model_id=self.model)
        if self.operation:
            events = events.filter(operation_type="" if self.operation == "unspecified" else self.operation)
        if self.user:
            events = events.filter(user="" if self.user == NO_USER else self.user)
        return events


NO_USER = "(none)"  # the filter value for events sent without a `user`

BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Cursor:
    """A position in the history: the (occurred_at, id) of an event. Written `2026-11-20T10:00:00+00:00~123`."""

    occurred_at: datetime
    event_id: int

    def encode(self) -> str:
        return f"{self.occurred_at.isoformat()}~{self.event_id}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        if not text or "~" not in text:
            return None
        stamp, _, ident = text.rpartition("~")
        try:
            at = datetime.fromisoformat(stamp.replace(" ", "+"))  # a "+" in a query string may arrive as a space
            event_id = int(ident[:20])
            if at.tzinfo is None or not 0 < event_id <= BIGINT_MAX:
                return None
            at = at.astimezone(UTC)  # a year-9999 time with an offset may not exist in UTC
        except (ValueError, OverflowError):
            return None  # a cursor that cannot be a position: the first page
        return cls(occurred_at=at, event_id=event_id)


HISTORY_COLUMNS = (
    "id", "request_id", "occurred_at", "model_id", "operation_type", "input_tokens", "cached_input_tokens",
    "output_tokens", "reasoning_tokens", "images", "credits", "charge_usd", "units", "over_limit", "user",
)  # fmt: skip


@dataclass
class HistoryPage:
    rows: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str = ""  # older events
    previous_cursor: str = ""  # newer events


def usage_history_page(
    *, account: Account, usage_filter: UsageFilter, after: Cursor | None = None, before: Cursor | None = None,
    limit: int = 50,
) -> HistoryPage:  # fmt: skip
    """One page of events, newest first, by keyset on (occurred_at, id): `after` a cursor gives the older events
    that follow it, `before` a cursor the newer ones that precede it. Reads `limit + 1` rows to know whether there
    is more, never a COUNT."""
    events = usage_filter.events(account)
    newer_first = ("-occurred_at", "-id")
    if before is not None:
        rows = list(
            events.filter(
                Q(occurred_at__gt=before.occurred_at) | Q(occurred_at=before.occurred_at, id__gt=before.event_id)
            )
            .order_by("occurred_at", "id")
            .values(*HISTORY_COLUMNS)[: limit + 1]
        )
        more_newer = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        page = HistoryPage(rows=rows)
        if rows:
            page.previous_cursor = _cursor(rows[0]) if more_newer else ""
            page.next_cursor = _cursor(rows[-1])  # the page we came from is older than this one
        return page
    if after is not None:
        events = events.filter(
            Q(occurred_at__lt=after.occurred_at) | Q(occurred_at=after.occurred_at, id__lt=after.event_id)
        )
    rows = list(events.order_by(*newer_first).values(*HISTORY_COLUMNS)[: limit + 1])
    more_older = len(rows) > limit
    rows = rows[:limit]
    page = HistoryPage(rows=rows)
    if rows:
        page.next_cursor = _cursor(rows[-1]) if more_older else ""
        page.previous_cursor = _cursor(rows[0]) if after is not None else ""
    return page


def _cursor(row: dict[str, Any]) -> str:
    return Cursor(occurred_at=row["occurred_at"], event_id=row["id"]).encode()


@dataclass(frozen=True)
class FilterChoices:
    models: list[str]
    operations: list[str]


def usage_filter_choices(*, account: Account, since: date) -> FilterChoices:
    """The models and operations the account used since `since`, from the rollups."""
    buckets = DailyUsage.objects.filter(account_id=account.pk, day__gte=since)
    models = sorted(set(buckets.values_list("model_id", flat=True).distinct()))
    operations = sorted({op or "unspecified" for op in buckets.values_list("operation_type", flat=True).distinct()})
    return FilterChoices(models=models, operations=operations)


def spend_by_user(*, account: Account, usage_filter: UsageFilter, limit: int = 20) -> list[BreakdownRow]:
    """The filtered events' spend per end user, most credits first (the rollups have no user: this reads the events
    of the filter's range, at most a year)."""
    rows = (
        usage_filter.events(account)
        .values("user")
        .annotate(
            events_sum=Count("id"),
            credits_sum=Sum("credits"),
            charge_sum=Sum("charge_usd"),
            input_sum=Sum("input_tokens"),
            output_sum=Sum("output_tokens"),
        )
        .order_by("-credits_sum", "user")[:limit]
    )
    return [
        BreakdownRow(
            label=row["user"] or NO_USER,
            events=row["events_sum"],
            credits=_sum(row["credits_sum"]),
            charge_usd=_sum(row["charge_sum"]),
            tokens=(row["input_sum"] or 0) + (row["output_sum"] or 0),
        )
        for row in rows
    ]


def usage_history_csv(*, account: Account, usage_filter: UsageFilter) -> Iterator[str]:
    """The filtered events as CSV (the columns of /api/usage/export.csv), oldest first, streamed row by row through
    the one CSV writer, so an end user id or request id that starts like a formula arrives as text."""
    rows = usage_filter.events(account).order_by("occurred_at", "id").values_list(*EXPORT_COLUMNS)
    return csv_lines(itertools.chain([EXPORT_COLUMNS], rows.iterator(chunk_size=2000)))
