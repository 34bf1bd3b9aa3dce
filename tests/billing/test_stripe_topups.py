"""Card top-ups: POST /api/billing/topups -> a pending top-up at today's rate and a Checkout page; the signed
`checkout.session.completed` webhook credits it once."""

# ruff: noqa: F811 - the shared pytest fixtures are imported from tests.billing.stripe_samples

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from billing.models import Account, AutoRecharge, LedgerEntry, StripeEvent, TopUp, Wallet
from pricing.services import exchange_rate_set
from tests.billing.stripe_samples import (  # noqa: F401
    Recorded,
    RecordingStripe,
    alerts_sent,
    post_event,
    sample,
    stripe_off,
    stripe_recorder,
)
from tests.factories import AccountFactory

pytestmark = pytest.mark.usefixtures("catalog")


def _checkout_route(stripe: RecordingStripe) -> None:
    def create(req: Recorded) -> dict[str, Any]:
        session_id = stripe.next_id("cs")
        return {"id": session_id, "object": "checkout.session", "url": f"https://checkout.stripe.com/c/pay/{session_id}",
                "mode": req.form["mode"]}  # fmt: skip

    stripe.on("POST", "/v1/checkout/sessions", create)


def _completed(topup: TopUp, **session: Any) -> dict[str, Any]:
    event = sample(
        "checkout.session.completed",
        replacements={"<topup id>": str(topup.pk), "<account id>": str(topup.account_id)},
    )
    event["data"]["object"].update(
        {"id": topup.stripe_checkout_session_id, "amount_total": topup.amount_cents, **session}
    )
    return event


def _balance(account: Account) -> Decimal:
    return Wallet.objects.get(account=account).balance


# an error answer marks the request's transaction for rollback (DRF), which in a test is the test's own: these
# tests that look at the database after an error run with real transactions
@pytest.mark.django_db(transaction=True)
def test_without_stripe_topups_answer_503(stripe_off, api_client_for):
    account = AccountFactory.create()
    response = api_client_for(account).post("/api/billing/topups", {"amount_usd": "10"}, format="json")
    assert response.status_code == 503
    assert response.json() == {"error": "stripe_not_configured", "message": "Stripe is not configured", "fields": {}}
    assert not TopUp.objects.exists()
    status = api_client_for(account).get("/api/billing/stripe").json()
    assert (status["enabled"], status["message"]) == (False, "Stripe is not configured")


@pytest.mark.parametrize(
    ("amount", "message"),
    [("4.99", "between 5 and 500"), ("500.01", "between 5 and 500"), ("0", "between"), ("-5", "between")],
)
def test_amount_is_checked_against_min_and_max(stripe_recorder, amount, message, api_client_for):
    account = AccountFactory.create()
    response = api_client_for(account).post("/api/billing/topups", {"amount_usd": amount}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_amount"
    assert message in response.json()["message"]
    assert stripe_recorder.requests == []


def test_topup_creates_a_pending_topup_and_a_checkout_session(stripe_recorder, api_client_for):
    _checkout_route(stripe_recorder)
    account = AccountFactory.create(name="Shop B", owner_email="b@shop.test")
    response = api_client_for(account).post("/api/billing/topups", {"amount_usd": "10"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    topup = TopUp.objects.get()
    assert body == {
        "topup_id": topup.pk,
        "amount_usd": "10",
        "credits": "100000",  # 10 USD at 10,000 credits per USD
        "rate": "10000",
        "checkout_url": topup.checkout_url,
        "status": "pending",
    }
    assert topup.checkout_url.startswith("https://checkout.stripe.com/c/pay/cs_test")
    assert (topup.status, topup.amount_cents, topup.credits) == ("pending", 1000, Decimal(100000))
    assert stripe_recorder.calls() == [
        ("POST", "/v1/customers", f"customer:{account.pk}"),
        ("POST", "/v1/checkout/sessions", f"topup:{topup.pk}"),
    ]
    assert stripe_recorder.only("POST", "/v1/checkout/sessions").form == {
        "mode": "payment",
        "customer": Account.objects.get(pk=account.pk).stripe_customer_id,
        "client_reference_id": str(topup.pk),
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "1000",
        "line_items[0][price_data][product_data][name]": "100000 TokenLedger credits",
        "metadata[topup_id]": str(topup.pk),
        "metadata[account_id]": str(account.pk),
        "payment_intent_data[metadata][topup_id]": str(topup.pk),
        "payment_intent_data[metadata][account_id]": str(account.pk),
        "success_url": "http://127.0.0.1:8000/?checkout=success&session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:8000/?checkout=canceled",
    }
    assert _balance(account) == 0  # nothing is credited before Stripe says it is paid
    detail = api_client_for(account).get(f"/api/billing/topups/{topup.pk}").json()
    assert (detail["status"], detail["credits"]) == ("pending", "100000")


def test_completed_checkout_credits_once_at_the_rate_fixed_at_creation(
    stripe_recorder, client, django_capture_on_commit_callbacks, celery_eager, api_client_for
):
    _checkout_route(stripe_recorder)
    account = AccountFactory.create()
    api_client_for(account).post("/api/billing/topups", {"amount_usd": "25"}, format="json")
    topup = TopUp.objects.get()
    exchange_rate_set(currency="CREDITS", rate="20000", reason="price change after the top-up started")
    event = _completed(topup, amount_total=2500)
    with django_capture_on_commit_callbacks(execute=True):
        first = post_event(client, event)
    with django_capture_on_commit_callbacks(execute=True):
        again = post_event(client, event)
    with django_capture_on_commit_callbacks(execute=True):  # another event about the same session
        other = post_event(client, {**event, "id": "evt_demo_1_redelivered"})
    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert other.status_code == 200
    assert _balance(account) == Decimal(250000)  # 25 USD at 10,000/USD, not the 20,000 in force now
    entry = LedgerEntry.objects.get(kind="topup")
    assert (entry.reference, entry.rate, entry.usd_amount) == (
        topup.stripe_checkout_session_id,
        Decimal(10000),
        Decimal(25),
    )
    topup.refresh_from_db()
    assert (topup.status, topup.ledger_entry_id, topup.stripe_payment_intent_id) == ("paid", entry.pk, "pi_demo_1")
    assert StripeEvent.objects.filter(status="succeeded").count() == 2
    assert StripeEvent.objects.get(event_id="evt_demo_1").attempts == 1


def test_a_session_that_does_not_match_the_topup_fails_and_credits_nothing(
    stripe_recorder, client, django_capture_on_commit_callbacks, celery_eager, api_client_for
):
    _checkout_route(stripe_recorder)
    account = AccountFactory.create()
    api_client_for(account).post("/api/billing/topups", {"amount_usd": "10"}, format="json")
    topup = TopUp.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, _completed(topup, amount_total=100))
    event = StripeEvent.objects.get()
    assert event.status == "failed"
    assert "paid 100 USD, top-up" in event.last_error
    assert _balance(account) == 0


def test_an_unpaid_session_waits(
    stripe_recorder, client, django_capture_on_commit_callbacks, celery_eager, api_client_for
):
    _checkout_route(stripe_recorder)
    account = AccountFactory.create()
    api_client_for(account).post("/api/billing/topups", {"amount_usd": "10"}, format="json")
    topup = TopUp.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, _completed(topup, payment_status="unpaid"))
    assert StripeEvent.objects.get().outcome.endswith("waiting")
    assert _balance(account) == 0


def test_saving_the_card_keeps_it_for_auto_recharge(
    stripe_recorder, client, django_capture_on_commit_callbacks, celery_eager, api_client_for
):
    _checkout_route(stripe_recorder)
    stripe_recorder.on("GET", "/v1/payment_intents/pi_demo_1",
                       {"id": "pi_demo_1", "object": "payment_intent", "status": "succeeded", "payment_method": "pm_saved"})  # fmt: skip
    account = AccountFactory.create()
    api_client_for(account).post(
        "/api/billing/topups", {"amount_usd": "10", "save_payment_method": True}, format="json"
    )
    topup = TopUp.objects.get()
    assert (
        stripe_recorder.only("POST", "/v1/checkout/sessions").form["payment_intent_data[setup_future_usage]"]
        == "off_session"
    )
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, _completed(topup))
    row = AutoRecharge.objects.get(account=account)
    assert (row.stripe_payment_method_id, row.enabled) == ("pm_saved", False)


@pytest.mark.django_db(transaction=True)
def test_stripe_down_while_starting_a_topup_answers_503_and_marks_it_failed(stripe_recorder, api_client_for):
    stripe_recorder.on(
        "POST", "/v1/checkout/sessions", lambda _req: (503, {"error": {"type": "api_error", "message": "down"}})
    )
    account = AccountFactory.create()
    response = api_client_for(account).post("/api/billing/topups", {"amount_usd": "10"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"] == "stripe_unavailable"
    assert TopUp.objects.get().status == "failed"


def test_expired_checkout_cancels_the_pending_topup(
    stripe_recorder, client, django_capture_on_commit_callbacks, celery_eager, api_client_for
):
    _checkout_route(stripe_recorder)
    account = AccountFactory.create()
    api_client_for(account).post("/api/billing/topups", {"amount_usd": "10"}, format="json")
    topup = TopUp.objects.get()
    event = _completed(topup, status="expired", payment_status="unpaid")
    event.update({"id": "evt_expired", "type": "checkout.session.expired"})
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, event)
    topup.refresh_from_db()
    assert topup.status == "canceled"
