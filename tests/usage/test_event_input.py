"""Every kind of bad input on POST /api/usage/events: a clear 4xx (or a rejected event in a batch), the event kept as
a dead letter, the good events of a batch recorded, never a 500. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models
from django.utils import timezone

from billing.models import BillingPeriod, Wallet
from pricing.rating import UsageLine
from usage import events as event_checks
from usage.events import EVENT_FIELDS, Count, Text
from usage.models import RejectedEvent, UsageEvent

pytestmark = pytest.mark.usefixtures("catalog")

NUL = "\u0000"
SURROGATE = "\udc00"


def _event(request_id: str, **fields: Any) -> dict[str, Any]:
    return {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500, **fields}


def _post(client, body: Any):
    """Send JSON as a client library would: every non-ASCII character escaped, so lone surrogates travel."""
    return client.post(
        "/api/usage/events", json.dumps(body, ensure_ascii=True, default=str), content_type="application/json"
    )


def _assert_refused_alone(response, code: str) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    assert body["fields"] == {}
    assert (body["recorded"], body["rejected"]) == (0, 1)
    assert not UsageEvent.objects.exists()
    assert RejectedEvent.objects.filter(error_code=code).count() == 1
    return body


# -- the declarations agree with the columns -------------------------------------------------------------------


def test_each_declared_field_fits_its_column():
    for spec in EVENT_FIELDS:
        column = "model_requested" if spec.name == "model" else spec.name
        if isinstance(spec, Text):
            text_column = UsageEvent._meta.get_field(column)
            assert isinstance(text_column, models.CharField)
            assert text_column.max_length is not None
            assert spec.max_length <= text_column.max_length, spec.name
        if isinstance(spec, Count):
            kind = type(UsageEvent._meta.get_field(column))
            limit = 2**63 - 1 if issubclass(kind, models.BigIntegerField) else 2**31 - 1
            assert spec.max_value <= limit, spec.name


def test_a_field_an_event_leaves_out_reads_as_the_usage_lines_default():
    """event_parse gives the usage line only the fields an event names; one left out is the line's default."""
    defaults = {f.name: f.default for f in dataclasses.fields(UsageLine)}
    limits = event_checks.Limits(metadata_max_bytes=4096)
    for name in event_checks._LINE_OPTIONAL:
        spec = next(s for s in EVENT_FIELDS if s.name == name)
        assert spec.read({}, limits) == defaults[name], name


def test_an_event_naming_its_fields_at_their_defaults_reads_as_one_leaving_them_out():
    def parse(raw: dict[str, Any]) -> event_checks.ParsedEvent:
        return event_checks.event_parse(raw, received_at=now, late_window=timedelta(days=35),
                                        future_skew=timedelta(minutes=5), metadata_max_bytes=4096)  # fmt: skip

    now = timezone.now()
    bare = parse(_event("r1"))
    named = parse(_event("r1", **{spec.name: None for spec in EVENT_FIELDS[4:]}))
    assert bare.line == named.line
    assert bare.values == named.values
    tier = parse(_event("r1", service_tier="auto", seconds="1.5", images=2))
    assert (tier.line.service_tier, tier.line.seconds, tier.line.images) == ("default", Decimal("1.5"), 2)


# -- text ------------------------------------------------------------------------------------------------------

TEXT_PLACES = {
    "request_id": lambda bad: _event(f"r{bad}"),
    "model": lambda bad: _event("r1", model=f"qwen{bad}"),
    "user": lambda bad: _event("r1", user=f"u{bad}"),
    "operation_type": lambda bad: _event("r1", operation_type=f"chat{bad}"),
    "conversation_id": lambda bad: _event("r1", conversation_id=f"c{bad}"),
    "feature key": lambda bad: _event("r1", features=[f"rag{bad}"]),
    "feature object key": lambda bad: _event("r1", features=[{"key": f"rag{bad}", "quantity": 1}]),
    "metadata value": lambda bad: _event("r1", metadata={"a": f"x{bad}"}),
    "metadata key": lambda bad: _event("r1", metadata={f"k{bad}": 1}),
    "nested metadata": lambda bad: _event("r1", metadata={"a": [{"b": {"c": ["ok", f"x{bad}"]}}]}),
    "occurred_at": lambda bad: _event("r1", occurred_at=f"2026-01-01T00:00:00Z{bad}"),
}


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize("place", list(TEXT_PLACES))
def test_nul_and_lone_surrogates_anywhere_are_a_400_and_a_dead_letter(jive_account, api_client_for, place, bad):
    response = _post(api_client_for(jive_account), TEXT_PLACES[place](bad))
    _assert_refused_alone(response, "invalid_text")
    kept = RejectedEvent.objects.get()
    # kept so an admin can see it: the shown payload is storable, and the exact event is in raw_payload
    assert "\ufffd" in json.dumps(kept.payload, ensure_ascii=False)
    assert json.loads(kept.raw_payload) == TEXT_PLACES[place](bad)


@pytest.mark.parametrize(
    ("field", "length"),
    [("request_id", 129), ("model", 201), ("user", 201), ("operation_type", 101), ("conversation_id", 201)],
)
def test_text_longer_than_its_column_is_refused(jive_account, api_client_for, field, length):
    response = _post(api_client_for(jive_account), {**_event("r1"), field: "x" * length})
    body = _assert_refused_alone(response, "invalid_event")
    assert "characters" in body["message"]


def test_a_huge_string_is_refused_and_kept(jive_account, api_client_for):
    huge = "\U0001f600" * 500_000  # 2 MB of emoji in one field
    response = _post(api_client_for(jive_account), _event("r1", user=huge))
    body = _assert_refused_alone(response, "invalid_event")
    assert len(body["message"]) < 200
    assert RejectedEvent.objects.get().payload["user"] == huge


# -- numbers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"images": 10**10}, "out_of_range"),  # a 500 before: the column is a 32-bit integer
        ({"images": 2**31}, "out_of_range"),
        ({"input_tokens": 2**63}, "out_of_range"),
        ({"output_tokens": 10**30}, "out_of_range"),
        ({"reasoning_tokens": -1}, "out_of_range"),
        ({"input_tokens": True}, "invalid_event"),
        ({"images": False}, "invalid_event"),
        ({"input_tokens": 1.5}, "invalid_event"),
        ({"input_tokens": "1000"}, "invalid_event"),
        ({"multiplier": "1.0000000000001"}, "out_of_range"),  # 13 places: more than the column keeps
        ({"multiplier": "1e400"}, "out_of_range"),
        ({"multiplier": "NaN"}, "invalid_event"),
        ({"multiplier": "Infinity"}, "invalid_event"),
        ({"multiplier": True}, "invalid_event"),
        ({"multiplier": "0.5"}, "out_of_range"),
        ({"multiplier": "1" * 60}, "invalid_event"),
        ({"features": [{"key": "rag_search", "quantity": "1e30"}]}, "out_of_range"),
        ({"features": [{"key": "rag_search", "quantity": -1}]}, "out_of_range"),
        ({"features": [{"key": "rag_search", "quantity": True}]}, "invalid_event"),
        ({"features": [{"key": "rag_search", "cepo": "yes"}]}, "invalid_event"),
        ({"features": [{"key": "rag_search", "note": "x"}]}, "invalid_event"),
    ],
)
def test_numbers_outside_their_column_or_of_the_wrong_type_are_refused(jive_account, api_client_for, fields, code):
    _assert_refused_alone(_post(api_client_for(jive_account), _event("r1", **fields)), code)


def test_decimals_come_as_json_numbers_or_strings_without_float_math(jive_account, api_client_for):
    client = api_client_for(jive_account)
    as_number = client.post(
        "/api/usage/events",
        b'{"request_id": "n", "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500, "multiplier": 1.1}',
        content_type="application/json",
    )
    as_string = _post(client, _event("s", multiplier="1.1"))
    assert (as_number.status_code, as_string.status_code) == (201, 201)
    assert as_number.json()["results"][0]["credits"] == as_string.json()["results"][0]["credits"] == "1.65"
    assert UsageEvent.objects.get(request_id="n").multiplier == Decimal("1.1")


def test_the_largest_counts_a_column_holds_are_recorded(jive_account, api_client_for):
    fields = {"input_tokens": 10**10, "output_tokens": 0, "images": 0}
    assert _post(api_client_for(jive_account), _event("big", **fields)).status_code == 201
    assert UsageEvent.objects.get(request_id="big").input_tokens == 10**10


# -- dates -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-02-30T10:00:00Z",
        "2026-11-21T25:00:00Z",
        "2026-11-21T10:00:00+99:00",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-11-21T10:00:00",  # naive: refused, never guessed
        "yesterday",
        "",
        20261121,
        "2026-11-21T10:00:00Z" + " " * 100,
    ],
)
def test_times_that_are_not_real_or_not_in_the_window_are_refused(jive_account, api_client_for, occurred_at):
    response = _post(api_client_for(jive_account), _event("r1", occurred_at=occurred_at))
    assert response.status_code == 400, response.content
    assert response.json()["error"] in {"invalid_event", "event_too_old", "event_in_future"}
    assert RejectedEvent.objects.count() == 1


def test_a_time_with_an_offset_is_recorded_at_its_instant(jive_account, api_client_for):
    local = (timezone.now() - timedelta(hours=1)).astimezone(timezone.get_fixed_timezone(330))
    response = _post(api_client_for(jive_account), _event("r1", occurred_at=local.isoformat()))
    assert response.status_code == 201
    assert UsageEvent.objects.get().occurred_at == local


# -- body ------------------------------------------------------------------------------------------------------


def test_a_multipart_body_with_a_file_is_415_json(jive_account, api_client_for):
    response = api_client_for(jive_account).post(
        "/api/usage/events",
        {"request_id": "r1", "model": "qwen-3-32b", "file": SimpleUploadedFile("e.json", b'{"a": 1}')},
        format="multipart",
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert not UsageEvent.objects.exists()


def test_a_body_that_is_not_utf8_is_400_json(jive_account, api_client_for):
    response = api_client_for(jive_account).post(
        "/api/usage/events", b'{"request_id": "\xff\xfe"}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_request"


# -- features --------------------------------------------------------------------------------------------------


def test_a_feature_key_repeated_is_refused_never_compounded(jive_account, api_client_for):
    response = _post(api_client_for(jive_account), _event("r1", features=["optillm_cot"] * 50))
    body = _assert_refused_alone(response, "duplicate_feature")
    assert "optillm_cot" in body["message"]
    assert Wallet.objects.get(account=jive_account).balance == Decimal(10000)


def test_a_feature_used_several_times_says_so_with_a_quantity(jive_account, api_client_for):
    client = api_client_for(jive_account)
    once = _post(client, _event("once", features=["optillm_cot"])).json()["results"][0]
    assert once["status"] == "recorded"
    plain = _post(client, _event("plain")).json()["results"][0]
    # the multiplier applies once: 1.3 x the plain charge
    assert Decimal(once["charge_usd"]) == Decimal(plain["charge_usd"]) * Decimal("1.3")
    # a quantity only means something for a per-use feature; elsewhere it is refused, not ignored
    response = _post(client, _event("q", features=[{"key": "optillm_cot", "quantity": 3}]))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_usage"
    counted = _post(client, _event("rag", features=[{"key": "rag_search", "quantity": 3}]))
    assert counted.status_code == 201


def test_authorize_refuses_repeated_features_and_bad_text_with_400(jive_account, api_client_for):
    client = api_client_for(jive_account)
    base = {"request_id": "a1", "model": "qwen-3-32b", "input_tokens": 10, "max_output_tokens": 10}
    for body in (
        {**base, "features": ["optillm_cot", "optillm_cot"]},
        {**base, "features": [f"rag{NUL}"]},
        {**base, "features": [{"key": "rag_search", "quantity": "1e30"}]},
        {**base, "request_id": f"a{NUL}"},
        {**base, "model": f"qwen{SURROGATE}"},
        {**base, "operation_type": f"chat{NUL}"},
        {**base, "images": 10**10},
        {**base, "input_tokens": True},
    ):
        response = client.post(
            "/api/usage/authorize", json.dumps(body, ensure_ascii=True), content_type="application/json"
        )
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"] == "invalid"
    allowed = client.post(
        "/api/usage/authorize", {**base, "features": [{"key": "rag_search", "quantity": 2}]}, format="json"
    )
    assert allowed.json()["allowed"] is True


def test_estimate_refuses_nul_and_surrogates_with_400(jive_account, api_client_for):
    client = api_client_for(jive_account)
    for body in ({"model": "qwen-3-32b", "text": f"a{NUL}"}, {"model": f"q{SURROGATE}", "text": "a"}):
        response = client.post("/api/usage/estimate", json.dumps(body), content_type="application/json")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid"
    messages = {"model": "qwen-3-32b", "messages": [{"role": "user", "content": f"a{SURROGATE}{NUL}"}]}
    response = client.post("/api/usage/estimate", json.dumps(messages), content_type="application/json")
    assert response.status_code == 200


# -- a batch ---------------------------------------------------------------------------------------------------


def test_one_poisoned_event_does_not_take_999_good_ones_down(jive_account, api_client_for):
    events = [_event(f"good-{n}", input_tokens=100, output_tokens=0) for n in range(999)]
    events.insert(500, _event("poison", user=f"eve{NUL}"))
    response = _post(api_client_for(jive_account), {"events": events})
    assert response.status_code == 200
    body = response.json()
    assert (body["recorded"], body["rejected"]) == (999, 1)
    assert body["results"][500] == {
        "request_id": "poison", "status": "rejected", "cost_usd": None, "charge_usd": None, "credits": None,
        "error": {"code": "invalid_text", "message": body["results"][500]["error"]["message"]},
        "over_reservation": False,
    }  # fmt: skip
    assert UsageEvent.objects.filter(account=jive_account).count() == 999
    assert BillingPeriod.objects.get(account=jive_account).messages == 999
    kept = RejectedEvent.objects.get(request_id="poison")
    assert json.loads(kept.raw_payload)["user"] == f"eve{NUL}"


def test_every_kind_of_bad_event_in_one_batch_leaves_the_good_ones_recorded(jive_account, api_client_for):
    bad = [
        _event("b1", user=NUL),
        _event("b2", metadata={SURROGATE: "x"}),
        _event("b3", images=10**10),
        _event("b4", occurred_at="2026-02-30T00:00:00Z"),
        _event("b5", features=["rag_search", "rag_search"]),
        _event(f"b6{SURROGATE}"),
        "not an event",
        [NUL],
        {"request_id": NUL * 10_000},
    ]
    good = [_event(f"g{n}") for n in range(30)]  # past the COPY threshold on PostgreSQL
    events = [e for pair in zip(good, bad + [None] * len(good), strict=False) for e in pair if e is not None]
    response = _post(api_client_for(jive_account), {"events": events})
    assert response.status_code == 200
    body = response.json()
    assert (body["recorded"], body["rejected"]) == (30, len(bad))
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {f"g{n}" for n in range(30)}
    assert RejectedEvent.objects.count() == len(bad)
    assert {r["request_id"] for r in body["results"] if r["status"] == "rejected"} >= {"b1", "b2", "b6\ufffd"}


def test_a_row_the_database_refuses_is_rejected_and_the_rest_recorded(jive_account, api_client_for, monkeypatch):
    # let a lone surrogate past the checks, as a future field without a check would: the database (or its
    # driver) refuses that row; the batch is retried without it
    monkeypatch.setattr(event_checks, "_check_text", lambda value, name: None)
    events = [_event(f"g{n}") for n in range(25)]
    events.insert(7, _event("refused", user=f"u{SURROGATE}"))
    for batch in (events, events[5:10]):  # COPY path and single INSERT on PostgreSQL
        UsageEvent.objects.all().delete()
        response = _post(api_client_for(jive_account), {"events": batch})
        assert response.status_code == 200
        body = response.json()
        assert body["rejected"] == 1
        assert body["recorded"] == len(batch) - 1
        refused = next(r for r in body["results"] if r["status"] == "rejected")
        assert (refused["request_id"], refused["error"]["code"]) == ("refused", "not_storable")
        assert UsageEvent.objects.count() == len(batch) - 1
    assert RejectedEvent.objects.filter(error_code="not_storable").count() == 2
    period = BillingPeriod.objects.get(account=jive_account)
    assert period.messages == 25 + 4  # both batches' recorded events, and never the refused one


def test_a_rejected_single_event_answers_in_the_contract_shape_even_with_bad_text(jive_account, api_client_for):
    response = _post(api_client_for(jive_account), _event(f"id{SURROGATE}{NUL}", model=NUL))
    body = response.json()
    assert response.status_code == 400
    assert body["results"][0]["request_id"] == "id\ufffd\ufffd"
    assert set(body) >= {"error", "message", "fields", "results"}


def test_a_dead_letter_with_unstorable_text_can_be_replayed_as_shown(jive_account, api_client_for):
    from usage.services.replay import rejected_event_replay

    _post(api_client_for(jive_account), _event("r1", user=f"eve{NUL}"))
    kept = RejectedEvent.objects.get()
    assert kept.payload["user"] == "eve\ufffd"
    assert rejected_event_replay(rejected=kept) == "recorded"
    assert UsageEvent.objects.get(request_id="r1").user == "eve\ufffd"
    kept.refresh_from_db()
    assert kept.status == RejectedEvent.Status.REPLAYED


def test_a_choice_field_takes_only_its_words():
    from usage.events import Choice, EventRefused, Limits

    tier = Choice("service_tier", ("default", "batch", "flex", "priority"), default="default")
    limits = Limits(metadata_max_bytes=4096)
    assert tier.read({}, limits) == "default"
    assert tier.read({"service_tier": "batch"}, limits) == "batch"
    for bad in ("Batch", f"batch{NUL}", 1, True, ["batch"]):
        with pytest.raises(EventRefused) as refused:
            tier.read({"service_tier": bad}, limits)
        assert refused.value.code == "invalid_event"
        assert NUL not in refused.value.message


def test_a_batch_recorded_again_carefully_settles_its_reservations_once(jive_account, api_client_for, monkeypatch):
    """The careful retry (a row the database refuses) locks and settles the authorized calls' reservations as the
    first attempt would have: each hold released once, each reservation settled."""
    monkeypatch.setattr(event_checks, "_check_text", lambda value, name: None)
    client = api_client_for(jive_account)
    for request_id in ("g1", "g2"):
        body = {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": 1000, "max_output_tokens": 500}
        assert client.post("/api/usage/authorize", body, format="json").json()["allowed"] is True
    assert Wallet.objects.get(account=jive_account).held > 0
    before = Wallet.objects.get(account=jive_account).balance
    events = [_event("g1"), _event("refused", user=f"u{SURROGATE}"), _event("g2")]
    body = _post(client, {"events": events}).json()
    assert (body["recorded"], body["rejected"]) == (2, 1)
    wallet = Wallet.objects.get(account=jive_account)
    assert wallet.held == 0
    assert wallet.balance == before - sum(Decimal(r["credits"]) for r in body["results"] if r["status"] == "recorded")
    assert set(jive_account.reservations.values_list("status", flat=True)) == {"settled"}
