"""The one place that locks an account's billing rows, always in the same order: the account, its wallet, then its
periods by id (Saleor's lock_objects). Every service that moves these rows for the gate takes them here, so two
transactions on one account never wait on each other in a circle.

On PostgreSQL the three locks are one statement (billing.row_store); elsewhere, or with GATE_RAW_SQL off (the
parity tests), three ORM statements that answer the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection

from billing import row_store
from billing.models import Account, BillingPeriod, Wallet
from core.statements import Statement, statements_run


@dataclass
class LockedRows:
    status: str
    low_balance_threshold: Decimal
    wallet: Wallet
    periods: dict[int, BillingPeriod]


def raw_sql_enabled() -> bool:
    """Whether the gate uses its PostgreSQL statements (row_store, usage.event_store) rather than the ORM path."""
    return connection.vendor == "postgresql" and getattr(settings, "GATE_RAW_SQL", True)


def account_rows_lock(
    *, account_id: int, period_ids: list[int] | None = None, at: datetime | None = None
) -> LockedRows | None:
    """Lock the account, its wallet and the periods named (or the one in force `at`); None when there is no such
    period (the account and wallet may then be locked already, which the caller's next lock repeats harmlessly)."""
    if raw_sql_enabled():
        return _locked(row_store.account_wallet_periods_lock(account_id=account_id, period_ids=period_ids, at=at))
    status, threshold = (
        Account.objects.select_for_update().filter(pk=account_id).values_list("status", "low_balance_threshold").get()
    )
    wallet = Wallet.objects.select_for_update().get(account_id=account_id)
    in_question = BillingPeriod.objects.select_for_update().filter(account_id=account_id)
    if period_ids is not None:
        in_question = in_question.filter(pk__in=period_ids)
    else:
        in_question = in_question.filter(start__lte=at, end__gt=at)
    by_id = {p.pk: p for p in in_question.order_by("pk")}
    if not by_id:
        return None
    return LockedRows(status=status, low_balance_threshold=threshold, wallet=wallet, periods=by_id)


def account_rows_lock_then(*, account_id: int, at: datetime, then: Statement) -> tuple[LockedRows | None, list[Any]]:
    """As account_rows_lock for the period in force `at`, then the caller's statement in the same round trip
    (core.statements): it runs once the locks are granted, with its own snapshot. For a decision (authorize): the
    wallet and period carry only the columns it reads, the rest deferred. PostgreSQL only."""
    lock = row_store.account_wallet_periods_lock_statement(account_id=account_id, at=at, deciding=True)
    locked_rows, then_rows = statements_run(lock, then)
    return _locked(row_store.account_wallet_periods_locked(locked_rows, deciding=True)), then_rows


def account_rows_lock_statement(*, account_id: int, period_ids: list[int]) -> Statement:
    """account_rows_lock of the periods named as one statement, for a caller that sends it after statements of
    its own in one round trip (core.statements); its rows are read by account_rows_locked. PostgreSQL only."""
    return row_store.account_wallet_periods_lock_statement(account_id=account_id, period_ids=period_ids)


def account_rows_locked(rows: list[Any]) -> LockedRows | None:
    """What account_rows_lock_statement locked (None when none of the periods exists)."""
    return _locked(row_store.account_wallet_periods_locked(rows))


def _locked(found: row_store.LockFound | None) -> LockedRows | None:
    if found is None:
        return None
    account, wallet, locked = found
    return LockedRows(
        status=account["status"], low_balance_threshold=account["low_balance_threshold"], wallet=wallet,
        periods={p.pk: p for p in locked},
    )  # fmt: skip
