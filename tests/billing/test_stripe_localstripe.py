"""Against localstripe (a stateful local Stripe) on 127.0.0.1: customers, a plan-based subscription whose webhooks
localstripe signs and delivers to the live test server, overage items + invoice + payment for a subscribed customer,
and declined cards.

localstripe speaks an old API version (its events say 2017-08-15: the period on the subscription, `plan` instead of
`price`), has no Checkout, no Prices, no idempotency keys and no invoice finalization; those are covered with signed
samples and the recording client in the other test_stripe_* modules.
"""

# ruff: noqa: F811 - the shared pytest fixtures are imported from tests.billing.stripe_samples

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing import stripe_gateway as gateway
from billing import webhook_views
from billing.models import (
    Account,
    AutoRecharge,
    BillingPeriod,
    Invoice,
    OverageBilling,
    StripeEvent,
    Subscription,
    TopUp,
    Wallet,
)
from billing.services.overage import overage_invoice_send
from billing.services.periods import period_close, period_current
from billing.services.stripe_customers import customer_ensure
from billing.services.topups import auto_recharge_configure, auto_recharge_run
from tests.billing.stripe_samples import DB_LOCK, WEBHOOK_SECRET, alerts_sent, localstripe_url, wait_for  # noqa: F401
from tests.factories import AccountFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("catalog", "celery_eager")]

WEBHOOK_ID = "tokenledger-tests"


def _config(base: str, method: str, path: str, form: dict[str, Any] | None = None) -> None:
    """localstripe's own test endpoints (/_config/...), on 127.0.0.1."""
    data = urllib.parse.urlencode(form or {}, doseq=True).encode() if form is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)  # noqa: S310 - loopback only
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200


@pytest.fixture
def localstripe(localstripe_url: str, settings: Any) -> Iterator[str]:
    """Stripe configured against an emptied localstripe."""
    _config(localstripe_url, "DELETE", "/_config/data")
    settings.STRIPE_SECRET_KEY = "sk_test_localstripe"
    settings.STRIPE_API_BASE = localstripe_url
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    yield localstripe_url


@pytest.fixture
def webhooks_to_live_server(localstripe: str, live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """localstripe delivers its signed events to this test's live server; the live server stores and processes
    them (Celery eager) one at a time under DB_LOCK, which the test also takes to look at the database."""
    real_store = webhook_views.stripe_event_store

    def store_locked(**kwargs: Any) -> Any:
        with DB_LOCK:
            return real_store(**kwargs)

    monkeypatch.setattr(webhook_views, "stripe_event_store", store_locked)
    port = urllib.parse.urlsplit(live_server.url).port
    _config(localstripe, "POST", f"/_config/webhooks/{WEBHOOK_ID}",
            {"url": f"http://127.0.0.1:{port}/api/stripe/webhook", "secret": WEBHOOK_SECRET})  # fmt: skip
    yield
    # stop deliveries (localstripe has no "delete webhook": listen to no real event type)
    _config(localstripe, "POST", f"/_config/webhooks/{WEBHOOK_ID}",
            {"url": f"http://127.0.0.1:{port}/api/stripe/webhook", "secret": WEBHOOK_SECRET,
             "events[]": ["tokenledger.none"]})  # fmt: skip


def _subscribe_in_localstripe(
    account: Account, *, plan: str = "price_pro_monthly", amount: int = 1500
) -> dict[str, Any]:
    """A card on file and a subscription to a localstripe plan (localstripe knows plans, not prices)."""
    customer_id = customer_ensure(account=account)
    client = gateway.stripe_client()
    product = client.v1.products.create(params={"name": "TokenLedger Pro"})
    client.v1.plans.create(params={"id": plan, "amount": amount, "currency": "usd", "interval": "month",
                                   "product": product.id})  # fmt: skip
    card = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer_id})
    client.v1.customers.update(customer_id, params={"invoice_settings": {"default_payment_method": card.id}})
    subscription = client.v1.subscriptions.create(params={"customer": customer_id, "items": [{"plan": plan}]})
    return subscription.to_dict()


def _succeeded(event_type: str, object_id: str = "") -> Any:
    events = StripeEvent.objects.filter(type=event_type, status="succeeded")
    if object_id:
        events = events.filter(object_id=object_id)
    return events.first()


def test_customer_created_on_first_need_and_kept_in_step(localstripe):
    account = AccountFactory.create(name="Local shop", owner_email="owner@local.test")
    customer_id = customer_ensure(account=account)
    assert customer_id.startswith("cus_")
    client = gateway.stripe_client()
    remote = client.v1.customers.retrieve(customer_id).to_dict()
    assert (remote["name"], remote["email"], remote["metadata"]["account_id"]) == (
        "Local shop",
        "owner@local.test",
        str(account.pk),
    )
    Account.objects.filter(pk=account.pk).update(name="Local shop Ltd")
    account.refresh_from_db()
    assert customer_ensure(account=account) == customer_id
    assert client.v1.customers.retrieve(customer_id).name == "Local shop Ltd"
    assert len(client.v1.customers.list().data) == 1


def test_a_plan_subscription_is_kept_in_step_by_the_webhooks_localstripe_delivers(webhooks_to_live_server):
    with DB_LOCK:
        account = AccountFactory.create(plan="free", owner_email="owner@local.test")
    subscription = _subscribe_in_localstripe(account)
    assert subscription["status"] == "active"
    created = wait_for(lambda: _succeeded("customer.subscription.created", subscription["id"]),
                       what="customer.subscription.created processed")  # fmt: skip
    assert created.api_version == "2017-08-15"  # localstripe's version: read in its own shape
    wait_for(lambda: _succeeded("invoice.payment_succeeded"), what="invoice.payment_succeeded processed")
    with DB_LOCK:
        local = Subscription.objects.select_related("plan").get(account=account)
        assert local.plan.code == "pro"
        assert (local.status, local.stripe_subscription_id, local.stripe_price_id) == (
            "active",
            subscription["id"],
            "price_pro_monthly",
        )
        assert local.current_period_start == datetime.fromtimestamp(subscription["current_period_start"], tz=UTC)
        assert local.current_period_end == datetime.fromtimestamp(subscription["current_period_end"], tz=UTC)
        assert not StripeEvent.objects.filter(status="failed").exists()

    gateway.subscription_cancel_now(subscription_id=subscription["id"])
    wait_for(lambda: _succeeded("customer.subscription.deleted", subscription["id"]), what="deletion processed")
    with DB_LOCK:
        assert Subscription.objects.get(account=account).status == "canceled"


def test_overage_item_invoice_and_payment_for_a_subscribed_customer(webhooks_to_live_server):
    with DB_LOCK:
        account = AccountFactory.create(plan="starter", owner_email="owner@local.test",
                                        as_of=datetime(2026, 10, 1, tzinfo=UTC))  # fmt: skip
    _subscribe_in_localstripe(account, plan="price_starter_monthly", amount=500)
    wait_for(lambda: _succeeded("customer.subscription.created"), what="subscription in step")
    with DB_LOCK:
        period = period_current(account=account, as_of=datetime(2026, 10, 1, tzinfo=UTC))
        BillingPeriod.objects.filter(pk=period.pk).update(units_used=Decimal(3000))
        invoice = period_close(period=BillingPeriod.objects.get(pk=period.pk), as_of=datetime(2026, 11, 1, tzinfo=UTC))
        # the item and the invoice are made by the service; localstripe has no finalize, so it stops there
        outcome = overage_invoice_send(invoice=invoice, as_of=datetime(2026, 11, 1, tzinfo=UTC))
        cursor = OverageBilling.objects.get(invoice=invoice)
        assert outcome.status == "failed"
        assert cursor.step == "invoice_created"
        assert "Not Found" in cursor.last_error or "404" in cursor.last_error
        stripe_invoice_id = Invoice.objects.get(pk=invoice.pk).stripe_invoice_id
    remote = gateway.invoice_retrieve(invoice_id=stripe_invoice_id)
    lines = [(line["amount"], line["description"]) for line in remote["lines"]["data"]]
    assert (30, "Overage: 2000 messages x 0.00015 USD (2026-10-01 to 2026-11-01)") in lines
    paid = gateway.invoice_pay(invoice_id=stripe_invoice_id, idempotency_key=f"overage-pay:{invoice.pk}")
    assert paid["status"] == "paid"
    wait_for(lambda: Invoice.objects.get(pk=invoice.pk).status == "paid", what="the invoice marked paid by the webhook")
    with DB_LOCK:
        assert OverageBilling.objects.get(invoice=invoice).step == "paid"


def test_a_declined_card(localstripe, alerts_sent):
    account = AccountFactory.create(owner_email="owner@local.test", credits="1000")
    with pytest.raises(gateway.CardDeclined, match="declined"):
        auto_recharge_configure(account=account, enabled=True, threshold_credits="50000", amount_usd="10",
                                payment_method_id="pm_card_visa_chargeDeclined")  # fmt: skip
    assert not AutoRecharge.objects.filter(account=account).exclude(stripe_payment_method_id="").exists()

    # a card that attaches but is declined when charged off-session
    auto_recharge_configure(account=account, enabled=True, threshold_credits="50000", amount_usd="10",
                            payment_method_id="pm_card_chargeCustomerFail")  # fmt: skip
    outcome = auto_recharge_run(account_id=account.pk)
    assert (outcome.status, outcome.message) == ("failed", "Your card was declined.")
    topup = TopUp.objects.get(account=account)
    assert (topup.status, topup.failure_message) == ("failed", "Your card was declined.")
    assert AutoRecharge.objects.get(account=account).consecutive_failures == 1
    assert [a["reference"] for a in alerts_sent] == [f"recharge:{topup.pk}"]


def test_a_good_card_recharges(localstripe):
    account = AccountFactory.create(owner_email="owner@local.test", credits="1000")
    auto_recharge_configure(account=account, enabled=True, threshold_credits="50000", amount_usd="10",
                            payment_method_id="pm_card_visa")  # fmt: skip
    outcome = auto_recharge_run(account_id=account.pk)
    assert outcome.status == "paid"
    topup = TopUp.objects.get(account=account)
    remote = gateway.payment_intent_retrieve(payment_intent_id=topup.stripe_payment_intent_id)
    assert (remote["amount"], remote["status"], remote["metadata"]["topup_id"]) == (1000, "succeeded", str(topup.pk))
    assert Wallet.objects.get(account=account).balance == Decimal(1000) + Decimal(100000)
    assert json.loads(json.dumps(remote)) == remote  # the gateway hands out plain data, no Stripe types
