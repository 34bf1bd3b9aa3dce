"""Auto-recharge: the trigger when a debit crosses below the threshold, the off-session charge keyed by the
recharge, credits once, failures alert and stop it after repeated failures."""

# ruff: noqa: F811 - the shared pytest fixtures are imported from tests.billing.stripe_samples

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from billing.models import Account, AutoRecharge, LedgerEntry, TopUp, Wallet
from billing.services.topups import auto_recharge_check, auto_recharge_configure, auto_recharge_run
from billing.services.wallet import wallet_debit
from billing.tasks import auto_recharge_sweep_task
from tests.billing.stripe_samples import (  # noqa: F401
    Recorded,
    RecordingStripe,
    alerts_sent,
    error_body,
    post_event,
    sample,
    stripe_off,
    stripe_recorder,
)
from tests.factories import AccountFactory

pytestmark = pytest.mark.usefixtures("catalog")

DECLINED = error_body("Your card was declined.", code="card_declined", kind="card_error", decline="insufficient_funds")


def _recharging(*, credits: str = "60000", threshold: str = "50000", amount: str = "10") -> Account:
    account = AccountFactory.create(credits=credits, owner_email="owner@recharge.test")
    Account.objects.filter(pk=account.pk).update(stripe_customer_id="cus_recharge")
    account.refresh_from_db()
    AutoRecharge.objects.create(account=account, enabled=True, threshold_credits=Decimal(threshold),
                                amount_usd=Decimal(amount), stripe_payment_method_id="pm_saved")  # fmt: skip
    return account


def _intents(stripe: RecordingStripe, *, status: str = "succeeded") -> None:
    def create(req: Recorded) -> dict[str, Any]:
        return {"id": stripe.next_id("pi"), "object": "payment_intent", "status": status,
                "amount": int(req.form["amount"]), "metadata": {"topup_id": req.form["metadata[topup_id]"]}}  # fmt: skip

    stripe.on("POST", "/v1/payment_intents", create)


def _balance(account: Account) -> Decimal:
    return Wallet.objects.get(account=account).balance


class TestTrigger:
    def test_queues_on_commit_only_when_the_balance_crosses_below_the_threshold(
        self, stripe_recorder, django_capture_on_commit_callbacks, monkeypatch
    ):
        queued: list[int] = []
        monkeypatch.setattr("billing.tasks.auto_recharge_task.delay", lambda account_id: queued.append(account_id))
        account = _recharging()
        with django_capture_on_commit_callbacks(execute=True):
            assert (
                auto_recharge_check(account=account, balance_before=Decimal(60000), balance_after=Decimal(55000))
                is False
            )
            assert (
                auto_recharge_check(account=account, balance_before=Decimal(55000), balance_after=Decimal(49999))
                is True
            )
            # already below: no new trigger
            assert (
                auto_recharge_check(account=account, balance_before=Decimal(49999), balance_after=Decimal(40000))
                is False
            )
            # exactly at the threshold is not below it
            assert (
                auto_recharge_check(account=account, balance_before=Decimal(60000), balance_after=Decimal(50000))
                is False
            )
        assert queued == [account.pk]

    def test_nothing_when_off_or_without_stripe(self, stripe_off, django_capture_on_commit_callbacks):
        account = _recharging()
        assert not auto_recharge_check(account=account, balance_before=Decimal(60000), balance_after=Decimal(1))
        AutoRecharge.objects.filter(account=account).update(enabled=False)
        assert not auto_recharge_check(account=account, balance_before=Decimal(60000), balance_after=Decimal(1))

    def test_a_debit_then_the_check_runs_the_recharge(self, stripe_recorder, django_capture_on_commit_callbacks,
                                                      celery_eager):  # fmt: skip
        _intents(stripe_recorder)
        account = _recharging()
        with django_capture_on_commit_callbacks(execute=True):
            posting = wallet_debit(account=account, credits=Decimal(20000), reference="usage:batch-1")
            auto_recharge_check(account=account, balance_before=Decimal(60000), balance_after=posting.balance)
        assert _balance(account) == Decimal(40000) + Decimal(100000)  # 10 USD at 10,000 credits per USD


class TestRun:
    def test_success_credits_once_with_a_key_from_the_recharge(self, stripe_recorder):
        _intents(stripe_recorder)
        account = _recharging(credits="40000")
        outcome = auto_recharge_run(account_id=account.pk)
        topup = TopUp.objects.get()
        assert (outcome.status, outcome.topup_id) == ("paid", topup.pk)
        request = stripe_recorder.only("POST", "/v1/payment_intents")
        assert request.idempotency_key == f"recharge:{topup.pk}"
        assert request.form == {
            "amount": "1000", "currency": "usd", "customer": "cus_recharge", "payment_method": "pm_saved",
            "off_session": "true", "confirm": "true", "metadata[topup_id]": str(topup.pk),
            "metadata[account_id]": str(account.pk), "metadata[kind]": "auto_recharge",
        }  # fmt: skip
        assert (topup.source, topup.status, topup.credits) == ("auto_recharge", "paid", Decimal(100000))
        entry = LedgerEntry.objects.get(kind="topup")
        assert entry.reference == topup.stripe_payment_intent_id
        assert _balance(account) == Decimal(140000)
        # the balance is above the threshold now: a second run charges nothing
        assert auto_recharge_run(account_id=account.pk).status == "skipped"
        assert len(stripe_recorder.requests) == 2  # the customer sync and the one charge

    def test_the_webhook_for_the_same_payment_credits_nothing_more(
        self, stripe_recorder, client, django_capture_on_commit_callbacks, celery_eager
    ):
        _intents(stripe_recorder)
        account = _recharging(credits="40000")
        auto_recharge_run(account_id=account.pk)
        topup = TopUp.objects.get()
        event = sample("checkout.session.completed", id="evt_pi", type="payment_intent.succeeded")
        event["data"]["object"] = {"id": topup.stripe_payment_intent_id, "object": "payment_intent", "status": "succeeded",
                                   "metadata": {"topup_id": str(topup.pk), "kind": "auto_recharge"}}  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):
            assert post_event(client, event).status_code == 200
        assert _balance(account) == Decimal(140000)
        assert LedgerEntry.objects.filter(kind="topup").count() == 1

    def test_a_decline_fails_the_recharge_and_alerts(self, stripe_recorder, alerts_sent,
                                                     django_capture_on_commit_callbacks):  # fmt: skip
        stripe_recorder.on("POST", "/v1/payment_intents", lambda _r: (402, DECLINED))
        account = _recharging(credits="40000")
        with django_capture_on_commit_callbacks(execute=True):
            outcome = auto_recharge_run(account_id=account.pk)
        assert (outcome.status, outcome.message) == ("failed", "Your card was declined.")
        topup = TopUp.objects.get()
        assert (topup.status, topup.failure_message) == ("failed", "Your card was declined.")
        row = AutoRecharge.objects.get(account=account)
        assert (row.enabled, row.consecutive_failures) == (True, 1)
        assert [(a["account_id"], a["reference"], a["subject"]) for a in alerts_sent] == [
            (account.pk, f"recharge:{topup.pk}", "Auto-recharge failed")
        ]
        assert _balance(account) == Decimal(40000)

    def test_repeated_failures_turn_it_off(self, stripe_recorder, alerts_sent, settings,
                                           django_capture_on_commit_callbacks):  # fmt: skip
        settings.AUTO_RECHARGE_MAX_FAILURES = 3
        settings.AUTO_RECHARGE_COOLDOWN_SECONDS = 60
        stripe_recorder.on("POST", "/v1/payment_intents", lambda _r: (402, DECLINED))
        account = _recharging(credits="40000")
        now = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):
            assert auto_recharge_run(account_id=account.pk, now=now).status == "failed"
            # cooling down: 60 s after the first failure, 120 s after the second
            assert auto_recharge_run(account_id=account.pk, now=now + timedelta(seconds=30)).status == "skipped"
            assert auto_recharge_run(account_id=account.pk, now=now + timedelta(seconds=61)).status == "failed"
            assert auto_recharge_run(account_id=account.pk, now=now + timedelta(seconds=150)).status == "skipped"
            assert auto_recharge_run(account_id=account.pk, now=now + timedelta(seconds=182)).status == "failed"
            assert auto_recharge_run(account_id=account.pk, now=now + timedelta(days=1)).status == "skipped"
        row = AutoRecharge.objects.get(account=account)
        assert (row.enabled, row.consecutive_failures) == (False, 3)
        assert row.disabled_reason.startswith("turned off after 3 failed recharges")
        assert "Auto-recharge is now off" in alerts_sent[-1]["message"]
        assert [r.idempotency_key for r in stripe_recorder.requests if r.path == "/v1/payment_intents"] == [
            f"recharge:{t.pk}" for t in TopUp.objects.order_by("pk")
        ]

    def test_a_transient_error_keeps_the_recharge_and_the_retry_sends_the_same_key(self, stripe_recorder):
        from billing.stripe_gateway import StripeTransientError

        stripe_recorder.on("POST", "/v1/payment_intents", lambda _r: (503, error_body("down", kind="api_error")))
        account = _recharging(credits="40000")
        with pytest.raises(StripeTransientError):
            auto_recharge_run(account_id=account.pk)
        assert TopUp.objects.get().status == "pending"
        _intents(stripe_recorder)
        assert auto_recharge_run(account_id=account.pk).status == "paid"
        topup = TopUp.objects.get()  # still one top-up
        assert [r.idempotency_key for r in stripe_recorder.requests if r.path == "/v1/payment_intents"] == [
            f"recharge:{topup.pk}"
        ] * 2

    def test_an_answered_charge_is_settled_by_looking_it_up_never_charged_again(self, stripe_recorder):
        _intents(stripe_recorder, status="processing")
        account = _recharging(credits="40000")
        assert auto_recharge_run(account_id=account.pk).status == "pending"
        topup = TopUp.objects.get()
        stripe_recorder.on("GET", f"/v1/payment_intents/{topup.stripe_payment_intent_id}",
                           {"id": topup.stripe_payment_intent_id, "object": "payment_intent", "status": "succeeded"})  # fmt: skip
        assert auto_recharge_run(account_id=account.pk).status == "paid"
        assert len([r for r in stripe_recorder.requests if r.path == "/v1/payment_intents"]) == 1
        assert _balance(account) == Decimal(140000)

    def test_the_sweep_queues_accounts_below_their_threshold(self, stripe_recorder, monkeypatch):
        queued: list[Any] = []
        monkeypatch.setattr("billing.tasks.auto_recharge_task.delay", lambda *args: queued.append(args))
        low = _recharging(credits="40000")
        _recharging(credits="90000")
        counts = auto_recharge_sweep_task(as_of="2026-11-21T00:00:00+00:00")
        assert counts == {"queued": 1}
        assert queued == [(low.pk, "2026-11-21T00:00:00+00:00")]


class TestSettings:
    def test_put_attaches_the_card_and_turns_it_on(self, stripe_recorder, api_client_for):
        stripe_recorder.on("POST", "/v1/payment_methods/pm_new/attach", {"id": "pm_new", "object": "payment_method"})
        account = AccountFactory.create(owner_email="o@settings.test")
        body = {"enabled": True, "threshold_credits": "50000", "amount_usd": "25", "payment_method_id": "pm_new"}
        response = api_client_for(account).put("/api/billing/auto-recharge", body, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["enabled"] is True
        attach = stripe_recorder.only("POST", "/v1/payment_methods/pm_new/attach")
        customer = Account.objects.get(pk=account.pk).stripe_customer_id
        assert (attach.form, attach.idempotency_key) == ({"customer": customer}, f"payment-method:{account.pk}:pm_new")
        assert api_client_for(account).get("/api/billing/auto-recharge").json()["amount_usd"] == "25"

    @pytest.mark.django_db(transaction=True)
    def test_a_declined_card_is_refused_with_402(self, stripe_recorder, api_client_for):
        stripe_recorder.on("POST", "/v1/payment_methods/pm_card_visa_chargeDeclined/attach", lambda _r: (402, DECLINED))
        account = AccountFactory.create()
        body = {"enabled": True, "threshold_credits": "100", "amount_usd": "10",
                "payment_method_id": "pm_card_visa_chargeDeclined"}  # fmt: skip
        response = api_client_for(account).put("/api/billing/auto-recharge", body, format="json")
        assert response.status_code == 402
        assert response.json()["error"] == "card_declined"
        assert not AutoRecharge.objects.filter(account=account, enabled=True).exists()

    def test_turning_it_on_needs_a_card(self, stripe_recorder):
        account = AccountFactory.create()
        with pytest.raises(Exception, match="needs a saved card"):
            auto_recharge_configure(account=account, enabled=True, threshold_credits="100", amount_usd="10")

    def test_without_stripe_it_answers_503(self, stripe_off, api_client_for):
        account = AccountFactory.create()
        body = {"enabled": True, "threshold_credits": "100", "amount_usd": "10"}
        response = api_client_for(account).put("/api/billing/auto-recharge", body, format="json")
        assert response.status_code == 503
        assert response.json()["message"] == "Stripe is not configured"
