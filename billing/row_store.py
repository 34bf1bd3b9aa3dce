"""Billing's raw SQL, PostgreSQL only: the few statements the gate (authorize, record) sends on every call.

Each takes the place of several ORM statements and has a PostgreSQL test of its own (tests/billing/
test_row_store.py); billing.services.locks and billing.services.wallet call these on PostgreSQL and keep the ORM
path everywhere else, deciding the same. Row locks are taken in the one fixed order: account, wallet, periods by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, models

from billing.models import Account, BillingPeriod, CreditGrant, LedgerEntry, Wallet
from core.statements import Statement, statements_run

M = TypeVar("M", bound=models.Model)


def _attnames(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


def _columns(model: type[models.Model], alias: str, attnames: list[str] | None = None) -> str:
    column = {f.attname: f.column for f in model._meta.concrete_fields}
    return ", ".join(f'{alias}."{column[name]}"' for name in attnames or column)


def _instance(model: type[M], values: tuple[Any, ...] | list[Any], attnames: list[str] | None = None) -> M:
    """A model instance from its concrete columns (or those named: the rest deferred) as psycopg returns them
    (aware datetimes, Decimals)."""
    return model.from_db(DEFAULT_DB_ALIAS, attnames or _attnames(model), list(values))


# what a decision reads of the locked rows (authorize); the lock statement for it leaves the rest out (each column
# costs the client a loader), so the rest is deferred on its instances
_WALLET_DECIDING = ["id", "account_id", "balance", "held"]
_PERIOD_DECIDING = ["id", "account_id", "start", "end", "terms_id", "unit", "included_units", "units_used", "status"]


LockFound = tuple[dict[str, Any], Wallet, list[BillingPeriod]]


def account_wallet_periods_lock_statement(
    *, account_id: int, period_ids: list[int] | None = None, at: datetime | None = None, deciding: bool = False
) -> Statement:
    """Lock the account, its wallet and periods in one statement: the periods named, or the one in force `at`.

    The rows are locked in the one order: the account, the wallet, then each period by id. Its rows are read by
    `account_wallet_periods_locked` (with the same `deciding`: only the columns a decision reads).
    """
    params: list[Any]
    if period_ids is not None:
        period_filter, params = "p.id = ANY(%s)", [account_id, period_ids]
    else:
        period_filter, params = 'p.start <= %s AND p."end" > %s', [account_id, at, at]
    sql = (
        f"SELECT a.status, a.low_balance_threshold, "  # noqa: S608 - names from the models
        f"{_columns(Wallet, 'w', _WALLET_DECIDING if deciding else None)}, "
        f"{_columns(BillingPeriod, 'p', _PERIOD_DECIDING if deciding else None)} "
        f"FROM {Account._meta.db_table} a JOIN {Wallet._meta.db_table} w ON w.account_id = a.id "
        f"JOIN {BillingPeriod._meta.db_table} p ON p.account_id = a.id "
        f"WHERE a.id = %s AND {period_filter} ORDER BY p.id FOR UPDATE OF a, w, p"
    )
    return Statement(sql, params, prepare=True)


def account_wallet_periods_locked(rows: list[tuple[Any, ...]], *, deciding: bool = False) -> LockFound | None:
    """The account's status and low_balance_threshold, the wallet and the periods by id, from the lock statement's
    rows; None when no such period exists (nothing is locked then)."""
    if not rows:
        return None
    wallet_names = _WALLET_DECIDING if deciding else _attnames(Wallet)
    period_names = _PERIOD_DECIDING if deciding else _attnames(BillingPeriod)
    width = 2 + len(wallet_names)
    status, threshold = rows[0][:2]
    wallet = _instance(Wallet, rows[0][2:width], wallet_names)
    periods = [_instance(BillingPeriod, row[width:], period_names) for row in rows]
    return {"status": status, "low_balance_threshold": threshold}, wallet, periods


def account_wallet_periods_lock(
    *, account_id: int, period_ids: list[int] | None = None, at: datetime | None = None
) -> LockFound | None:
    """The lock statement run on its own (see account_wallet_periods_lock_statement)."""
    statement = account_wallet_periods_lock_statement(account_id=account_id, period_ids=period_ids, at=at)
    (rows,) = statements_run(statement)
    return account_wallet_periods_locked(rows)


_BALANCE_READ = (
    f"SELECT w.balance, w.held, a.display_currency, a.low_balance_threshold FROM {Wallet._meta.db_table} w "  # noqa: S608
    f"JOIN {Account._meta.db_table} a ON a.id = w.account_id WHERE w.account_id = %s"
)


def wallet_balance_read(*, account_id: int) -> tuple[Decimal, Decimal, str, Decimal] | None:
    """(balance, held, display currency, low-balance threshold) of the account's wallet, in one statement."""
    (rows,) = statements_run(Statement(_BALANCE_READ, [account_id], prepare=True))
    return rows[0] if rows else None


_PERIOD_IN_FORCE = (
    f"SELECT {_columns(BillingPeriod, 'p')} FROM {BillingPeriod._meta.db_table} p "  # noqa: S608
    'WHERE p.account_id = %s AND p.start <= %s AND p."end" > %s ORDER BY p.id LIMIT 1'
)


def period_in_force(*, account_id: int, at: datetime) -> BillingPeriod | None:
    """The account's period containing `at` (no lock), or None."""
    (rows,) = statements_run(Statement(_PERIOD_IN_FORCE, [account_id, at, at], prepare=True))
    return _instance(BillingPeriod, rows[0]) if rows else None


PERIOD_COUNTERS = ["units_used", "input_tokens", "output_tokens", "messages", "provider_cost_usd", "charge_usd",
                   "credits_used", "overage_units", "overage_usd"]  # fmt: skip
_PERIOD_COUNTERS_UPDATE = (
    f"UPDATE {BillingPeriod._meta.db_table} SET "  # noqa: S608 - names from the model
    + ", ".join(f'"{name}" = %s' for name in PERIOD_COUNTERS)  # each field's column is its name
    + " WHERE id = %s"
)


def period_counters_statement(period: BillingPeriod) -> Statement:
    """Write the period's usage counters as they stand on the instance (the caller holds the period's lock)."""
    values = [*(getattr(period, name) for name in PERIOD_COUNTERS), period.pk]
    return Statement(_PERIOD_COUNTERS_UPDATE, values, prepare=True)


def wallet_hold_with(*, insert: Statement, wallet_id: int, credits: Decimal, at: datetime) -> Statement:
    """The caller's `INSERT ... ON CONFLICT DO NOTHING RETURNING ...` and, when it inserted its row, `credits` held
    on the (locked) wallet, in one statement. Its rows: the inserted row, or none when the insert did nothing (and
    nothing was held)."""
    sql = (
        f"WITH inserted AS ({insert.sql}), "  # noqa: S608 - names from the models
        f"held AS (UPDATE {Wallet._meta.db_table} SET held = held + %s, updated_at = %s "
        "WHERE id = %s AND %s > 0 AND EXISTS (SELECT 1 FROM inserted)) "
        "SELECT * FROM inserted"
    )
    return Statement(sql, [*insert.params, credits, at, wallet_id, credits], prepare=insert.prepare)


@dataclass(frozen=True)
class LedgerPosting:
    """A ledger entry to post, as `ledger_post_statement` sends it: `entry` reads its rows."""

    statement: Statement
    wallet: Wallet
    kind: str
    credits: Decimal
    usd_amount: Decimal
    rate: Decimal | None
    reference: str
    balance_after: Decimal
    actor_id: int | None
    reason: str
    created_at: datetime

    def entry(self, rows: list[tuple[Any, ...]]) -> LedgerEntry | None:
        """The entry posted, from the statement's rows; None when the reference was posted before."""
        if not rows:
            return None
        return LedgerEntry(
            pk=rows[0][0], wallet=self.wallet, kind=self.kind, credits=self.credits, usd_amount=self.usd_amount,
            rate=self.rate, reference=self.reference, balance_after=self.balance_after, actor_id=self.actor_id,
            reason=self.reason, created_at=self.created_at,
        )  # fmt: skip


def ledger_post_statement(
    *, wallet: Wallet, kind: str, credits: Decimal, usd_amount: Decimal, rate: Decimal | None, reference: str,
    actor_id: int | None, reason: str, created_at: datetime, release_held: Decimal, updated_at: datetime,
    consume_grants: bool,
) -> LedgerPosting:  # fmt: skip
    """Insert the ledger entry, move the (locked) wallet by it and, for a debit with `consume_grants`, spend the
    wallet's expiring grants, in one statement, for the caller to send (core.statements). When the reference was
    posted before (the unique (wallet, kind, reference) constraint) it answers no row and only `release_held`
    moves (the held credits are released either way)."""
    table, grants = LedgerEntry._meta.db_table, CreditGrant._meta.db_table
    # a debit spends expiring grants soonest expiry first (wallet._grants_consume): each grant gives what the debit
    # still needs after the grants before it; this statement's snapshot is taken under the wallet's lock
    sql = (
        f"WITH entry AS (INSERT INTO {table} (wallet_id, kind, credits, usd_amount, rate, reference, balance_after, "  # noqa: S608
        "actor_id, reason, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (wallet_id, kind, reference) DO NOTHING RETURNING id), "
        f"moved AS (UPDATE {Wallet._meta.db_table} SET balance = balance + %s, held = held - %s, updated_at = %s "
        "WHERE id = %s AND EXISTS (SELECT 1 FROM entry)), "
        # a replay moves no balance but still releases what the caller's settled reservations held (never both
        # updates on the row: their conditions exclude each other)
        f"released AS (UPDATE {Wallet._meta.db_table} SET held = held - %s, updated_at = %s "
        "WHERE id = %s AND %s <> 0 AND NOT EXISTS (SELECT 1 FROM entry)), "
        f"live AS (SELECT id, COALESCE(SUM(remaining) OVER (ORDER BY expires_at, id ROWS BETWEEN UNBOUNDED PRECEDING "
        f"AND 1 PRECEDING), 0) AS before FROM {grants} WHERE wallet_id = %s AND expired_at IS NULL AND remaining > 0), "
        f"spent AS (UPDATE {grants} g SET remaining = g.remaining - LEAST(g.remaining, %s - live.before) FROM live "
        "WHERE g.id = live.id AND live.before < %s AND EXISTS (SELECT 1 FROM entry)) "
        "SELECT id FROM entry"
    )
    spend = -credits if consume_grants and credits < 0 else Decimal(0)
    balance_after = wallet.balance + credits
    params: list[Any] = [
        wallet.pk, kind, credits, usd_amount, rate, reference, balance_after, actor_id, reason, created_at,
        credits, release_held, updated_at, wallet.pk, release_held, updated_at, wallet.pk, release_held, wallet.pk,
        spend, spend,
    ]  # fmt: skip
    return LedgerPosting(
        statement=Statement(sql, params, prepare=True), wallet=wallet, kind=kind, credits=credits,
        usd_amount=usd_amount, rate=rate, reference=reference, balance_after=balance_after, actor_id=actor_id,
        reason=reason, created_at=created_at,
    )  # fmt: skip


_HELD_RELEASE = f"UPDATE {Wallet._meta.db_table} SET held = held - %s, updated_at = %s WHERE id = %s"  # noqa: S608


def held_release_statement(*, wallet: Wallet, credits: Decimal, at: datetime) -> Statement:
    """Give back `credits` held on the (locked) wallet, for the caller to send (core.statements)."""
    return Statement(_HELD_RELEASE, [credits, at, wallet.pk], prepare=True)
