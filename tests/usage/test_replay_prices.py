"""Replay after adding a model: its first price starts now, after the events refused for it, so their replay would
fail with no_price_in_force; the replay screen says so and starts the price at the oldest waiting event (a back-dated
version with its reason), after which the replay records them (issue 21)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from pricing import services as catalog
from pricing.models import ModelPrice
from usage.models import RejectedEvent, UsageEvent
from usage.services.replay import rejected_event_replay
from usage.services.replay_prices import (
    model_price_start_at_oldest_waiting,
    model_prices_start_for_rejected,
    rejected_events_waiting_for_prices,
)

pytestmark = pytest.mark.usefixtures("catalog")

NEW_MODEL = "acme-large-2"
CHANGELIST = "/admin/usage/rejectedevent/"


@pytest.fixture
def refused(jive_account, api_client_for, django_capture_on_commit_callbacks):
    """Two events on a model the catalog lacks (3 days and 2 hours ago); then the admin adds it, priced from now."""
    now = timezone.now()
    events = [
        {"request_id": f"new-{n}", "model": NEW_MODEL, "input_tokens": 1_000_000, "output_tokens": 0,
         "occurred_at": (now - ago).isoformat()}
        for n, ago in enumerate([timedelta(days=3), timedelta(hours=2)])
    ]  # fmt: skip
    body = api_client_for(jive_account).post("/api/usage/events", {"events": events}, format="json").json()
    assert body["rejected"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        model = catalog.model_create(model_id=NEW_MODEL, display_name="Acme Large 2", provider="acme")
        catalog.model_price_set(model=model, input_per_million="2", output_per_million="4")
    return model, now - timedelta(days=3)


def test_a_price_that_starts_now_refuses_the_replay_of_older_events(refused, django_capture_on_commit_callbacks):
    rejected = RejectedEvent.objects.order_by("received_at")[0]
    assert rejected_event_replay(rejected=rejected) == "rejected"
    rejected.refresh_from_db()
    assert rejected.replay_result.startswith("no_price_in_force")
    (waiting,) = rejected_events_waiting_for_prices()
    assert (waiting.model.model_id, waiting.events, waiting.price_starts_too_late) == (NEW_MODEL, 2, True)
    assert abs(waiting.oldest - refused[1]) < timedelta(seconds=1)


def test_starting_the_price_at_the_oldest_waiting_event_lets_the_replay_record_them(
    refused, django_capture_on_commit_callbacks
):
    model, oldest = refused
    with django_capture_on_commit_callbacks(execute=True):
        version = model_price_start_at_oldest_waiting(model=model)
    assert version is not None and version.backdated
    assert abs(version.effective_from - oldest) < timedelta(seconds=1)
    assert "back-dated to the oldest of 2 refused events waiting for acme-large-2" in version.reason
    assert (version.input_per_million, version.output_per_million) == (Decimal(2), Decimal(4))
    outcomes = [rejected_event_replay(rejected=row) for row in RejectedEvent.objects.order_by("received_at")]
    assert outcomes == ["recorded", "recorded"]
    # 1M input tokens at $2 per 1M, each at its own time
    assert [e.cost_usd for e in UsageEvent.objects.filter(model_id=NEW_MODEL)] == [Decimal(2), Decimal(2)]
    # nothing waits any more, and a second call adds nothing
    assert rejected_events_waiting_for_prices() == []
    assert model_price_start_at_oldest_waiting(model=model) is None
    assert ModelPrice.objects.filter(model=model).count() == 2


def test_the_replay_screen_says_so_and_its_action_starts_the_price(refused, django_capture_on_commit_callbacks):
    staff = User.objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(staff)
    page = client.get(CHANGELIST).content.decode()
    assert "2 refused events wait for acme-large-2 since" in page
    assert "a replay would be refused with no_price_in_force" in page
    ids = [str(pk) for pk in RejectedEvent.objects.values_list("pk", flat=True)]
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            CHANGELIST, {"action": "start_prices_at_oldest_waiting", "_selected_action": ids}, follow=True
        )
    assert "The price of acme-large-2 now starts at" in answer.content.decode()
    assert ModelPrice.objects.filter(model=refused[0], backdated=True).count() == 1
    assert "wait for acme-large-2" not in client.get(CHANGELIST).content.decode()


def test_events_on_a_model_still_unknown_are_not_offered(jive_account, api_client_for):
    event = {"request_id": "x", "model": "never-heard-of-it", "input_tokens": 1, "output_tokens": 1}
    api_client_for(jive_account).post("/api/usage/events", event, format="json")
    assert rejected_events_waiting_for_prices() == []
    assert model_prices_start_for_rejected(rejected=RejectedEvent.objects.all()) == []
