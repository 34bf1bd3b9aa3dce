"""The reservation lifecycle over the API: release a hold, read a reservation, reuse a request id, over-reservation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from billing.models import Wallet
from usage.models import UsageEvent
from usage.services.authorization import reservations_expire

pytestmark = pytest.mark.usefixtures("catalog")

ASK = {"model": "qwen-3-32b", "input_tokens": 1000, "max_output_tokens": 500}  # worst case 1.5 credits


def _authorize(client, request_id="r1", **fields):
    return client.post("/api/usage/authorize", {"request_id": request_id, **ASK, **fields}, format="json")


def _record(client, request_id="r1", output_tokens=100, **fields):
    event = {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": output_tokens}
    return client.post("/api/usage/events", {**event, **fields}, format="json")


def _wallet(account):
    wallet = Wallet.objects.get(account=account)
    return wallet.balance, wallet.held


def test_release_frees_the_hold_at_once_and_is_idempotent(jive_account, api_client_for):
    client = api_client_for(jive_account)
    assert _authorize(client).json()["allowed"] is True
    assert _wallet(jive_account) == (Decimal(10000), Decimal("1.5"))

    first = client.post("/api/usage/reservations/r1/release")
    assert first.status_code == 200
    assert first.json() == {"request_id": "r1", "status": "released", "released_credits": "1.5"}
    assert _wallet(jive_account) == (Decimal(10000), Decimal(0))
    balance = client.get("/api/billing/balance").json()
    assert balance["available_credits"] == "10000"

    again = client.post("/api/usage/reservations/r1/release")
    assert (again.status_code, again.json()) == (200, first.json())
    assert _wallet(jive_account) == (Decimal(10000), Decimal(0))  # freed once, not twice


def test_release_of_a_recorded_request_is_refused_and_changes_nothing(jive_account, api_client_for):
    client = api_client_for(jive_account)
    _authorize(client)
    assert _record(client).status_code == 201
    after_record = _wallet(jive_account)
    response = client.post("/api/usage/reservations/r1/release")
    assert response.status_code == 409
    assert response.json()["error"] == "already_recorded"
    assert _wallet(jive_account) == after_record == (Decimal(10000) - Decimal("1.1"), Decimal(0))


def test_release_of_a_request_recorded_without_authorize_is_already_recorded(jive_account, api_client_for):
    client = api_client_for(jive_account)
    _record(client, "plain")
    response = client.post("/api/usage/reservations/plain/release")
    assert (response.status_code, response.json()["error"]) == (409, "already_recorded")


def test_release_and_read_of_an_unknown_request_are_404(jive_account, api_client_for):
    client = api_client_for(jive_account)
    released = client.post("/api/usage/reservations/nope/release")
    read = client.get("/api/usage/reservations/nope")
    assert (released.status_code, released.json()["error"]) == (404, "not_found")
    assert (read.status_code, read.json()["error"]) == (404, "not_found")


def test_another_accounts_reservation_is_not_found(jive_account, api_client_for):
    from tests.factories import AccountFactory

    other = AccountFactory.create(plan="jive", credits="100")
    _authorize(api_client_for(other), "theirs")
    response = api_client_for(jive_account).post("/api/usage/reservations/theirs/release")
    assert response.status_code == 404
    assert _wallet(other)[1] == Decimal("1.5")


def test_reading_a_reservation_follows_its_life(jive_account, api_client_for):
    client = api_client_for(jive_account)
    _authorize(client, "a")
    _authorize(client, "b")
    _authorize(client, "c")
    active = client.get("/api/usage/reservations/a").json()
    assert (active["status"], active["held_credits"], active["closed_at"]) == ("active", "1.5", None)
    _record(client, "a")
    client.post("/api/usage/reservations/b/release")
    assert client.get("/api/usage/reservations/a").json()["status"] == "settled"
    assert client.get("/api/usage/reservations/b").json()["status"] == "released"
    expires_at = client.get("/api/usage/reservations/c").json()["expires_at"]
    reservations_expire(as_of=timezone.now() + timedelta(hours=1))
    expired = client.get("/api/usage/reservations/c").json()
    assert (expired["status"], expired["expires_at"]) == ("expired", expires_at)
    # an expired hold is already free: release answers so and frees nothing more
    release = client.post("/api/usage/reservations/c/release").json()
    assert release["status"] == "expired"
    assert _wallet(jive_account)[1] == Decimal(0)


def test_a_released_request_can_still_be_recorded_and_is_charged_once(jive_account, api_client_for):
    client = api_client_for(jive_account)
    _authorize(client)
    client.post("/api/usage/reservations/r1/release")
    assert _record(client).status_code == 201
    assert _wallet(jive_account) == (Decimal(10000) - Decimal("1.1"), Decimal(0))


def test_authorize_again_with_the_same_parameters_answers_the_first_decision(jive_account, api_client_for):
    client = api_client_for(jive_account)
    first = _authorize(client).json()
    second = _authorize(client).json()
    assert first["reservation_id"] == second["reservation_id"]
    assert (second["allowed"], second["held_credits"], second["expires_at"]) == (
        True,
        first["held_credits"],
        first["expires_at"],
    )
    assert _wallet(jive_account)[1] == Decimal("1.5")


@pytest.mark.parametrize(
    "changed",
    [
        {"model": "llama-3.3-70b"},
        {"input_tokens": 1001},
        {"max_output_tokens": 501},
        {"operation_type": "summarize"},
        {"features": ["rag_search"]},
    ],
)
def test_authorize_again_with_other_parameters_is_a_conflict(jive_account, api_client_for, changed):
    client = api_client_for(jive_account)
    _authorize(client)
    response = _authorize(client, **changed)
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_conflict"
    assert _wallet(jive_account)[1] == Decimal("1.5")  # nothing more held


def test_authorize_of_a_recorded_request_is_already_recorded(jive_account, api_client_for):
    client = api_client_for(jive_account)
    _authorize(client)
    _record(client)
    again = _authorize(client)
    assert (again.status_code, again.json()["error"]) == (409, "already_recorded")
    _record(client, "no-hold")
    never_authorized = _authorize(client, "no-hold")
    assert (never_authorized.status_code, never_authorized.json()["error"]) == (409, "already_recorded")
    assert _wallet(jive_account)[1] == Decimal(0)


def test_recording_more_than_was_authorized_is_recorded_and_flagged(jive_account, api_client_for):
    client = api_client_for(jive_account)
    _authorize(client, "within")
    _authorize(client, "beyond")
    within = _record(client, "within", output_tokens=500).json()["results"][0]
    beyond = _record(client, "beyond", output_tokens=2000).json()["results"][0]
    assert (within["status"], within["over_reservation"]) == ("recorded", False)
    assert (beyond["status"], beyond["over_reservation"], beyond["credits"]) == ("recorded", True, "3")
    assert UsageEvent.objects.get(request_id="beyond").over_reservation is True
    assert UsageEvent.objects.get(request_id="within").over_reservation is False
    # the usage happened: all of it is debited, and nothing stays held
    assert _wallet(jive_account) == (Decimal(10000) - Decimal("1.5") - Decimal(3), Decimal(0))
    # a replay answers the first result, flag included
    replay = _record(client, "beyond", output_tokens=2000).json()["results"][0]
    assert (replay["status"], replay["over_reservation"]) == ("duplicate", True)


def test_an_event_without_a_reservation_is_not_over_reservation(jive_account, api_client_for):
    result = _record(api_client_for(jive_account), "free", output_tokens=5000).json()["results"][0]
    assert (result["status"], result["over_reservation"]) == ("recorded", False)


def test_the_console_filters_events_over_their_reservation(jive_account, api_client_for, admin_client):
    client = api_client_for(jive_account)
    _authorize(client, "beyond")
    _record(client, "beyond", output_tokens=2000)
    _record(client, "plain")
    page = admin_client.get("/admin/usage/usageevent/?over_reservation__exact=1")
    assert page.status_code == 200
    assert b"beyond" in page.content
    assert b"plain" not in page.content


def test_a_release_after_the_clock_moved_keeps_its_times(jive_account, api_client_for):
    client = api_client_for(jive_account)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        _authorize(client)
        traveller.shift(timedelta(minutes=3))
        client.post("/api/usage/reservations/r1/release")
        closed = client.get("/api/usage/reservations/r1").json()["closed_at"]
        assert closed.startswith(timezone.now().isoformat()[:19])


def test_the_schema_describes_the_lifecycle(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert {"/api/usage/reservations/{request_id}", "/api/usage/reservations/{request_id}/release"} <= set(
        schema["paths"]
    )
    release = schema["paths"]["/api/usage/reservations/{request_id}/release"]["post"]
    assert {"200", "404", "409"} <= set(release["responses"])
    result = schema["components"]["schemas"]["EventResult"]["properties"]
    assert "over_reservation" in result
