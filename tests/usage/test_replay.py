"""Replaying dead letters: a refused event, once the catalog knows its model, is recorded exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from billing.models import AuditEntry, BillingPeriod, LateUsageAdjustment, LedgerEntry, Wallet
from billing.services.periods import period_close
from pricing import services as catalog
from tests.factories import AccountFactory, UserFactory
from usage.models import DailyUsage, RejectedEvent, UsageEvent
from usage.services.replay import rejected_event_discard, rejected_event_replay

pytestmark = pytest.mark.usefixtures("catalog")

NEW_MODEL = "acme-large-2"


def _event(request_id: str, **fields):
    return {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500, **fields}


def _send(client, *events):
    response = client.post("/api/usage/events", {"events": list(events)}, format="json")
    assert response.status_code == 200
    return response.json()


def _add_new_model(capture, *, effective_from: datetime, reason: str = "added after its events were refused"):
    """The admin's fix: the model and a price from before the refused events (committed, so the cache refreshes)."""
    with capture(execute=True):
        model = catalog.model_create(model_id=NEW_MODEL, display_name="Acme Large 2", provider="acme")
        catalog.model_price_set(
            model=model, input_per_million="2", output_per_million="4", effective_from=effective_from, reason=reason
        )


def _balance(account) -> Decimal:
    return Wallet.objects.get(account=account).balance


def _usage_entries(account) -> int:
    return LedgerEntry.objects.filter(wallet__account=account, kind="usage").count()


def test_an_unknown_model_is_dead_lettered_then_replayed_once_after_the_fix(
    jive_account, api_client_for, django_capture_on_commit_callbacks
):
    occurred = timezone.now() - timedelta(hours=2)
    body = _send(
        api_client_for(jive_account), _event("good"), _event("new-1", model=NEW_MODEL, occurred_at=occurred.isoformat())
    )
    assert (body["recorded"], body["rejected"]) == (1, 1)
    assert body["results"][1]["error"]["code"] == "unknown_model"
    rejected = RejectedEvent.objects.get(account=jive_account)
    assert (rejected.request_id, rejected.status, rejected.error_code) == ("new-1", "pending", "unknown_model")
    balance_before, entries_before = _balance(jive_account), _usage_entries(jive_account)
    assert balance_before == Decimal("9998.5")

    _add_new_model(django_capture_on_commit_callbacks, effective_from=occurred - timedelta(days=1))
    admin_user = UserFactory.create(is_staff=True)
    assert rejected_event_replay(rejected=rejected, actor=admin_user) == "recorded"

    event = UsageEvent.objects.get(account=jive_account, request_id="new-1")
    # 1,000 input at $2/1M + 500 output at $4/1M = $0.004; jive has no markup; 10,000 credits per USD
    assert (event.cost_usd, event.charge_usd, event.credits) == (Decimal("0.004"), Decimal("0.004"), Decimal(40))
    assert event.model_id == NEW_MODEL
    assert event.occurred_at == occurred
    assert event.received_at == rejected.received_at  # judged and stored as first received
    assert _balance(jive_account) == balance_before - 40
    assert _usage_entries(jive_account) == entries_before + 1
    period = BillingPeriod.objects.get(account=jive_account)
    assert (period.messages, period.credits_used) == (2, Decimal("41.5"))
    assert DailyUsage.objects.get(account=jive_account, model_id=NEW_MODEL).events == 1
    rejected.refresh_from_db()
    assert (rejected.status, rejected.replay_result) == ("replayed", "recorded")
    assert rejected.replayed_at is not None
    audit = AuditEntry.objects.get(action="rejected_event_replay", object_key=str(rejected.pk))
    assert audit.actor == admin_user
    assert audit.after is not None and audit.after["status"] == "replayed"

    # a second replay of the same row does nothing more
    assert rejected_event_replay(rejected=rejected, actor=admin_user) == "skipped"
    assert _balance(jive_account) == balance_before - 40
    assert _usage_entries(jive_account) == entries_before + 1
    assert UsageEvent.objects.filter(account=jive_account).count() == 2
    assert BillingPeriod.objects.get(account=jive_account).messages == 2


def test_the_same_refused_event_sent_twice_is_charged_once(
    jive_account, api_client_for, django_capture_on_commit_callbacks
):
    client = api_client_for(jive_account)
    _send(client, _event("twice", model=NEW_MODEL))
    _send(client, _event("twice", model=NEW_MODEL))  # the client retried: a second dead letter for one request
    first, second = RejectedEvent.objects.filter(account=jive_account).order_by("pk")
    _add_new_model(django_capture_on_commit_callbacks, effective_from=timezone.now() - timedelta(days=1))

    assert rejected_event_replay(rejected=first, actor=None) == "recorded"
    balance = _balance(jive_account)
    assert rejected_event_replay(rejected=second, actor=None) == "duplicate"

    second.refresh_from_db()
    assert (second.status, second.replay_result) == ("replayed", "duplicate (already recorded)")
    assert _balance(jive_account) == balance == Decimal(10000) - 40
    assert UsageEvent.objects.filter(account=jive_account, request_id="twice").count() == 1
    assert _usage_entries(jive_account) == 1


def test_a_replay_refused_again_keeps_one_dead_letter_with_the_new_reason(
    jive_account, api_client_for, django_capture_on_commit_callbacks
):
    occurred = timezone.now() - timedelta(hours=1)
    _send(api_client_for(jive_account), _event("early", model=NEW_MODEL, occurred_at=occurred.isoformat()))
    rejected = RejectedEvent.objects.get(account=jive_account)

    # still unknown: refused again for the same reason, and the attempt leaves no second row
    assert rejected_event_replay(rejected=rejected, actor=None) == "rejected"
    assert RejectedEvent.objects.filter(account=jive_account).count() == 1
    rejected.refresh_from_db()
    assert rejected.status == "pending"
    assert rejected.replay_result.startswith("unknown_model: unknown model")

    # the model is added, but priced only from now: the event, an hour old, has no price in force
    with django_capture_on_commit_callbacks(execute=True):
        model = catalog.model_create(model_id=NEW_MODEL, display_name="Acme Large 2", provider="acme")
        catalog.model_price_set(model=model, input_per_million="2", output_per_million="4")
    assert rejected_event_replay(rejected=rejected, actor=None) == "rejected"
    assert list(RejectedEvent.objects.filter(account=jive_account)) == [rejected]
    rejected.refresh_from_db()
    assert (rejected.status, rejected.error_code) == ("pending", "unknown_model")  # what the client was told
    assert rejected.replay_result.startswith("no_price_in_force: ")
    assert rejected.replayed_at is None
    assert not UsageEvent.objects.filter(request_id="early").exists()
    assert _balance(jive_account) == Decimal(10000)
    assert _usage_entries(jive_account) == 0


def test_a_replay_keeps_other_dead_letters_of_the_same_batch(jive_account, api_client_for):
    # the same refused request twice in one batch: two rows with the same request id and receive time
    _send(api_client_for(jive_account), _event("dup", model=NEW_MODEL), _event("dup", model=NEW_MODEL))
    first, second = RejectedEvent.objects.filter(account=jive_account).order_by("pk")
    assert rejected_event_replay(rejected=first, actor=None) == "rejected"
    assert set(RejectedEvent.objects.filter(account=jive_account)) == {first, second}


def test_the_late_window_counts_from_the_first_receipt(api_client_for, django_capture_on_commit_callbacks):
    """Refused on day 1 for an event 30 days old, fixed and replayed 10 days later: 40 > 35 days since it
    happened, but only 30 between happening and first receipt, so it is recorded."""
    with time_machine.travel(datetime(2026, 3, 3, 9, tzinfo=UTC), tick=False):
        account = AccountFactory.create(plan="jive", credits="10000")
        occurred = timezone.now() - timedelta(days=30)
        _send(api_client_for(account), _event("old", model=NEW_MODEL, occurred_at=occurred.isoformat()))
    rejected = RejectedEvent.objects.get(account=account)
    with time_machine.travel(datetime(2026, 3, 13, 9, tzinfo=UTC), tick=False):
        _add_new_model(django_capture_on_commit_callbacks, effective_from=occurred - timedelta(days=1))
        assert rejected_event_replay(rejected=rejected, actor=None) == "recorded"
    event = UsageEvent.objects.get(account=account, request_id="old")
    # it happened in a period that was never opened, so it is counted in the period it was received in
    assert (event.period.start, event.period.status) == (datetime(2026, 3, 1, tzinfo=UTC), "open")


def test_an_event_of_a_closed_period_is_replayed_into_the_open_period(
    api_client_for, django_capture_on_commit_callbacks
):
    with time_machine.travel(datetime(2026, 1, 30, 12, tzinfo=UTC), tick=False):
        account = AccountFactory.create(plan="jive", credits="10000")
        _send(api_client_for(account), _event("jan-ok"), _event("jan-new", model=NEW_MODEL))
    january = BillingPeriod.objects.get(account=account)
    rejected = RejectedEvent.objects.get(account=account)
    with time_machine.travel(datetime(2026, 2, 10, 8, tzinfo=UTC), tick=False):
        period_close(period=january, as_of=timezone.now())
        _add_new_model(django_capture_on_commit_callbacks, effective_from=datetime(2026, 1, 1, tzinfo=UTC))
        assert rejected_event_replay(rejected=rejected, actor=None) == "recorded"

    january.refresh_from_db()
    assert (january.status, january.messages, january.credits_used) == ("closed", 1, Decimal("1.5"))
    february = BillingPeriod.objects.get(account=account, start=datetime(2026, 2, 1, tzinfo=UTC))
    assert (february.status, february.messages, february.credits_used) == ("open", 0, Decimal(0))
    event = UsageEvent.objects.get(account=account, request_id="jan-new")
    # its time lies in the closed January: late usage of January, billed on the next invoice
    assert (event.period, event.late) == (january, True)
    late = LateUsageAdjustment.objects.get(period=january)
    assert (late.messages, late.credits_used, late.invoice) == (1, Decimal(40), None)
    assert event.occurred_at == datetime(2026, 1, 30, 12, tzinfo=UTC)
    assert event.received_at == datetime(2026, 2, 1, tzinfo=UTC)  # the first moment of an open period
    assert _balance(account) == Decimal(10000) - Decimal("1.5") - 40


def test_discard_sets_an_event_aside_for_good(jive_account, api_client_for, django_capture_on_commit_callbacks):
    _send(api_client_for(jive_account), _event("junk", model=NEW_MODEL))
    rejected = RejectedEvent.objects.get(account=jive_account)
    assert rejected_event_discard(rejected=rejected, actor=None, reason="test traffic") == "discarded"
    rejected.refresh_from_db()
    assert (rejected.status, rejected.replay_result) == ("discarded", "discarded: test traffic")
    assert AuditEntry.objects.filter(action="rejected_event_discard", object_key=str(rejected.pk)).exists()

    _add_new_model(django_capture_on_commit_callbacks, effective_from=timezone.now() - timedelta(days=1))
    assert rejected_event_replay(rejected=rejected, actor=None) == "skipped"
    assert rejected_event_discard(rejected=rejected, actor=None) == "skipped"
    assert not UsageEvent.objects.filter(request_id="junk").exists()
    assert RejectedEvent.objects.filter(account=jive_account).count() == 1
