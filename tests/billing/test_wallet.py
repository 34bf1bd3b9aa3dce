from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.errors import AccountSuspended, InsufficientCredits, InvalidAmount
from billing.models import Account, LedgerEntry, Wallet
from billing.services.accounts import account_set_status
from billing.services.wallet import grants_expire, wallet_adjust, wallet_debit, wallet_grant, wallet_post
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.usefixtures("catalog")


def _balance(account: Account) -> Decimal:
    return Wallet.objects.get(account=account).balance


def _ledger_sum(account: Account) -> Decimal:
    return sum(LedgerEntry.objects.filter(wallet__account=account).values_list("credits", flat=True), Decimal(0))


def test_opening_credits_are_a_ledger_entry():
    account = AccountFactory.create(credits="1000")
    assert _balance(account) == Decimal(1000)
    assert _ledger_sum(account) == Decimal(1000)


def test_the_same_reference_posts_once():
    account = AccountFactory.create(credits="1000")
    first = wallet_debit(account=account, credits="10", reference="batch:1")
    second = wallet_debit(account=account, credits="10", reference="batch:1")
    assert first.created and not second.created
    assert second.entry.pk == first.entry.pk
    assert _balance(account) == Decimal(990)
    assert LedgerEntry.objects.filter(wallet__account=account, kind="usage").count() == 1


def test_references_are_unique_per_kind_not_globally():
    account = AccountFactory.create(credits="1000")
    wallet_post(account=account, kind="usage", credits="-5", reference="x")
    wallet_post(account=account, kind="refund", credits="5", reference="x")
    assert _balance(account) == Decimal(1000)
    assert LedgerEntry.objects.filter(wallet__account=account).count() == 3


def test_overdraft_guard_refuses_and_writes_nothing():
    account = AccountFactory.create(credits="100")
    with pytest.raises(InsufficientCredits):
        wallet_debit(account=account, credits="100.000000000001", reference="too-much")
    assert _balance(account) == Decimal(100)
    assert not LedgerEntry.objects.filter(reference="too-much").exists()


def test_balance_after_is_the_running_balance():
    account = AccountFactory.create(credits="100")
    wallet_debit(account=account, credits="30", reference="a")
    posting = wallet_debit(account=account, credits="20", reference="b")
    assert posting.balance == Decimal(50)


@pytest.mark.parametrize("credits", ["0", "-5", "abc", "NaN"])
def test_grant_of_non_positive_or_non_numeric_credits_is_refused(credits):
    account = AccountFactory.create(credits="10")
    with pytest.raises(InvalidAmount):
        wallet_grant(account=account, credits=credits, reason="gift")
    assert _balance(account) == Decimal(10)


def test_float_credits_are_refused():
    account = AccountFactory.create()
    with pytest.raises(InvalidAmount, match="float"):
        wallet_grant(account=account, credits=1.5, reason="gift")


def test_suspended_account_cannot_spend_but_keeps_its_balance():
    account = AccountFactory.create(credits="100")
    account_set_status(account=account, status=Account.Status.SUSPENDED)
    with pytest.raises(AccountSuspended):
        wallet_debit(account=account, credits="1", reference="r")
    assert _balance(account) == Decimal(100)


def test_manual_adjustment_needs_a_reason_and_is_audited():
    account = AccountFactory.create(credits="100")
    staff = UserFactory.create(is_staff=True)
    with pytest.raises(InvalidAmount):
        wallet_adjust(account=account, credits="-10", reason=" ", actor=staff)
    posting = wallet_adjust(
        account=account, credits="-10", reason="refund of a duplicate top-up", actor=staff, ip="10.0.0.1"
    )
    assert posting.balance == Decimal(90)
    audit = account.audit_entries.get(action="manual_adjustment")
    assert audit.actor == staff and audit.ip == "10.0.0.1"
    assert audit.before == {"balance": "100.000000000000"}
    assert audit.after == {"balance": "90.000000000000", "reason": "refund of a duplicate top-up"}


def test_expired_grant_leaves_through_an_expiry_entry_for_its_unspent_part():
    account = AccountFactory.create(credits="100")  # does not expire
    wallet_grant(account=account, credits="50", reason="promo", expires_at=datetime(2026, 12, 1, tzinfo=UTC))
    wallet_debit(account=account, credits="30", reference="spend")  # spent from the expiring grant first
    assert grants_expire(as_of=datetime(2026, 12, 1, tzinfo=UTC)) == 1
    assert _balance(account) == Decimal(100)  # 150 - 30 spent - 20 unspent promo
    expiry = LedgerEntry.objects.get(wallet__account=account, kind="expiry")
    assert expiry.credits == Decimal(-20)
    # running it again changes nothing
    assert grants_expire(as_of=datetime(2026, 12, 2, tzinfo=UTC)) == 0
    assert _balance(account) == _ledger_sum(account) == Decimal(100)


def test_grant_not_yet_expired_stays():
    account = AccountFactory.create()
    wallet_grant(account=account, credits="50", reason="promo", expires_at=datetime(2026, 12, 1, tzinfo=UTC))
    assert grants_expire(as_of=datetime(2026, 11, 30, tzinfo=UTC)) == 0
    assert _balance(account) == Decimal(50)
