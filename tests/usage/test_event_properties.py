"""Whatever a client puts in any text or number field of an event, POST /api/usage/events never answers 500, a good
event of the same batch is always recorded and a refused one is always kept as a dead letter. Runs on SQLite and
on PostgreSQL, where the batch is past the COPY threshold."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests.factories import AccountFactory
from usage.event_store import COPY_FROM_ROWS, _amounts_text
from usage.models import RejectedEvent, UsageEvent

# any character, lone surrogates and NUL included (hypothesis leaves surrogates out unless told)
any_char = st.characters(exclude_categories=())
any_text = st.one_of(
    st.text(any_char, max_size=40),
    st.sampled_from(["\x00", "\udc00", "\ud800x", "a\x00b", "", " ", "2026-02-30T00:00:00Z", "1e400", "NaN"]),
    st.builds(lambda char, n: char * n, any_char, st.integers(100, 200_000)),  # huge
)
any_number = st.one_of(
    st.integers(-(2**80), 2**80),
    st.sampled_from([2**31, 2**63, 10**10, 10**10 + 1, -1, 0]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
any_value = st.one_of(any_text, any_number, st.none(), st.just([]), st.just({}), st.lists(any_text, max_size=3))


def _place(name: str, value: Any) -> dict[str, Any]:
    """Fields of an event with `value` put at `name` (a field, or a place inside features or metadata)."""
    if name == "feature key":
        return {"features": [value]}
    if name == "feature object key":
        return {"features": [{"key": value}]}
    if name == "feature quantity":
        return {"features": [{"key": "rag_search", "quantity": value}]}
    if name == "metadata key":
        return {"metadata": {str(value): 1}}
    if name == "metadata value":
        return {"metadata": {"a": {"b": [value]}}}
    return {name: value}


PLACES = [
    "request_id", "model", "user", "operation_type", "conversation_id", "occurred_at",
    "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "images", "multiplier",
    "features", "metadata", "feature key", "feature object key", "feature quantity", "metadata key", "metadata value",
]  # fmt: skip
_ids = itertools.count()


def _good(prefix: str, n: int) -> dict[str, Any]:
    return {"request_id": f"{prefix}-{n}", "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500}


def _post(client: APIClient, body: Any):
    return client.post(
        "/api/usage/events", json.dumps(body, ensure_ascii=True, default=str), content_type="application/json"
    )


@pytest.fixture
def client_and_account(catalog):
    account = AccountFactory.create(plan="jive", credits="1000000")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")  # type: ignore[attr-defined]
    return client, account


@pytest.mark.django_db
@settings(
    max_examples=100, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
@given(place=st.sampled_from(PLACES), value=any_value, position=st.integers(0, COPY_FROM_ROWS + 5))
def test_any_value_in_any_field_never_fails_the_batch(client_and_account, place, value, position):
    client, account = client_and_account
    prefix = f"p{next(_ids)}"
    odd = {**_good(f"{prefix}-odd", 0), **_place(place, value)}
    good = [_good(prefix, n) for n in range(COPY_FROM_ROWS + 5 if connection.vendor == "postgresql" else 4)]
    events = [*good]
    events.insert(min(position, len(good)), odd)
    stored_before, kept_before = UsageEvent.objects.count(), RejectedEvent.objects.count()

    response = _post(client, {"events": events})

    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["results"]) == len(events)
    good_results = [
        r for r in body["results"] if r["request_id"].startswith(f"{prefix}-") and "-odd-" not in r["request_id"]
    ]
    assert [r["status"] for r in good_results] == ["recorded"] * len(good)
    assert UsageEvent.objects.filter(account=account, request_id__in=[e["request_id"] for e in good]).count() == len(
        good
    )
    # the odd event: recorded, or rejected with a code and kept; never lost, never both
    assert (body["recorded"], body["rejected"]) in {(len(good) + 1, 0), (len(good), 1)}
    assert UsageEvent.objects.count() - stored_before == body["recorded"]
    assert RejectedEvent.objects.count() - kept_before == body["rejected"]
    if body["rejected"]:
        rejected = next(r for r in body["results"] if r["status"] == "rejected")
        assert rejected["error"]["code"] and rejected["error"]["message"]


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
@given(place=st.sampled_from(PLACES), value=any_value)
def test_any_value_in_any_field_of_a_single_event_is_a_201_or_a_400(client_and_account, place, value):
    client, _ = client_and_account
    event = {**_good(f"s{next(_ids)}", 0), **_place(place, value)}
    kept_before = RejectedEvent.objects.count()

    response = _post(client, event)

    assert response.status_code in {200, 201, 400}, response.content
    body = response.json()
    if response.status_code == 400:
        assert body["error"] and body["message"] and body["fields"] == {}
        assert RejectedEvent.objects.count() == kept_before + 1
    else:
        assert Decimal(body["results"][0]["credits"]) >= 0


@given(
    amounts=st.dictionaries(st.text(any_char, max_size=12), st.decimals(allow_nan=False, allow_infinity=False)),
    other=st.one_of(st.none(), st.integers(), st.text(max_size=3), st.floats(allow_nan=False)),
)
def test_a_dict_of_amounts_is_written_as_djangos_json_encoder_writes_it(amounts, other):
    """The event store writes a breakdown's text itself (usage.event_store._amounts_text); it is the encoder's."""
    assert _amounts_text(amounts) == DjangoJSONEncoder().encode(amounts)
    assert _amounts_text({**amounts, "other": other}) is None
    assert _amounts_text([*amounts.values()]) is None
