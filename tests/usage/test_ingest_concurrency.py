"""On real PostgreSQL with threads: overlapping batches sent in different orders at the same time never deadlock,
every event is recorded exactly once and the books stay exact."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from billing.models import BillingPeriod, LedgerEntry, Wallet
from reconciliation.integrity import integrity_check
from tests.factories import AccountFactory
from usage.event_store import COPY_FROM_ROWS
from usage.models import DailyUsage, RejectedEvent, UsageEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalog")]

THREADS = 8
ROUNDS = 4
POOL = 400  # request ids of one round: every batch of the round takes most of them, in its own order


def _event(request_id: str) -> dict[str, object]:
    return {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500}


def test_overlapping_batches_in_shuffled_orders_record_each_event_once_without_deadlock():
    accounts = [AccountFactory.create(plan="jive", credits="100000") for _ in range(2)]
    start = threading.Barrier(THREADS)
    answers: list[tuple[int, list[str], int, dict]] = []  # (account index, ids sent, status, body)

    def work(thread: int) -> None:
        shuffle = random.Random(thread)
        clients = []
        for account in accounts:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")  # type: ignore[attr-defined]
            clients.append(client)
        try:
            for round_ in range(ROUNDS):
                which = (thread + round_) % 2
                # both sizes: a single INSERT below the COPY threshold, COPY at or above it
                size = 300 if (thread + round_) % 3 else COPY_FROM_ROWS - 1
                ids = shuffle.sample([f"r{round_}-{n:03d}" for n in range(POOL)], size)
                start.wait(timeout=60)
                response = clients[which].post("/api/usage/events", {"events": [_event(i) for i in ids]}, format="json")
                answers.append((which, ids, response.status_code, response.json()))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(work, range(THREADS)))

    assert [status for _, _, status, _ in answers] == [200] * THREADS * ROUNDS
    sent: dict[int, set[str]] = defaultdict(set)
    recorded: dict[int, list[str]] = defaultdict(list)
    for which, ids, _, body in answers:
        sent[which].update(ids)
        assert body["rejected"] == 0
        recorded[which].extend(r["request_id"] for r in body["results"] if r["status"] == "recorded")
    for which, account in enumerate(accounts):
        # each request id answered "recorded" exactly once, whichever batch won, and stored exactly once
        assert sorted(recorded[which]) == sorted(sent[which])
        stored = list(UsageEvent.objects.filter(account=account).values_list("request_id", flat=True))
        assert sorted(stored) == sorted(sent[which])
        credits = sum(UsageEvent.objects.filter(account=account).values_list("credits", flat=True), Decimal(0))
        wallet = Wallet.objects.get(account=account)
        assert wallet.balance == Decimal(100000) - credits
        assert wallet.balance == sum(
            LedgerEntry.objects.filter(wallet=wallet).values_list("credits", flat=True), Decimal(0)
        )
        assert BillingPeriod.objects.get(account=account).messages == len(sent[which])
        assert sum(DailyUsage.objects.filter(account=account).values_list("events", flat=True)) == len(sent[which])
    assert not RejectedEvent.objects.exists()
    assert integrity_check() == []
