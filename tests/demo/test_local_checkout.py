"""The demo's TEST checkout: with DEBUG on and no Stripe, an owner buys credits on the top-up page and they arrive
through the webhook inbox and the ledger as a Stripe payment's do; with DEBUG off, or Stripe on, it does not exist."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from billing.models import Account, LedgerEntry, StripeEvent, TopUp, Wallet
from billing.services.accounts import account_create

OWNER = "owner@shop.example"
PAGE = "/top-up/"
PAY = "/top-up/test-checkout/"


@pytest.fixture
def account(db) -> Account:
    call_command("seed_catalog", stdout=io.StringIO())
    account, _ = account_create(name="Shop", plan_code="jive", owner_email=OWNER, owner_password="pw-for-the-test")
    return account


@pytest.fixture
def owner_client(account) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=OWNER))
    return client


@pytest.fixture
def demo_mode(settings):
    settings.DEBUG = True
    settings.STRIPE_SECRET_KEY = ""


def _balance(account: Account) -> Decimal:
    return Wallet.objects.get(account=account).balance


def test_the_test_checkout_credits_the_wallet_through_the_webhook_path(account, owner_client, demo_mode):
    page = owner_client.get(PAGE)
    assert page.status_code == 200
    assert "TEST checkout (demo only)" in page.content.decode()
    assert reverse("dashboard-topup-test-checkout") == PAY

    answer = owner_client.post(PAY, {"amount_usd": "10"}, follow=True)
    assert answer.status_code == 200
    assert "is confirmed: the credits are in your balance" in answer.content.decode()
    # 10 USD at the seed's 10,000 credits per USD
    assert _balance(account) == Decimal(100_000)
    topup = TopUp.objects.get(account=account)
    assert (topup.status, topup.credits, topup.amount_cents) == ("paid", Decimal(100_000), 1000)
    entry = LedgerEntry.objects.get(wallet__account=account)
    assert (entry.kind, entry.reference, entry.credits) == ("topup", f"cs_test_local_{topup.pk}", Decimal(100_000))
    assert topup.ledger_entry_id == entry.pk
    event = StripeEvent.objects.get()
    assert (event.type, event.status, event.livemode) == ("checkout.session.completed", "succeeded", False)
    # the balance page shows the credits
    assert "100,000" in owner_client.get("/").content.decode()


def test_an_amount_out_of_range_is_refused_and_nothing_is_credited(account, owner_client, demo_mode):
    answer = owner_client.post(PAY, {"amount_usd": "0.50"})
    assert answer.status_code == 400
    assert "amount_usd must be between 5 and 500 USD" in answer.content.decode()
    assert _balance(account) == 0 and not TopUp.objects.exists()


@pytest.mark.parametrize(("debug", "stripe_key"), [(False, ""), (True, "sk_test_configured")])
def test_without_the_demo_mode_there_is_no_test_checkout(account, owner_client, settings, debug, stripe_key):
    settings.DEBUG, settings.STRIPE_SECRET_KEY = debug, stripe_key
    assert owner_client.post(PAY, {"amount_usd": "10"}).status_code == 404
    assert "TEST checkout" not in owner_client.get(PAGE).content.decode()
    assert _balance(account) == 0 and not TopUp.objects.exists() and not StripeEvent.objects.exists()
