"""The Stripe gateway: configuration, the pinned version and base address, idempotency keys, typed errors, and the
webhook signature check."""

# ruff: noqa: F811 - the shared pytest fixtures are imported from tests.billing.stripe_samples

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from billing import stripe_gateway as gateway
from billing.models import Account
from billing.services.stripe_customers import customer_ensure
from billing.stripe_conf import PINNED_API_VERSION, stripe_status
from pricing.money import Money
from tests.billing.stripe_samples import (  # noqa: F401
    WEBHOOK_SECRET,
    error_body,
    signature,
    stripe_off,
    stripe_recorder,
)
from tests.factories import AccountFactory

pytestmark = pytest.mark.usefixtures("catalog")


def test_without_keys_stripe_is_off_and_says_so(stripe_off):
    with pytest.raises(gateway.StripeNotConfigured, match="Stripe is not configured"):
        gateway.stripe_client()
    assert stripe_status()["enabled"] is False
    assert stripe_status()["message"] == "Stripe is not configured"


def test_customer_created_on_first_need_with_a_key_from_the_account_id(stripe_recorder):
    account = AccountFactory.create(name="Shop A", owner_email="owner@shop-a.test")
    customer_id = customer_ensure(account=account)
    request = stripe_recorder.only("POST", "/v1/customers")
    assert request.url.startswith("http://stripe.invalid/v1/customers")
    assert request.stripe_version == PINNED_API_VERSION
    assert request.idempotency_key == f"customer:{account.pk}"
    assert request.form == {"name": "Shop A", "email": "owner@shop-a.test", "metadata[account_id]": str(account.pk)}
    assert Account.objects.get(pk=account.pk).stripe_customer_id == customer_id


def test_customer_kept_in_step_with_name_and_email(stripe_recorder):
    account = AccountFactory.create(name="Shop A", owner_email="owner@shop-a.test")
    customer_id = customer_ensure(account=account)
    Account.objects.filter(pk=account.pk).update(name="Shop A Ltd")
    account.refresh_from_db()
    assert customer_ensure(account=account) == customer_id
    assert customer_ensure(account=account) == customer_id
    updates = [r for r in stripe_recorder.requests if r.path == f"/v1/customers/{customer_id}"]
    assert [u.form for u in updates] == [{"name": "Shop A Ltd", "email": "owner@shop-a.test"}] * 2
    # the same name and email are the same key: Stripe replays, nothing is written twice
    assert updates[0].idempotency_key == updates[1].idempotency_key
    assert updates[0].idempotency_key.startswith(f"customer-update:{account.pk}:")
    assert updates[1].replayed
    assert len([r for r in stripe_recorder.requests if r.path == "/v1/customers"]) == 1


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (402, error_body("Your card was declined.", code="card_declined", kind="card_error", decline="generic_decline"),
         gateway.CardDeclined),
        (429, error_body("Too many requests", code="rate_limit", kind="invalid_request_error"), gateway.StripeTransientError),
        (500, error_body("Something went wrong", kind="api_error"), gateway.StripeTransientError),
        (503, error_body("Unavailable", kind="api_error"), gateway.StripeTransientError),
        (400, error_body("No such customer: 'cus_x'", code="resource_missing"), gateway.StripePermanentError),
        (401, error_body("Invalid API Key provided", kind="invalid_request_error"), gateway.StripePermanentError),
    ],
)  # fmt: skip
def test_errors_come_out_typed(stripe_recorder, status, body, error):
    stripe_recorder.on("POST", "/v1/payment_intents", lambda _req: (status, body))
    with pytest.raises(error) as raised:
        gateway.payment_intent_create_off_session(
            customer_id="cus_x", payment_method_id="pm_x", amount=Money(Decimal("10"), "USD"), metadata={},
            idempotency_key="recharge:1",
        )  # fmt: skip
    assert raised.value.http_status == status
    if error is gateway.CardDeclined:
        assert raised.value.decline_code == "generic_decline"
        assert str(raised.value) == "Your card was declined."


def test_amounts_leave_in_cents_through_the_money_helper(stripe_recorder):
    stripe_recorder.on("POST", "/v1/invoiceitems", {"id": "ii_1", "object": "invoiceitem"})
    gateway.invoice_item_create(
        customer_id="cus_x", amount=Money(Decimal("12.345"), "USD"), description="Overage", metadata={},
        idempotency_key="overage-item:7",
    )  # fmt: skip
    form = stripe_recorder.only("POST", "/v1/invoiceitems").form
    assert (form["amount"], form["currency"]) == ("1235", "usd")  # rounded once, half up


def test_money_must_not_be_a_float():
    with pytest.raises(ValueError, match="float"):
        Money(10.5, "USD")  # type: ignore[arg-type]


class TestWebhookSignature:
    body = json.dumps({"id": "evt_1", "type": "ping"}).encode()

    def verify(self, header, *, now=None):
        gateway.webhook_verify(payload=self.body, signature_header=header, secret=WEBHOOK_SECRET,
                               tolerance_seconds=300, now=now)  # fmt: skip

    def test_a_good_signature_passes(self):
        self.verify(signature(self.body))

    def test_the_gateway_signs_like_stripe(self):
        at = int(time.time())
        assert gateway.webhook_signature_header(payload=self.body, secret=WEBHOOK_SECRET, timestamp=at) == signature(
            self.body, timestamp=at
        )

    @pytest.mark.parametrize(
        ("header", "message"),
        [
            (None, "missing"),
            ("", "missing"),
            ("garbage", "timestamp"),
            ("t=123", "signatures"),
        ],
    )
    def test_missing_or_malformed_header(self, header, message):
        with pytest.raises(gateway.WebhookSignatureInvalid, match=message):
            self.verify(header)

    def test_wrong_secret(self):
        with pytest.raises(gateway.WebhookSignatureInvalid, match="matching"):
            self.verify(signature(self.body, secret="whsec_other"))

    def test_tampered_body(self):
        header = signature(self.body)
        with pytest.raises(gateway.WebhookSignatureInvalid):
            gateway.webhook_verify(payload=self.body + b" ", signature_header=header, secret=WEBHOOK_SECRET,
                                   tolerance_seconds=300)  # fmt: skip

    def test_stale_and_future_timestamps(self):
        now = time.time()
        with pytest.raises(gateway.WebhookSignatureInvalid, match="tolerance"):
            self.verify(signature(self.body, timestamp=int(now) - 301), now=now)
        with pytest.raises(gateway.WebhookSignatureInvalid, match="tolerance"):
            self.verify(signature(self.body, timestamp=int(now) + 301), now=now)
        self.verify(signature(self.body, timestamp=int(now) - 299), now=now)
