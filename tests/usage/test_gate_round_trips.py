"""On real PostgreSQL with threads: a statement sent in the same round trip as a row lock (core.statements) reads
what was committed while the lock was awaited, as it would if it were sent on its own after the lock."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from billing.models import Account
from billing.services.locks import account_rows_lock, account_rows_lock_then
from billing.services.periods import period_current
from tests.factories import AccountFactory
from usage.event_store import request_state_of, request_state_statement
from usage.models import Reservation

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalog")]


def test_the_request_state_read_with_the_lock_sees_a_reservation_committed_while_it_waited():
    account = AccountFactory.create(plan="jive", credits="50")
    now = timezone.now()
    period_current(account=Account.objects.get(pk=account.pk), as_of=now)
    holding, committed = threading.Event(), threading.Event()
    seen: list[Reservation | None] = []

    def first() -> None:  # holds the account's locks, inserts a reservation, then commits
        try:
            with transaction.atomic():
                assert account_rows_lock(account_id=account.pk, at=now) is not None
                Reservation.objects.create(
                    account_id=account.pk, request_id="r1", model_id="gpt-4o-mini", held_credits=Decimal(2),
                    created_at=now, expires_at=now + timedelta(minutes=5),
                )  # fmt: skip
                holding.set()
                committed.wait(5)  # the second is now waiting for the lock (or about to)
        finally:
            connection.close()

    def second() -> None:  # asks for the lock and, in the same round trip, the request's state
        try:
            holding.wait(5)
            with transaction.atomic():
                rows, state_rows = account_rows_lock_then(
                    account_id=account.pk, at=now,
                    then=request_state_statement(account_id=account.pk, request_id="r1"),
                )  # fmt: skip
                assert rows is not None
                seen.append(request_state_of(state_rows).existing)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    holding.wait(5)
    waiting_for_lock = False
    for _ in range(100):  # until the second waits for the first's lock
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            waiting_for_lock = cursor.fetchone()[0] > 0
        if waiting_for_lock:
            break
        threading.Event().wait(0.05)
    committed.set()
    for thread in threads:
        thread.join(10)
    assert waiting_for_lock, "the second never waited for the lock: the test did not test the wait"
    assert len(seen) == 1 and seen[0] is not None and seen[0].request_id == "r1"
