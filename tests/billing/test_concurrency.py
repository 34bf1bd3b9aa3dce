"""On real PostgreSQL with threads: concurrent debits of one wallet never lose or double an update."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection

from billing.errors import InsufficientCredits
from billing.models import LedgerEntry, Wallet
from billing.services.wallet import wallet_debit
from tests.factories import AccountFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalog")]

THREADS = 20
DEBITS_EACH = 50


def test_twenty_threads_debiting_one_wallet_end_exact_and_never_negative():
    # funded for 900 debits of 1.5 credits; 1,000 are attempted
    account = AccountFactory.create(credits="1350")
    refused = []

    def spend(thread: int) -> None:
        try:
            for n in range(DEBITS_EACH):
                try:
                    wallet_debit(account=account, credits="1.5", reference=f"t{thread}-{n}")
                except InsufficientCredits:
                    refused.append((thread, n))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(spend, range(THREADS)))

    wallet = Wallet.objects.get(account=account)
    debits = LedgerEntry.objects.filter(wallet=wallet, kind="usage")
    assert debits.count() == 900
    assert len(refused) == THREADS * DEBITS_EACH - 900
    assert wallet.balance == Decimal(0)
    ledger = sum(LedgerEntry.objects.filter(wallet=wallet).values_list("credits", flat=True), Decimal(0))
    assert wallet.balance == ledger
    assert min(LedgerEntry.objects.filter(wallet=wallet).values_list("balance_after", flat=True)) >= 0
