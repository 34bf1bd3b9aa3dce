"""usage.event_store, PostgreSQL only: each statement on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import timezone as tz
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Wallet
from core.statements import statements_run
from tests.factories import AccountFactory
from usage.event_store import (
    COPY_FROM_ROWS,
    request_state_of,
    request_state_statement,
    reservation_insert,
    reservations_settle_and_rollup_statement,
)
from usage.models import DailyUsage, Reservation, UsageEvent
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


def _event(request_id: str, n: int, *, varied: bool, received_at: datetime) -> dict:
    """An event; `varied`: every optional field differs from one event to the next (n), else each is the same."""
    k = n if varied else 0
    occurred_at = (received_at - timedelta(minutes=k, microseconds=k)).astimezone(tz(timedelta(hours=k % 3)))
    event = {
        "request_id": request_id, "model": ["qwen-3-32b", "gpt-4o-mini", "claude-3-5-haiku"][k % 3],
        "input_tokens": 1000 + k, "output_tokens": 100 + k, "cached_input_tokens": k % 4 * 10,
        "reasoning_tokens": k % 3, "images": k % 2, "multiplier": ["1", "1.5", "2.000001"][k % 3],
        "operation_type": f"op-{k % 4}", "user": f"us\u00e9r-{k}", "conversation_id": f"c-{k % 5}" if k % 5 else "",
        "occurred_at": occurred_at.isoformat(),
        "metadata": {"trace": k, "quote": "a\"b\\c", "nested": [k, "\u00e9"]} if k % 2 else {},
        "features": ["rag_search"] if k % 2 else [],
        "cache_write_input_tokens": k % 2, "image_output_tokens": k % 3, "characters": 0,
        "provider_request_id": f"prov-{k}" if k % 2 else "", "service_tier": "default" if k % 3 else "auto",
    }  # fmt: skip
    return event


_COMPARED = [
    f.attname
    for f in UsageEvent._meta.concrete_fields
    if f.attname not in ("id", "account_id", "batch_id", "period_id")
]


@pytest.mark.parametrize("varied", [True, False], ids=["every-column-differs", "every-column-the-same"])
def test_a_copied_batch_stores_what_single_row_inserts_store(varied):
    """A batch of COPY_FROM_ROWS events or more is copied (a column holding one value in every row is sent once);
    a smaller one is one INSERT of its values. Both store the same values, column by column."""
    received_at = timezone.now()
    copied, inserted = (AccountFactory.create(plan="jive", credits="1000000") for _ in range(2))
    events = [_event(f"e-{n:03d}", n, varied=varied, received_at=received_at) for n in range(COPY_FROM_ROWS + 7)]
    batch = usage_record_batch(
        account=copied, raw_events=events, received_at=received_at, ip="10.0.0.1", user_agent="ua"
    )
    assert batch.count("recorded") == len(events), batch.results
    for start in range(0, len(events), 5):
        usage_record_batch(
            account=inserted, raw_events=events[start : start + 5], received_at=received_at, ip="10.0.0.1",
            user_agent="ua",
        )  # fmt: skip

    def stored(account):
        return list(UsageEvent.objects.filter(account=account).order_by("request_id").values(*_COMPARED))

    assert len(stored(copied)) == len(events)
    assert stored(copied) == stored(inserted)
    distinct = {name: len({str(row[name]) for row in stored(copied)}) for name in _COMPARED}
    if varied:
        assert all(distinct[name] > 1 for name in ("model_id", "multiplier", "metadata", "features", "breakdown"))
    else:
        assert {name for name, count in distinct.items() if count > 1} == {"request_id"}


def test_settling_adds_each_bucket_to_its_own_rollup_and_takes_no_bucket_too():
    """The buckets travel as one array per column: each lands in its own (day, model, operation) row."""
    account = AccountFactory.create(plan="jive", credits="50")
    days = [datetime(2026, 12, 6, tzinfo=UTC).date(), datetime(2026, 12, 7, tzinfo=UTC).date()]
    buckets = [
        (account.pk, day, model, operation, n + 1, 10 * (n + 1), n, Decimal(f"0.{n + 1}"), Decimal(n), Decimal("1.5"))
        for n, (day, model, operation) in enumerate(
            (day, model, operation) for day in days for model in ("gpt-4o-mini", "qwen-3-32b") for operation in ("", "chat")
        )
    ]  # fmt: skip
    for _ in range(2):
        assert reservations_settle_and_rollup(account_id=account.pk, request_ids=[], at=timezone.now(),
                                              buckets=buckets) == []  # fmt: skip
    _insert(account, "r1", held="3")
    held = reservations_settle_and_rollup(account_id=account.pk, request_ids=["r1"], at=timezone.now(), buckets=[])
    assert held == [("r1", Decimal(3), Decimal(3))]

    stored = {
        (r.day, r.model_id, r.operation_type): (r.events, r.input_tokens, r.output_tokens, r.cost_usd, r.charge_usd,
                                                r.credits)
        for r in DailyUsage.objects.filter(account=account)
    }  # fmt: skip
    assert stored == {(day, model, operation): (2 * events, 2 * tokens_in, 2 * tokens_out, 2 * cost, 2 * charge,
                                                2 * credits)
                      for _, day, model, operation, events, tokens_in, tokens_out, cost, charge, credits in buckets}  # fmt: skip
