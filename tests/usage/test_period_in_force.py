"""The period in force an account's batches remember (usage.services.recording._in_force): never trusted over what
the period's lock shows. After a plan change applied now, a closed period, or a period that is gone, the next batch
is recorded exactly as it would be by a process that never remembered anything."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import BillingPeriod, Wallet
from billing.services.periods import subscription_change_plan
from pricing.models import Plan
from tests.factories import AccountFactory
from usage.models import UsageEvent
from usage.services import recording
from usage.services.recording import periods_in_force_forget

pytestmark = pytest.mark.usefixtures("catalog")


def _event(request_id: str) -> dict[str, object]:
    return {"request_id": request_id, "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 500}


def _outcome(account, api_client_for, *, between) -> tuple[object, ...]:
    """Record one event, do `between`, record another: what the second event and the account show."""
    client = api_client_for(account)
    assert client.post("/api/usage/events", _event("first"), format="json").status_code == 201
    between(account)
    answer = client.post("/api/usage/events", _event("second"), format="json").json()["results"][0]
    event = UsageEvent.objects.get(account=account, request_id="second")
    period = BillingPeriod.objects.get(pk=event.period_id)
    return (
        answer["status"], answer["credits"], event.plan_code, event.late, period.status, period.messages,
        period.credits_used, Wallet.objects.get(account=account).balance, account.pk in recording._in_force,
    )  # fmt: skip


def _both_ways(api_client_for, between) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """The outcome in a process that remembers the period, and in one that forgets it before the second event."""
    remembered = _outcome(AccountFactory.create(plan="jive", credits="100"), api_client_for, between=between)

    def forgetting(account) -> None:
        between(account)
        periods_in_force_forget()

    fresh = _outcome(AccountFactory.create(plan="jive", credits="100"), api_client_for, between=forgetting)
    return remembered, fresh


def test_the_second_batch_uses_the_remembered_period(api_client_for):
    account = AccountFactory.create(plan="jive", credits="100")
    client = api_client_for(account)
    client.post("/api/usage/events", _event("first"), format="json")
    assert recording._in_force[account.pk].pk == BillingPeriod.objects.get(account=account).pk


def test_a_plan_change_applied_now_rates_the_next_batch_by_the_new_plan(api_client_for):
    def change(account) -> None:
        subscription_change_plan(account=account, plan=Plan.objects.get(code="jigga"), apply_now=True)

    remembered, fresh = _both_ways(api_client_for, change)
    assert remembered == fresh
    assert remembered[2] == "jigga" and remembered[0] == "recorded"


def test_a_period_closed_meanwhile_is_not_taken_from_memory(api_client_for):
    def close(account) -> None:  # as a close that committed does (the period's bounds are unchanged)
        BillingPeriod.objects.filter(account=account).update(status=BillingPeriod.Status.CLOSED)

    remembered, fresh = _both_ways(api_client_for, close)
    assert remembered == fresh
    assert remembered[3] is True  # late usage of the closed period, as without the memory
    assert remembered[-1] is False  # and a closed period is not remembered


def test_a_remembered_period_that_is_gone_is_read_afresh(api_client_for):
    account = AccountFactory.create(plan="jive", credits="100")
    client = api_client_for(account)
    assert client.post("/api/usage/events", _event("first"), format="json").status_code == 201
    known = recording._in_force[account.pk]
    # as after a database restore: the id the process remembers is no period of this account
    recording._in_force[account.pk] = BillingPeriod(
        pk=known.pk + 10_000, account_id=account.pk, start=known.start, end=known.end, terms_id=known.terms_id,
        status=BillingPeriod.Status.OPEN,
    )  # fmt: skip
    answer = client.post("/api/usage/events", _event("second"), format="json").json()["results"][0]
    assert answer["status"] == "recorded"
    assert UsageEvent.objects.get(account=account, request_id="second").period_id == known.pk
    assert BillingPeriod.objects.get(pk=known.pk).messages == 2
    assert recording._in_force[account.pk].pk == known.pk
    assert Wallet.objects.get(account=account).balance == Decimal(100) - 2 * Decimal(answer["credits"])
