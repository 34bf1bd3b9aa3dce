"""POST /api/stripe/webhook with bodies no Stripe event has: every one is refused with a JSON 4xx and nothing is
stored, never a 500. The events are correctly signed, so the refusal is about the body, not the signature."""

from __future__ import annotations

from typing import Any

import pytest

from billing.models import StripeEvent
from tests.billing.stripe_samples import post_event, sample, signature, stripe_recorder  # noqa: F401

pytestmark = pytest.mark.usefixtures("catalog", "celery_eager", "stripe_recorder")


def _refused(response: Any, code: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == code
    assert set(body) == {"error", "message", "fields"}
    assert not StripeEvent.objects.exists()


def test_a_body_that_is_not_utf8_with_a_signature_header_is_400(client):
    body = b'{"id": "evt_1", "type": "\xff\xfe"}'
    response = client.post(
        "/api/stripe/webhook", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature(body)
    )
    _refused(response, "invalid_signature")
    assert "UTF-8" in response.json()["message"]


@pytest.mark.parametrize(
    "created",
    [-1, 253402387200, 10**20, -(10**20), 1.5, True, "1790812805"],
    ids=["negative", "after-9999", "huge", "huge-negative", "float", "bool", "string"],
)
def test_a_created_outside_what_a_time_can_hold_is_400(client, created):
    response = post_event(client, sample("customer.subscription.updated", created=created))
    _refused(response, "invalid_event")


@pytest.mark.parametrize(
    "top",
    [
        {"id": "evt_" + "x" * 300},
        {"type": "customer." + "x" * 200},
        {"id": ""},
        {"id": "evt_\x00nul"},
        {"type": "invoice.paid\x00"},
        {"id": "evt_\nnewline"},
    ],
    ids=["long-id", "long-type", "empty-id", "nul-in-id", "nul-in-type", "control-in-id"],
)
def test_ids_and_types_the_inbox_cannot_hold_are_400(client, top):
    response = post_event(client, sample("customer.subscription.updated", **top))
    _refused(response, "invalid_event")


@pytest.mark.parametrize(
    "raw",
    ['"a\\u0000b"', '"\\ud800"', '"\\udc00 lone"'],
    ids=["nul", "high-surrogate", "low-surrogate"],
)
@pytest.mark.parametrize("where", ["value", "key"])
def test_nul_and_lone_surrogates_anywhere_in_the_event_are_400(client, raw, where):
    event = sample("customer.subscription.updated")
    body = json_with(event, raw, where=where)
    response = post_event(client, body)
    _refused(response, "invalid_event")
    assert "cannot be stored" in response.json()["message"]


def test_a_deeply_nested_body_is_400(client):
    body = b"[" * 100_000 + b"]" * 100_000
    response = post_event(client, body)
    _refused(response, "invalid_event")


def test_a_body_over_the_upload_limit_is_a_json_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    event = sample("customer.subscription.updated")
    event["data"]["object"]["metadata"] = {"padding": "x" * (2 * 1024 * 1024)}
    response = post_event(client, event)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert not StripeEvent.objects.exists()


def test_a_get_is_a_json_405(client):
    response = client.get("/api/stripe/webhook")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert response["Allow"] == "POST"


def test_a_long_object_id_and_api_version_are_stored_cut_to_their_columns(client):
    event = sample("customer.subscription.updated", api_version="v" * 80)
    event["data"]["object"]["id"] = "sub_" + "y" * 400
    response = post_event(client, event)
    assert response.status_code == 200, response.content
    stored = StripeEvent.objects.get()
    assert stored.object_id == ("sub_" + "y" * 400)[:255]
    assert stored.api_version == "v" * 50
    assert stored.payload["data"]["object"]["id"] == "sub_" + "y" * 400


def json_with(event: dict[str, Any], raw: str, *, where: str) -> bytes:
    """The event as JSON with one extra metadata entry whose value (or key) is the raw JSON string `raw`."""
    import json

    text = json.dumps(event)
    entry = f'"note": {raw}' if where == "value" else f'{raw}: "note"'
    return text.replace('"data": {', '"data": {' + entry + ", ", 1).encode()
