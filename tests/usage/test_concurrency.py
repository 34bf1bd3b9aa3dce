"""On real PostgreSQL with threads: authorize + record on one account funded for exactly N requests."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Account, LedgerEntry, Subscription, Wallet
from tests.factories import AccountFactory
from usage.models import Reservation, UsageEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalog")]

FUNDED_FOR = 40
THREADS = 16
TRIES_EACH = 6  # 96 attempts for 40 funded requests


def test_sixteen_threads_get_exactly_the_funded_number_of_calls():
    # each call: qwen 1,000 in + 500 out = 1.5 credits, worst case = actual
    account = AccountFactory.create(plan="jive", credits=str(Decimal("1.5") * FUNDED_FOR))
    allowed: list[str] = []
    denied: list[str] = []

    def work(thread: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")  # type: ignore[attr-defined]
        try:
            for n in range(TRIES_EACH):
                request_id = f"t{thread}-{n}"
                decision = client.post(
                    "/api/usage/authorize",
                    {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "max_output_tokens": 500},
                    format="json",
                ).json()
                if not decision["allowed"]:
                    assert decision["reason"] == "insufficient_credits"
                    denied.append(request_id)
                    continue
                allowed.append(request_id)
                recorded = client.post(
                    "/api/usage/events",
                    {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500},
                    format="json",
                )
                assert recorded.status_code == 201
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(work, range(THREADS)))

    assert len(allowed) == FUNDED_FOR
    assert len(denied) == THREADS * TRIES_EACH - FUNDED_FOR
    wallet = Wallet.objects.get(account=account)
    charges = sum(UsageEvent.objects.filter(account=account).values_list("credits", flat=True), Decimal(0))
    assert UsageEvent.objects.filter(account=account).count() == FUNDED_FOR
    assert wallet.balance == Decimal("1.5") * FUNDED_FOR - charges == Decimal(0)
    assert wallet.held == 0
    assert wallet.balance == sum(
        LedgerEntry.objects.filter(wallet=wallet).values_list("credits", flat=True), Decimal(0)
    )
    assert min(LedgerEntry.objects.filter(wallet=wallet).values_list("balance_after", flat=True)) >= 0
    assert not Reservation.objects.filter(account=account, status="active").exists()


def test_authorize_waiting_for_the_account_sees_the_subscription_as_committed_then():
    # Stripe's sync holds the account and marks the overdue subscription paid; an authorize queued behind it
    # must decide on the paid subscription, not on the row as it was before its wait
    account = AccountFactory.create(plan="jive", credits="100")
    Subscription.objects.filter(account=account).update(
        status="past_due", past_due_since=timezone.now() - timedelta(days=30)
    )
    locked, answers = threading.Event(), []

    def stripe_sync() -> None:
        try:
            with transaction.atomic():
                Account.objects.select_for_update().get(pk=account.pk)
                locked.set()
                Subscription.objects.filter(account=account).update(status="active", past_due_since=None)
                time.sleep(0.5)  # the authorize below is waiting for the account meanwhile
        finally:
            connection.close()

    def authorize() -> None:
        locked.wait(5)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")  # type: ignore[attr-defined]
        try:
            answers.append(
                client.post(
                    "/api/usage/authorize",
                    {"request_id": "q", "model": "qwen-3-32b", "input_tokens": 10, "max_output_tokens": 10},
                    format="json",
                ).json()
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=stripe_sync), threading.Thread(target=authorize)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers and answers[0]["allowed"] is True, answers
