"""billing.row_store, PostgreSQL only: each statement on its own (the gate's lock, the one-statement posting)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from billing import row_store
from billing.models import CreditGrant, LedgerEntry, Wallet
from billing.services.periods import period_current
from billing.services.wallet import wallet_grant, wallet_lock, wallet_post
from core.statements import statements_run
from tests.factories import AccountFactory

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("catalog")]


def test_the_lock_answers_the_account_its_wallet_and_the_period_in_force():
    account = AccountFactory.create(plan="jive", credits="50")
    period = period_current(account=account, as_of=timezone.now())
    with transaction.atomic():
        found = row_store.account_wallet_periods_lock(account_id=account.pk, at=timezone.now())
    assert found is not None
    state, wallet, periods = found
    assert state == {"status": "active", "low_balance_threshold": account.low_balance_threshold}
    assert (wallet.pk, wallet.balance, wallet.held) == (Wallet.objects.get(account=account).pk, Decimal(50), 0)
    assert [p.pk for p in periods] == [period.pk] and periods[0].terms_id == period.terms_id
    by_id = row_store.account_wallet_periods_lock(account_id=account.pk, period_ids=[period.pk])
    assert by_id is not None and by_id[2][0].units_used == period.units_used


def test_the_lock_answers_none_when_no_period_is_in_force():
    account = AccountFactory.create(plan="jive", credits="50")
    later = period_current(account=account, as_of=timezone.now()).end + timedelta(days=400)
    assert row_store.account_wallet_periods_lock(account_id=account.pk, at=later) is None


def _post(wallet: Wallet, credits: str, reference: str, *, release: str = "0") -> LedgerEntry | None:
    now = timezone.now()
    posting = row_store.ledger_post_statement(
        wallet=wallet, kind="usage", credits=Decimal(credits), usd_amount=Decimal(0), rate=None, reference=reference,
        actor_id=None, reason="test", created_at=now, release_held=Decimal(release), updated_at=now,
        consume_grants=True,
    )  # fmt: skip
    (rows,) = statements_run(posting.statement)
    return posting.entry(rows)


def test_a_posting_moves_balance_and_held_once_and_a_replay_moves_nothing():
    account = AccountFactory.create(plan="jive", credits="50")
    Wallet.objects.filter(account=account).update(held=Decimal(5))
    wallet = Wallet.objects.get(account=account)
    entry = _post(wallet, "-3", "usage:one", release="5")
    assert entry is not None and entry.balance_after == Decimal(47)
    assert LedgerEntry.objects.get(pk=entry.pk).credits == Decimal(-3)
    again = Wallet.objects.get(account=account)
    assert (again.balance, again.held) == (Decimal(47), Decimal(0))
    assert _post(again, "-3", "usage:one") is None
    assert Wallet.objects.get(account=account).balance == Decimal(47)


def test_a_debit_spends_the_grants_that_expire_first():
    account = AccountFactory.create(plan="jive", credits="1")
    soon, later = timezone.now() + timedelta(days=1), timezone.now() + timedelta(days=9)
    wallet_grant(account=account, credits="10", reason="later", expires_at=later)
    wallet_grant(account=account, credits="4", reason="soon", expires_at=soon)
    _post(Wallet.objects.get(account=account), "-6", "usage:grants")
    remaining = dict(CreditGrant.objects.values_list("expires_at", "remaining"))
    assert (remaining[soon], remaining[later]) == (Decimal(0), Decimal(8))
    _post(Wallet.objects.get(account=account), "-20", "usage:more")
    assert set(CreditGrant.objects.values_list("remaining", flat=True)) == {Decimal(0)}


def test_a_replay_releases_what_its_reservations_held_and_moves_no_balance():
    account = AccountFactory.create(plan="jive", credits="50")
    Wallet.objects.filter(account=account).update(held=Decimal(5))
    assert _post(Wallet.objects.get(account=account), "-3", "usage:one", release="5") is not None
    Wallet.objects.filter(account=account).update(held=Decimal(4))  # another call's hold, settled with a replay
    assert _post(Wallet.objects.get(account=account), "-3", "usage:one", release="4") is None
    again = Wallet.objects.get(account=account)
    assert (again.balance, again.held) == (Decimal(47), Decimal(0))
    assert LedgerEntry.objects.filter(wallet__account=account, reference="usage:one").count() == 1


def test_the_service_releases_a_replays_held_credits_once():
    account = AccountFactory.create(plan="jive", credits="50")
    Wallet.objects.filter(account=account).update(held=Decimal(6))
    with transaction.atomic():
        wallet = wallet_lock(account=account)
        first = wallet_post(account=account, kind="usage", credits="-2", reference="usage:two", wallet=wallet,
                            release_held=Decimal(2))  # fmt: skip
    with transaction.atomic():
        wallet = wallet_lock(account=account)
        replay = wallet_post(account=account, kind="usage", credits="-2", reference="usage:two", wallet=wallet,
                             release_held=Decimal(3))  # fmt: skip
    assert first.created and not replay.created and replay.entry.pk == first.entry.pk
    again = Wallet.objects.get(account=account)
    assert (again.balance, again.held) == (Decimal(48), Decimal(1))
