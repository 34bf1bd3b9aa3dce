"""Credit wallets. Every movement is a ledger entry; the cached balance moves in the same transaction.

A ledger reference is unique per kind, so posting the same top-up, usage batch or grant twice posts once: the
second call returns the first entry (`created=False`) and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing import row_store
from billing.errors import AccountSuspended, InsufficientCredits, InvalidAmount
from billing.models import Account, CreditGrant, LedgerEntry, Wallet
from billing.services.audit import Actor, actor_or_none, audit_record
from billing.services.locks import raw_sql_enabled
from core.statements import Statement, statements_run
from pricing.money import MoneyError, to_decimal

Kind = LedgerEntry.Kind


@dataclass(frozen=True)
class Posting:
    entry: LedgerEntry
    created: bool

    @property
    def balance(self) -> Decimal:
        return self.entry.balance_after


def _credits(value: object, *, positive: bool = False) -> Decimal:
    try:
        amount = to_decimal(value)
    except MoneyError as exc:
        raise InvalidAmount(f"credits: {exc}") from None
    if positive and amount <= 0:
        raise InvalidAmount(f"credits must be > 0, got {amount}")
    return amount


def wallet_lock(*, account: Account) -> Wallet:
    """The account's wallet, locked for this transaction (after the account, if that is locked too)."""
    return Wallet.objects.select_for_update().get(account_id=account.pk)


def wallet_post(
    *,
    account: Account,
    kind: str,
    credits: object,
    reference: str,
    usd_amount: object = "0",
    rate: Decimal | None = None,
    actor: Actor = None,
    reason: str = "",
    overdraft_guard: bool = False,
    at: datetime | None = None,
    wallet: Wallet | None = None,
    release_held: Decimal | None = None,
) -> Posting:
    """Post one ledger entry and move the balance. With `overdraft_guard`, a debit that would take the available
    credits (balance - held) below zero raises InsufficientCredits and posts nothing.

    `wallet` is the account's wallet when the caller has already locked it in this transaction (its balance as
    read under that lock); `release_held` is what the settled reservations behind this debit held, released in
    the same update as the balance (and on its own when the posting turns out to be a replay).
    """
    amount = _credits(credits)
    if wallet is not None and not overdraft_guard and raw_sql_enabled():
        return _post_in_one_statement(
            wallet=wallet, kind=kind, credits=amount, reference=reference, usd_amount=to_decimal(usd_amount),
            rate=rate, actor=actor, reason=reason, at=at, release_held=release_held or Decimal(0),
        )  # fmt: skip
    # only a guarded debit can be undone after its insert, so only it pays for a savepoint of its own
    with transaction.atomic(savepoint=overdraft_guard):
        if wallet is None:
            wallet = wallet_lock(account=account)
        try:
            with transaction.atomic():
                entry = LedgerEntry.objects.create(
                    wallet=wallet,
                    kind=kind,
                    credits=amount,
                    usd_amount=to_decimal(usd_amount),
                    rate=rate,
                    reference=reference,
                    balance_after=wallet.balance + amount,
                    actor=actor_or_none(actor),
                    reason=reason,
                    created_at=at or timezone.now(),
                )
        except IntegrityError:
            if release_held:
                Wallet.objects.filter(pk=wallet.pk).update(held=F("held") - release_held)
            return Posting(LedgerEntry.objects.get(wallet=wallet, kind=kind, reference=reference), created=False)
        if overdraft_guard and amount < 0 and wallet.balance - wallet.held + amount < 0:
            raise InsufficientCredits(
                f"needs {-amount} credits, {wallet.balance - wallet.held} available"
            )  # raising inside the savepoint undoes the entry just inserted
        moves: dict[str, Any] = {"balance": F("balance") + amount, "updated_at": timezone.now()}
        if release_held:
            moves["held"] = F("held") - release_held
        Wallet.objects.filter(pk=wallet.pk).update(**moves)
        if amount < 0 and kind != Kind.EXPIRY:
            _grants_consume(wallet=wallet, credits=-amount)
        return Posting(entry, created=True)


def _post_in_one_statement(
    *, wallet: Wallet, kind: str, credits: Decimal, reference: str, usd_amount: Decimal, rate: Decimal | None,
    actor: Actor, reason: str, at: datetime | None, release_held: Decimal,
) -> Posting:  # fmt: skip
    """wallet_post on PostgreSQL for a wallet the caller locked: the entry, the balance, the held credits released
    and the grants a debit spends in one statement, with no savepoint."""
    statement, posted = wallet_post_statement(
        wallet=wallet, kind=kind, credits=credits, reference=reference, usd_amount=usd_amount, rate=rate,
        actor=actor, reason=reason, at=at, release_held=release_held,
    )  # fmt: skip
    (rows,) = statements_run(statement)
    return posted(rows)


def wallet_post_statement(
    *, wallet: Wallet, kind: str, credits: Decimal, reference: str, usd_amount: Decimal = Decimal(0),
    rate: Decimal | None = None, actor: Actor = None, reason: str = "", at: datetime | None = None,
    release_held: Decimal = Decimal(0),
) -> tuple[Statement, Callable[[list[Any]], Posting]]:  # fmt: skip
    """wallet_post as one statement, for a caller that sends it with statements of its own in one round trip
    (core.statements), on PostgreSQL, holding the wallet's lock: the statement, and what makes the Posting of its
    rows. A replay of the reference moves no balance, releases `release_held`, and is answered by the first entry
    (read when its Posting is made)."""
    now = timezone.now()
    actor_user = actor_or_none(actor)
    posting = row_store.ledger_post_statement(
        wallet=wallet, kind=kind, credits=credits, usd_amount=usd_amount, rate=rate, reference=reference,
        actor_id=actor_user.pk if actor_user is not None else None, reason=reason, created_at=at or now,
        release_held=release_held, updated_at=now, consume_grants=kind != Kind.EXPIRY,
    )  # fmt: skip

    def posted(rows: list[Any]) -> Posting:
        entry = posting.entry(rows)
        if entry is not None:
            return Posting(entry, created=True)
        return Posting(LedgerEntry.objects.get(wallet=wallet, kind=kind, reference=reference), created=False)

    return posting.statement, posted


def wallet_held_release_statement(*, wallet: Wallet, credits: Decimal) -> Statement:
    """wallet_held_release as one statement, for a caller that sends it with its own (PostgreSQL)."""
    if credits < 0:
        raise InvalidAmount(f"a release frees credits >= 0, got {credits}")
    return row_store.held_release_statement(wallet=wallet, credits=credits, at=timezone.now())


def _grants_consume(*, wallet: Wallet, credits: Decimal) -> None:
    """Spend from expiring grants, soonest expiry first, so the customer loses as little as possible."""
    left = credits
    for grant in CreditGrant.objects.select_for_update().filter(
        wallet=wallet, expired_at__isnull=True, remaining__gt=0
    ):
        if left <= 0:
            break
        used = min(grant.remaining, left)
        CreditGrant.objects.filter(pk=grant.pk).update(remaining=F("remaining") - used)
        left -= used


@transaction.atomic
def wallet_debit(
    *, account: Account, credits: object, reference: str, usd_amount: object = "0", rate: Decimal | None = None,
    reason: str = "", actor: Actor = None,
) -> Posting:  # fmt: skip
    """Spend credits: refused for a suspended account and when the available credits do not cover it."""
    amount = _credits(credits, positive=True)
    # the account row is locked first (lock order: account, wallet) so a suspension cannot race the debit
    if Account.objects.select_for_update().get(pk=account.pk).status == Account.Status.SUSPENDED:
        raise AccountSuspended(f"account {account.pk} is suspended")
    return wallet_post(
        account=account, kind=Kind.USAGE, credits=-amount, reference=reference, usd_amount=-to_decimal(usd_amount),
        rate=rate, reason=reason, actor=actor, overdraft_guard=True,
    )  # fmt: skip


@transaction.atomic
def wallet_grant(
    *,
    account: Account,
    credits: object,
    reason: str,
    actor: Actor = None,
    ip: str | None = None,
    kind: str = Kind.GRANT,
    reference: str | None = None,
    usd_amount: object = "0",
    rate: Decimal | None = None,
    expires_at: datetime | None = None,
) -> Posting:
    """Add credits (a grant, a top-up or a refund); with `expires_at` the unspent part leaves at that time."""
    amount = _credits(credits, positive=True)
    if not reason.strip():
        raise InvalidAmount("a grant needs a reason")
    posting = wallet_post(
        account=account, kind=kind, credits=amount, reference=reference or f"{kind}:{uuid.uuid4().hex}",
        usd_amount=usd_amount, rate=rate, actor=actor, reason=reason,
    )  # fmt: skip
    if posting.created and expires_at is not None:
        CreditGrant.objects.create(
            wallet_id=posting.entry.wallet_id,
            entry=posting.entry,
            credits=amount,
            remaining=amount,
            expires_at=expires_at,
        )
    if posting.created and actor_or_none(actor) is not None:
        audit_record(action="credits_granted", account=account, object_type="LedgerEntry", object_key=str(posting.entry.pk),
                     actor=actor, ip=ip, after={"credits": amount, "reason": reason, "kind": kind})  # fmt: skip
    return posting


@transaction.atomic
def wallet_adjust(*, account: Account, credits: object, reason: str, actor: Actor, ip: str | None = None) -> Posting:
    """A manual correction by staff, either sign, with a reason; audited."""
    amount = _credits(credits)
    if amount == 0:
        raise InvalidAmount("an adjustment of 0 credits changes nothing")
    if not reason.strip():
        raise InvalidAmount("an adjustment needs a reason")
    before = wallet_lock(account=account).balance
    posting = wallet_post(
        account=account, kind=Kind.ADJUSTMENT, credits=amount, reference=f"adjustment:{uuid.uuid4().hex}",
        actor=actor, reason=reason,
    )  # fmt: skip
    audit_record(action="manual_adjustment", account=account, object_type="Wallet", object_key=str(account.pk),
                 actor=actor, ip=ip, before={"balance": before}, after={"balance": posting.balance, "reason": reason})  # fmt: skip
    return posting


def wallet_hold(*, wallet: Wallet, credits: Decimal) -> None:
    """Hold credits for a reservation. The caller locked the wallet (billing.services.locks) and checked, under
    that lock, that the available credits cover the hold."""
    if credits < 0:
        raise InvalidAmount(f"a hold takes credits >= 0, got {credits}")
    if credits:
        Wallet.objects.filter(pk=wallet.pk).update(held=F("held") + credits, updated_at=timezone.now())


def wallet_hold_with(*, wallet: Wallet, credits: Decimal, insert: Statement) -> Statement:
    """wallet_hold in the same statement as the caller's `INSERT ... ON CONFLICT DO NOTHING RETURNING ...` (the
    reservation), held only when the row was inserted; the statement's rows are the inserted row, or none (nothing
    held). The caller locked the wallet and checked the hold as for wallet_hold, and runs the statement
    (core.statements). PostgreSQL only."""
    if credits < 0:
        raise InvalidAmount(f"a hold takes credits >= 0, got {credits}")
    return row_store.wallet_hold_with(insert=insert, wallet_id=wallet.pk, credits=credits, at=timezone.now())


def wallet_held_release(*, wallet: Wallet, credits: Decimal) -> None:
    """Give back credits held by reservations that were settled without a debit or expired. The caller holds the
    wallet's lock (billing.services.locks) and knows the reservations held them."""
    if credits < 0:
        raise InvalidAmount(f"a release frees credits >= 0, got {credits}")
    if credits:
        Wallet.objects.filter(pk=wallet.pk).update(held=F("held") - credits, updated_at=timezone.now())


@transaction.atomic
def wallet_release(*, account: Account, credits: Decimal) -> Wallet:
    """Give back credits a reservation held (the call failed or was cancelled). The caller holds the wallet's lock
    and releases a hold once; the held amount never goes below zero."""
    if credits < 0:
        raise InvalidAmount(f"a release frees credits >= 0, got {credits}")
    wallet = wallet_lock(account=account)
    if credits > wallet.held:
        raise InvalidAmount(f"cannot release {credits} credits: the wallet holds {wallet.held}")
    Wallet.objects.filter(pk=wallet.pk).update(held=F("held") - credits, updated_at=timezone.now())
    return Wallet.objects.get(pk=wallet.pk)


@transaction.atomic
def grants_expire(*, as_of: datetime) -> int:
    """Post an expiry entry for the unspent part of every grant that expired by `as_of`. Idempotent."""
    expired = 0
    for grant_id, account_id in CreditGrant.objects.filter(expired_at__isnull=True, expires_at__lte=as_of).values_list(
        "pk", "wallet__account_id"
    ):
        with transaction.atomic():
            account = Account.objects.select_for_update().get(pk=account_id)
            wallet = wallet_lock(account=account)
            grant = CreditGrant.objects.select_for_update().get(pk=grant_id)
            if grant.expired_at is not None:
                continue
            unspent = min(grant.remaining, max(wallet.balance, Decimal(0)))
            if unspent > 0:
                wallet_post(
                    account=account, kind=Kind.EXPIRY, credits=-unspent, reference=f"grant:{grant.pk}",
                    reason=f"grant #{grant.entry_id} expired", at=as_of,
                )  # fmt: skip
            CreditGrant.objects.filter(pk=grant.pk).update(remaining=0, expired_at=as_of)
            expired += 1
    return expired
