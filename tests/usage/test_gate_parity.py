"""The gate's two paths decide the same: PostgreSQL's statements (billing.row_store, usage.event_store) and the
ORM path that SQLite runs. On PostgreSQL each scenario runs through both paths (GATE_RAW_SQL on, then off) on two
accounts set up alike, and every answer, balance and counter must match; on SQLite the ORM path runs twice."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from billing.models import BillingPeriod, Wallet
from tests.factories import AccountFactory
from usage.models import DailyUsage, Reservation
from usage.services.authorization import AuthorizeRequest, reservation_create
from usage.services.recording import usage_record_batch
from usage.services.reservations import ReservationError

pytestmark = [pytest.mark.usefixtures("catalog"), pytest.mark.django_db(transaction=True)]

MODEL = "gpt-4o-mini"


def _authorize(account, request_id: str, *, input_tokens: int = 1000, max_output: int = 500, operation: str = "",
               model: str = MODEL) -> tuple[Any, ...]:  # fmt: skip
    try:
        decision = reservation_create(
            account=account,
            request=AuthorizeRequest(request_id=request_id, model=model, input_tokens=input_tokens,
                                     max_output_tokens=max_output, operation_type=operation),
        )  # fmt: skip
    except ReservationError as exc:
        return ("refused", exc.code)
    except Exception as exc:  # the kind of error is what both paths must agree on
        return ("error", type(exc).__name__)
    held = decision.reservation.held_credits if decision.reservation else None
    return (decision.allowed, decision.reason, held, decision.remaining, [a.model_id for a in decision.alternatives])


def _record(account, *events: tuple[str, int, int]) -> list[tuple[Any, ...]]:
    raw = [{"request_id": rid, "model": MODEL, "input_tokens": i, "output_tokens": o} for rid, i, o in events]
    batch = usage_record_batch(account=account, raw_events=raw)
    return [(r.request_id, r.status, r.credits, r.over_reservation, (r.error or {}).get("code")) for r in batch.results]


def _books(account) -> tuple[Any, ...]:
    wallet = Wallet.objects.get(account=account)
    periods = [
        (p.units_used, p.messages, p.input_tokens, p.output_tokens, p.charge_usd, p.overage_usd)
        for p in BillingPeriod.objects.filter(account=account).order_by("start")
    ]
    statuses = sorted(Reservation.objects.filter(account=account).values_list("request_id", "status"))
    rollups = sorted(DailyUsage.objects.filter(account=account).values_list("model_id", "events", "credits"))
    return wallet.balance, wallet.held, periods, statuses, rollups


def _scenario(account) -> list[Any]:
    """Authorize, replay, conflict, record, settle, overdraw, limits, unknown model and a batch with a repeat."""
    return [
        _authorize(account, "a1"),
        _authorize(account, "a1"),
        _authorize(account, "a1", input_tokens=1001),
        _record(account, ("a1", 1000, 300)),
        _authorize(account, "a1"),
        _authorize(account, "a2", input_tokens=2_000_000, max_output=100_000),
        _authorize(account, "a3", input_tokens=20_000, operation="chat_message"),
        _authorize(account, "a4", model="gpt-9"),
        _authorize(account, "a5", input_tokens=5000, max_output=100),
        _record(account, ("a5", 9000, 900), ("b1", 10, 10), ("b1", 10, 10)),
        _record(account, ("b1", 10, 10)),
        *[_authorize(account, f"c{n}", input_tokens=20_000, max_output=4000) for n in range(6)],
        _books(account),
    ]


@pytest.mark.parametrize("plan, credits", [("jive", "60"), ("free", "1"), ("starter", "1"), ("basic", "1")])
def test_both_paths_answer_every_scenario_alike(settings, plan, credits):
    settings.GATE_RAW_SQL = True
    raw = _scenario(AccountFactory.create(plan=plan, credits=credits))
    settings.GATE_RAW_SQL = False
    orm = _scenario(AccountFactory.create(plan=plan, credits=credits))
    assert raw == orm
    # and the answers are the rules' (a replay answers the first decision, a reused id is refused)
    assert raw[0][0] is True and raw[1][:3] == raw[0][:3]
    assert raw[2] == ("refused", "idempotency_conflict") and raw[4] == ("refused", "already_recorded")
    assert raw[7] == ("error", "UnknownModel")
    assert [status for _, status, *_ in raw[9]] == ["recorded", "recorded", "duplicate"]
    assert raw[10][0][1] == "duplicate"


def test_a_credit_plan_is_refused_exactly_when_the_wallet_is_short(settings):
    settings.GATE_RAW_SQL = True
    answers = _scenario(AccountFactory.create(plan="jive", credits="60"))
    overdrawn = answers[5]
    assert overdrawn[:2] == (False, "insufficient_credits")
    wallet_held = answers[-1][1]
    assert wallet_held == sum(
        (a[2] for a in answers[11:17] if a[0] is True), Decimal(0)
    )  # what the allowed calls still hold
