"""usage.event_store, PostgreSQL only: each statement on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Wallet
from core.statements import statements_run
from tests.factories import AccountFactory
from usage.event_store import (
    request_state_of,
    request_state_statement,
    reservation_insert,
    reservations_settle_and_rollup_statement,
)
from usage.models import DailyUsage, Reservation
from usage.services.recording import usage_record_batch

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("catalog")]


def request_state_read(*, account_id: int, request_id: str):
    (rows,) = statements_run(request_state_statement(account_id=account_id, request_id=request_id))
    return request_state_of(rows)


def reservations_settle_and_rollup(**arguments):
    (rows,) = statements_run(reservations_settle_and_rollup_statement(**arguments))
    return [tuple(row) for row in rows]


def _reservation(account, request_id: str, held: str = "2") -> Reservation:
    now = timezone.now()
    return Reservation(
        account_id=account.pk, request_id=request_id, fingerprint="f", model_id="gpt-4o-mini", operation_type="",
        held_credits=Decimal(held), estimated_cost_usd=Decimal("0.0002"), estimated_units=Decimal(held),
        created_at=now, expires_at=now + timedelta(minutes=5),
    )  # fmt: skip


def _insert(account, request_id: str, held: str = "2") -> bool:
    reservation = _reservation(account, request_id, held)
    return reservation_insert(reservation=reservation, wallet=Wallet.objects.get(account=account), held=Decimal(held))


def test_a_reservation_is_inserted_once_per_request_id_and_holds_its_credits_once():
    account = AccountFactory.create(plan="jive", credits="50")
    first = _reservation(account, "r1")
    wallet = Wallet.objects.get(account=account)
    assert reservation_insert(reservation=first, wallet=wallet, held=Decimal(2)) is True and first.pk
    assert Reservation.objects.get(pk=first.pk).held_credits == Decimal(2)
    assert Wallet.objects.get(account=account).held == Decimal(2)
    assert _insert(account, "r1", held="9") is False
    assert Reservation.objects.filter(account=account).count() == 1
    assert Wallet.objects.get(account=account).held == Decimal(2)  # nothing held for the refused insert
    assert _insert(account, "r2", held="0") is True
    assert Wallet.objects.get(account=account).held == Decimal(2)


def test_the_request_state_names_the_reservation_the_event_and_the_subscription():
    account = AccountFactory.create(plan="jive", credits="50")
    empty = request_state_read(account_id=account.pk, request_id="r1")
    assert (empty.existing, empty.recorded, empty.subscription_status) == (None, False, "active")
    _insert(account, "r1")
    usage_record_batch(
        account=account,
        raw_events=[{"request_id": "e1", "model": "gpt-4o-mini", "input_tokens": 1, "output_tokens": 1}],
    )
    reserved = request_state_read(account_id=account.pk, request_id="r1")
    assert reserved.existing is not None and reserved.existing.held_credits == Decimal(2) and not reserved.recorded
    assert request_state_read(account_id=account.pk, request_id="e1").recorded is True


def test_settling_answers_what_was_held_and_adds_the_rollups():
    account = AccountFactory.create(plan="jive", credits="50")
    _insert(account, "r1", held="3")
    day = datetime(2026, 12, 7, tzinfo=UTC).date()
    bucket = (account.pk, day, "gpt-4o-mini", "", 2, 100, 50, Decimal("0.1"), Decimal("0.2"), Decimal(3))
    held = reservations_settle_and_rollup(
        account_id=account.pk, request_ids=["r1", "r2"], at=timezone.now(), buckets=[bucket]
    )
    assert held == [("r1", Decimal(3), Decimal(3))]
    assert Reservation.objects.get(request_id="r1").status == Reservation.Status.SETTLED
    again = reservations_settle_and_rollup(
        account_id=account.pk, request_ids=["r1"], at=timezone.now(), buckets=[bucket]
    )
    assert again == []
    rollup = DailyUsage.objects.get(account=account, day=day)
    assert (rollup.events, rollup.input_tokens, rollup.credits) == (4, 200, Decimal(6))
