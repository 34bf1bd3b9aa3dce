"""Stripe subscriptions over the API: subscribe (Checkout), change the price, cancel; 503 without Stripe."""

# ruff: noqa: F811 - the shared pytest fixtures are imported from tests.billing.stripe_samples

from __future__ import annotations

from typing import Any

import pytest

from billing.models import Account, AuditEntry, Subscription
from tests.billing.stripe_samples import (  # noqa: F401
    Recorded,
    RecordingStripe,
    stripe_off,
    stripe_recorder,
)
from tests.factories import AccountFactory

pytestmark = pytest.mark.usefixtures("catalog")


def _subscribed(plan: str = "starter") -> Account:
    account = AccountFactory.create(plan=plan, owner_email="o@sub.test")
    Account.objects.filter(pk=account.pk).update(stripe_customer_id="cus_sub")
    Subscription.objects.filter(account=account).update(
        stripe_subscription_id="sub_live", stripe_price_id="price_starter_monthly"
    )
    account.refresh_from_db()
    return account


def _subscription_routes(stripe: RecordingStripe) -> None:
    stripe.on("GET", "/v1/subscriptions/sub_live", {
        "id": "sub_live", "object": "subscription", "status": "active",
        "items": {"object": "list", "data": [{"id": "si_live", "price": {"id": "price_starter_monthly"}}]},
    })  # fmt: skip

    def update(req: Recorded) -> dict[str, Any]:
        return {"id": "sub_live", "object": "subscription", "status": "active",
                "cancel_at_period_end": req.form.get("cancel_at_period_end") == "true"}  # fmt: skip

    stripe.on("POST", "/v1/subscriptions/sub_live", update)
    stripe.on(
        "DELETE", "/v1/subscriptions/sub_live", {"id": "sub_live", "object": "subscription", "status": "canceled"}
    )


def test_subscribing_without_a_stripe_subscription_opens_checkout(stripe_recorder, api_client_for):
    stripe_recorder.on("POST", "/v1/checkout/sessions",
                       {"id": "cs_sub", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_sub"})  # fmt: skip
    account = AccountFactory.create(plan="free", owner_email="o@sub.test")
    response = api_client_for(account).post(
        "/api/billing/subscription", {"plan": "pro", "interval": "year"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json() == {"action": "checkout", "checkout_url": "https://checkout.stripe.com/c/pay/cs_sub",
                               "stripe_subscription_id": "", "stripe_status": ""}  # fmt: skip
    audit = AuditEntry.objects.get(action="stripe_subscription_checkout")
    session = stripe_recorder.only("POST", "/v1/checkout/sessions")
    assert session.idempotency_key == f"subscription-checkout:{audit.pk}"
    customer = Account.objects.get(pk=account.pk).stripe_customer_id
    assert session.form == {
        "mode": "subscription", "customer": customer, "client_reference_id": str(account.pk),
        "line_items[0][price]": "price_pro_yearly", "line_items[0][quantity]": "1",
        "metadata[account_id]": str(account.pk), "metadata[plan]": "pro",
        "subscription_data[metadata][account_id]": str(account.pk), "subscription_data[metadata][plan]": "pro",
        "success_url": "http://127.0.0.1:8000/?checkout=success&session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:8000/?checkout=canceled",
    }  # fmt: skip
    # the local plan waits for Stripe's event
    assert Subscription.objects.get(account=account).plan.code == "free"


def test_a_plan_without_a_stripe_price_is_refused(stripe_recorder, api_client_for):
    account = AccountFactory.create(plan="free")
    response = api_client_for(account).post("/api/billing/subscription", {"plan": "jive"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "no_stripe_price"
    assert stripe_recorder.requests == []


def test_changing_the_plan_moves_the_item_to_the_new_price(stripe_recorder, api_client_for):
    _subscription_routes(stripe_recorder)
    account = _subscribed()
    response = api_client_for(account).post("/api/billing/subscription", {"plan": "professional"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["action"] == "changed"
    audit = AuditEntry.objects.get(action="stripe_subscription_change")
    assert stripe_recorder.calls() == [
        ("GET", "/v1/subscriptions/sub_live", None),
        ("POST", "/v1/subscriptions/sub_live", f"subscription-change:{audit.pk}"),
    ]
    assert stripe_recorder.requests[1].form == {
        "items[0][id]": "si_live", "items[0][price]": "price_professional_monthly",
        "proration_behavior": "create_prorations", "cancel_at_period_end": "false",
    }  # fmt: skip
    # the same change asked again is a new request (a new key), which Stripe applies as a no-op
    api_client_for(account).post("/api/billing/subscription", {"plan": "professional"}, format="json")
    keys = [r.idempotency_key for r in stripe_recorder.requests if r.method == "POST"]
    assert len(set(keys)) == 2


def test_cancel_at_period_end_and_now(stripe_recorder, api_client_for):
    _subscription_routes(stripe_recorder)
    account = _subscribed()
    response = api_client_for(account).delete("/api/billing/subscription", format="json")
    assert response.json()["action"] == "cancel_scheduled"
    later = stripe_recorder.requests[-1]
    assert (later.method, later.form) == ("POST", {"cancel_at_period_end": "true"})
    assert (
        later.idempotency_key == f"subscription-cancel:{AuditEntry.objects.get(action='stripe_subscription_cancel').pk}"
    )
    now = api_client_for(account).delete("/api/billing/subscription", {"at_period_end": False}, format="json")
    assert now.json() == {"action": "canceled", "checkout_url": "", "stripe_subscription_id": "sub_live",
                          "stripe_status": "canceled"}  # fmt: skip
    assert stripe_recorder.requests[-1].method == "DELETE"


def test_get_shows_the_local_subscription(stripe_recorder, api_client_for):
    account = _subscribed()
    body = api_client_for(account).get("/api/billing/subscription").json()
    assert (body["plan"], body["status"], body["stripe_subscription_id"]) == ("starter", "active", "sub_live")


@pytest.mark.django_db(transaction=True)
def test_cancel_without_a_stripe_subscription_is_a_conflict(stripe_recorder, api_client_for):
    account = AccountFactory.create(plan="free")
    response = api_client_for(account).delete("/api/billing/subscription", format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "subscription_state"


def test_without_stripe_subscribing_answers_503(stripe_off, api_client_for):
    account = AccountFactory.create(plan="free")
    response = api_client_for(account).post("/api/billing/subscription", {"plan": "pro"}, format="json")
    assert (response.status_code, response.json()["message"]) == (503, "Stripe is not configured")
