"""Reads of accounts, wallets, periods and invoices."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth.models import User
from django.db.models import Prefetch, QuerySet

from billing import row_store
from billing.errors import UnknownCustomer
from billing.models import Account, ApiKey, BillingPeriod, Invoice, Membership, Wallet
from billing.services.locks import raw_sql_enabled
from pricing.errors import PricingError
from pricing.money import CREDITS, USD, Money
from pricing.selectors import catalog_snapshot


@dataclass(frozen=True)
class BalanceSummary:
    credits: Decimal
    held_credits: Decimal
    available_credits: Decimal
    usd_equivalent: Money
    local_amount: Money
    credits_rate: Decimal
    local_rate: Decimal
    low_balance: bool


def wallet_balance_summary(*, account: Account, as_of: datetime) -> BalanceSummary:
    """The wallet in credits, its USD value at today's credits rate, and in the account's display currency."""
    # the account's display settings come with the wallet: one row read, whether `account` is loaded or not
    balance, held, display_currency, threshold = _wallet_balance_read(account_id=account.pk)
    snapshot = catalog_snapshot()
    credits_rate = snapshot.rate_at(CREDITS, as_of).rate
    try:
        local_currency, local_rate = display_currency, snapshot.rate_at(display_currency, as_of).rate
    except PricingError:  # no rate for the display currency (yet): show USD rather than fail
        local_currency, local_rate = USD, Decimal(1)
    usd = Money(balance / credits_rate, USD)
    available = balance - held
    return BalanceSummary(
        credits=balance,
        held_credits=held,
        available_credits=available,
        usd_equivalent=usd.rounded(),
        local_amount=usd.convert(to=local_currency, rate=local_rate).rounded(),
        credits_rate=credits_rate,
        local_rate=local_rate,
        low_balance=threshold > 0 and available < threshold,
    )


def _wallet_balance_read(*, account_id: int) -> tuple[Decimal, Decimal, str, Decimal]:
    """(balance, held, display currency, low-balance threshold): on PostgreSQL SQL written once, not a query the ORM builds on every balance call."""
    if raw_sql_enabled():
        found = row_store.wallet_balance_read(account_id=account_id)
        if found is None:
            raise Wallet.DoesNotExist(f"account {account_id} has no wallet")
        return found
    wallet = Wallet.objects.select_related("account").get(account_id=account_id)
    return wallet.balance, wallet.held, wallet.account.display_currency, wallet.account.low_balance_threshold


USAGE_STATUS_BANDS = ((Decimal(75), "ok"), (Decimal(90), "moderate"), (Decimal(100), "high"))


def usage_status(percentage: Decimal | None) -> str:
    """ok below 75 %, moderate below 90 %, high below 100 %, exceeded from 100 %."""
    if percentage is None:
        return "ok"
    for bound, status in USAGE_STATUS_BANDS:
        if percentage < bound:
            return status
    return "exceeded"


@dataclass(frozen=True)
class UsageSummary:
    plan: str
    unit: str
    limit: Decimal | None
    used: Decimal
    remaining: Decimal | None
    usage_percentage: Decimal | None
    status: str
    period_start: datetime
    period_end: datetime


def period_usage_summary(*, period: BillingPeriod) -> UsageSummary:
    limit = period.included_units
    used = period.units_used
    percentage = None
    remaining = None
    if limit is not None:
        remaining = max(limit - used, Decimal(0))
        percentage = (used * 100 / limit).quantize(Decimal("0.01"), ROUND_HALF_UP) if limit > 0 else Decimal(100)
    return UsageSummary(
        plan=period.plan.code,
        unit=period.unit,
        limit=limit,
        used=used,
        remaining=remaining,
        usage_percentage=percentage,
        status=usage_status(percentage),
        period_start=period.start,
        period_end=period.end,
    )


def account_invoices(*, account: Account) -> QuerySet[Invoice]:
    return Invoice.objects.filter(account=account).select_related("period").order_by("-period__start")


# --- customers (accounts with the reseller's external_id) ---------------------------------------------------------


def customer_owner(*, account: Account) -> User | None:
    """The customer's owner: the first owner membership; the user a portal session signs in."""
    membership = (
        Membership.objects.filter(account=account, role=Membership.Role.OWNER)
        .select_related("user")
        .order_by("created_at", "pk")
        .first()
    )
    return membership.user if membership is not None else None


def customer_by_external_id(*, external_id: str) -> Account:
    """The customer with this external id, or UnknownCustomer (404)."""
    account = Account.objects.filter(external_id=external_id).first() if external_id else None
    if account is None:
        raise UnknownCustomer(f"no customer {external_id!r}")
    return account


def customers_by_external_id(*, external_ids: Iterable[str]) -> dict[str, Account]:
    """The customers named, by external id, in one query; unknown ids are absent."""
    wanted = {i for i in external_ids if isinstance(i, str) and i}
    if not wanted:
        return {}
    return {a.external_id: a for a in Account.objects.filter(external_id__in=wanted) if a.external_id}


def customers_with_details() -> QuerySet[Account]:
    """Customers with what their API answer shows, fetched together (owner emails in one more query)."""
    owners = Prefetch(
        "memberships",
        queryset=Membership.objects.filter(role=Membership.Role.OWNER)
        .select_related("user")
        .order_by("created_at", "pk"),
        to_attr="owner_memberships",
    )
    return (
        Account.objects.filter(external_id__isnull=False)
        .select_related("wallet", "subscription__plan", "subscription__pending_plan")
        .prefetch_related(owners)
    )


def customer_list(
    *,
    plan: str | None = None,
    status: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> list[Account]:
    """Customers oldest first (by id, the order they were created), from after `after_id`, filtered."""
    customers = customers_with_details()
    if plan:
        customers = customers.filter(subscription__plan__code=plan)
    if status:
        customers = customers.filter(status=status)
    if created_from is not None:
        customers = customers.filter(created_at__gte=created_from)
    if created_to is not None:
        customers = customers.filter(created_at__lt=created_to)
    if after_id is not None:
        customers = customers.filter(pk__gt=after_id)
    return list(customers.order_by("pk")[:limit])


def customer_api_keys(*, account: Account) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(account=account).order_by("-created_at", "-pk")
