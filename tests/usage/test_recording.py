from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import BillingPeriod, LedgerEntry, Wallet
from billing.services.periods import period_current
from tests.factories import AccountFactory
from usage.models import DailyUsage, RejectedEvent, UsageEvent

pytestmark = pytest.mark.usefixtures("catalog")


def _event(request_id: str, **fields):
    return {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500, **fields}


def test_one_event_is_recorded_rated_and_debited(jive_account, api_client_for):
    response = api_client_for(jive_account).post("/api/usage/events", _event("r1"), format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["recorded"], body["duplicate"], body["rejected"]) == (1, 0, 0)
    result = body["results"][0]
    assert (result["status"], result["cost_usd"], result["credits"]) == ("recorded", "0.00015", "1.5")
    assert Wallet.objects.get(account=jive_account).balance == Decimal("9998.5")
    period = BillingPeriod.objects.get(account=jive_account)
    assert (period.messages, period.input_tokens, period.output_tokens) == (1, 1000, 500)
    assert period.credits_used == Decimal("1.5")


def test_the_same_batch_twice_changes_nothing_the_second_time(jive_account, api_client_for):
    client = api_client_for(jive_account)
    batch = {"events": [_event(f"r{n}") for n in range(5)]}
    first = client.post("/api/usage/events", batch, format="json").json()
    balance = Wallet.objects.get(account=jive_account).balance
    second = client.post("/api/usage/events", batch, format="json").json()
    assert first["recorded"] == 5
    assert (second["recorded"], second["duplicate"]) == (0, 5)
    assert [r["credits"] for r in second["results"]] == [r["credits"] for r in first["results"]]
    assert Wallet.objects.get(account=jive_account).balance == balance
    assert BillingPeriod.objects.get(account=jive_account).messages == 5
    assert LedgerEntry.objects.filter(wallet__account=jive_account, kind="usage").count() == 1


def test_a_request_id_repeated_inside_a_batch_counts_once(jive_account, api_client_for):
    body = (
        api_client_for(jive_account)
        .post("/api/usage/events", {"events": [_event("same"), _event("same", input_tokens=99999)]}, format="json")
        .json()
    )
    assert [r["status"] for r in body["results"]] == ["recorded", "duplicate"]
    assert UsageEvent.objects.get(request_id="same").input_tokens == 1000
    assert body["results"][1]["credits"] == body["results"][0]["credits"]


def test_a_mixed_batch_records_the_good_and_dead_letters_the_bad(jive_account, api_client_for):
    events = [
        _event("good-1"),
        _event("bad-model", model="gpt-9"),
        _event("bad-subset", cached_input_tokens=2000),
        _event("bad-negative", output_tokens=-1),
        {"model": "qwen-3-32b"},
        _event("good-2", model="gpt-4o-mini-2024-07-18"),
        _event("image", model="flux-1.1-pro", input_tokens=0, output_tokens=0, images=1),
        _event("too-old", occurred_at=(timezone.now() - timedelta(days=40)).isoformat()),
        _event("future", occurred_at=(timezone.now() + timedelta(hours=1)).isoformat()),
        _event("bad-feature", features=["teleport"]),
        _event("float-multiplier", multiplier="abc"),
    ]
    body = api_client_for(jive_account).post("/api/usage/events", {"events": events}, format="json").json()
    assert (body["recorded"], body["rejected"]) == (3, 8)
    codes = {r["request_id"]: r["error"]["code"] for r in body["results"] if r["status"] == "rejected"}
    assert codes == {
        "bad-model": "unknown_model",
        "bad-subset": "subset_exceeds_total",
        "bad-negative": "out_of_range",
        "": "invalid_event",
        "too-old": "event_too_old",
        "future": "event_in_future",
        "bad-feature": "unknown_feature",
        "float-multiplier": "invalid_event",
    }
    kept = RejectedEvent.objects.filter(account=jive_account)
    assert kept.count() == 8
    assert kept.get(request_id="bad-model").payload["model"] == "gpt-9"


def test_model_not_allowed_for_the_tier_is_refused(catalog, api_client_for):
    free = AccountFactory.create(plan="free")
    body = api_client_for(free).post(
        "/api/usage/events",
        _event("img", model="flux-1.1-pro", input_tokens=0, output_tokens=0, images=1),
        format="json",
    )
    assert body.status_code == 400
    assert body.json()["error"] == "model_not_allowed"


def test_batch_over_1000_is_413(jive_account, api_client_for):
    response = api_client_for(jive_account).post(
        "/api/usage/events", {"events": [_event(f"r{n}") for n in range(1001)]}, format="json"
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'"text"', b'{"events": []}', b'{"events": "x"}', b"NaN"])
def test_malformed_bodies_are_400_with_json(jive_account, api_client_for, body):
    response = api_client_for(jive_account).post("/api/usage/events", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] in {"malformed_request", "invalid"}


def test_usage_past_zero_is_recorded_and_flagged(catalog, api_client_for):
    account = AccountFactory.create(plan="jive", credits="1")
    body = api_client_for(account).post("/api/usage/events", _event("r1"), format="json").json()
    assert body["recorded"] == 1
    assert Wallet.objects.get(account=account).balance == Decimal("-0.5")
    assert UsageEvent.objects.get(request_id="r1").over_limit is True


def test_message_plan_counts_messages_and_accrues_overage(catalog, api_client_for):
    account = AccountFactory.create(plan="starter")
    period = period_current(account=account, as_of=timezone.now())
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=999)
    client = api_client_for(account)
    client.post("/api/usage/events", {"events": [_event("a"), _event("b"), _event("c")]}, format="json")
    period = BillingPeriod.objects.get(account=account)
    assert period.units_used == 1002
    assert period.overage_units == 2
    assert period.overage_usd == Decimal("0.0003")
    assert Wallet.objects.get(account=account).balance == 0  # quota plans do not touch the wallet


def test_token_plan_counts_tokens(catalog, api_client_for):
    account = AccountFactory.create(plan="basic")
    api_client_for(account).post("/api/usage/events", _event("a"), format="json")
    assert BillingPeriod.objects.get(account=account).units_used == 1500


def test_daily_rollup_follows_the_events(jive_account, api_client_for):
    day = datetime.now(UTC).replace(hour=1)
    client = api_client_for(jive_account)
    client.post(
        "/api/usage/events",
        {"events": [_event("a", operation_type="chat_message"), _event("b", operation_type="chat_message")]},
        format="json",
    )
    client.post("/api/usage/events", {"events": [_event("c", operation_type="chat_message")]}, format="json")
    rollup = DailyUsage.objects.get(account=jive_account, day=day.date(), model_id="qwen-3-32b")
    assert (rollup.events, rollup.input_tokens, rollup.output_tokens) == (3, 3000, 1500)
    assert rollup.cost_usd == Decimal("0.00045")


def _stored(request_id: str) -> dict:
    fields = ("model_id", "input_tokens", "output_tokens", "cached_input_tokens", "features", "metadata", "multiplier",
              "operation_type", "user", "conversation_id", "occurred_at", "cost_usd", "charge_usd", "credits", "units",
              "breakdown", "price_version_id", "feature_version_ids", "credits_rate", "plan_code", "over_limit",
              "reconciliation_status", "user_agent")  # fmt: skip
    return UsageEvent.objects.values(*fields).get(request_id=request_id)


def test_a_large_batch_stores_each_event_as_a_single_one_would(jive_account, api_client_for):
    # a single event and a batch of 60 take different insert paths on PostgreSQL (one INSERT, or COPY)
    client = api_client_for(jive_account)
    at = (timezone.now() - timedelta(hours=2)).replace(microsecond=123456).isoformat()
    rich = {
        "cached_input_tokens": 200, "features": ["rag_search", {"key": "optillm_cot", "cepo": True}],
        "metadata": {"team": "ünïcode", "nested": {"list": [1, "2", None]}, "price": "0.10"},
        "operation_type": "chat", "user": "u-1", "conversation_id": "c-1", "multiplier": "1.5", "occurred_at": at,
    }  # fmt: skip
    client.post("/api/usage/events", _event("alone", **rich), format="json", HTTP_USER_AGENT="sdk/1")
    events = [_event(f"big-{n}", **rich) for n in range(60)]
    body = client.post("/api/usage/events", {"events": events}, format="json", HTTP_USER_AGENT="sdk/1").json()
    assert body["recorded"] == 60
    alone = _stored("alone")
    for n in (0, 31, 59):
        assert _stored(f"big-{n}") == alone
    assert alone["metadata"] == rich["metadata"] and alone["features"] == rich["features"]
    assert alone["occurred_at"] == datetime.fromisoformat(at)


def test_a_large_batch_answers_earlier_and_repeated_ids_as_duplicates(jive_account, api_client_for):
    client = api_client_for(jive_account)
    earlier = client.post("/api/usage/events", {"events": [_event(f"e{n}") for n in range(3)]}, format="json").json()
    events = [_event(f"e{n}", input_tokens=7) for n in range(3)] + [_event(f"n{n}") for n in range(40)]
    events.append(_event("n5", input_tokens=99999))  # repeated inside the batch
    body = client.post("/api/usage/events", {"events": events}, format="json").json()
    assert (body["recorded"], body["duplicate"]) == (40, 4)
    statuses = [r["status"] for r in body["results"]]
    assert statuses[:3] == ["duplicate"] * 3 and statuses[-1] == "duplicate"
    # a duplicate answers the first result's amounts, not the replayed numbers'
    assert [r["credits"] for r in body["results"][:3]] == [r["credits"] for r in earlier["results"]]
    assert body["results"][-1]["credits"] == body["results"][8]["credits"]
    assert UsageEvent.objects.get(account=jive_account, request_id="e0").input_tokens == 1000
    assert UsageEvent.objects.get(account=jive_account, request_id="n5").input_tokens == 1000
    period = BillingPeriod.objects.get(account=jive_account)
    assert period.messages == 43
    wallet = Wallet.objects.get(account=jive_account)
    assert wallet.balance == Decimal(10000) - Decimal("1.5") * 43
    again = client.post("/api/usage/events", {"events": events}, format="json").json()
    assert (again["recorded"], again["duplicate"]) == (0, 44)
    assert Wallet.objects.get(account=jive_account).balance == wallet.balance


@pytest.mark.parametrize("count", [1, 25])  # one INSERT, or COPY on PostgreSQL
def test_events_from_a_client_without_an_address_are_recorded(jive_account, api_client_for, count):
    # a server on a unix socket gives an empty REMOTE_ADDR; it is stored as no address, like Django stores it
    body = {"events": [_event(f"s{n}") for n in range(count)]}
    response = api_client_for(jive_account).post("/api/usage/events", body, format="json", REMOTE_ADDR="")
    assert response.status_code == 200 and response.json()["recorded"] == count
    assert set(UsageEvent.objects.filter(account=jive_account).values_list("ip", flat=True)) == {None}
