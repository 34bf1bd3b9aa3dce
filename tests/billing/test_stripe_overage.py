"""Overage at period close: invoice item, invoice, finalize, pay; the exact requests and keys; never twice."""

# ruff: noqa: F811 - the shared pytest fixtures are imported from tests.billing.stripe_samples

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing import stripe_gateway as gateway
from billing.models import Account, BillingPeriod, Invoice, OverageBilling
from billing.services import overage as overage_service
from billing.services.overage import overage_billing_resume, overage_invoice_send
from billing.services.periods import period_close, period_current
from tests.billing.stripe_samples import (  # noqa: F401
    Recorded,
    RecordingStripe,
    error_body,
    stripe_off,
    stripe_recorder,
)
from tests.factories import AccountFactory

pytestmark = pytest.mark.usefixtures("catalog")

OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)
NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)


def _invoice(*, plan: str = "starter", units: int = 3000, customer: str = "cus_overage") -> Invoice:
    """A closed October on `plan` with `units` used (starter: 1,000 messages included, then 0.00015 USD each)."""
    account = AccountFactory.create(plan=plan, as_of=OCT_1, owner_email="billing@overage.test", name="Overage shop")
    if customer:
        Account.objects.filter(pk=account.pk).update(stripe_customer_id=customer)
    period = period_current(account=account, as_of=OCT_1)
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=Decimal(units))
    return period_close(period=BillingPeriod.objects.get(pk=period.pk), as_of=NOV_1)


def _stripe_invoicing(stripe: RecordingStripe, *, pay: Any = None) -> None:
    stripe.on("POST", "/v1/invoiceitems", lambda _r: {"id": stripe.next_id("ii"), "object": "invoiceitem"})
    stripe.on("POST", "/v1/invoices", lambda _r: {"id": stripe.next_id("in"), "object": "invoice", "status": "draft"})

    def finalize(req: Recorded) -> dict[str, Any]:
        invoice_id = req.path.split("/")[3]
        return {"id": invoice_id, "object": "invoice", "status": "open",
                "hosted_invoice_url": f"https://invoice.stripe.com/i/{invoice_id}"}  # fmt: skip

    def paid(req: Recorded) -> dict[str, Any]:
        invoice_id = req.path.split("/")[3]
        return {"id": invoice_id, "object": "invoice", "status": "paid", "status_transitions": {"paid_at": 1793500000},
                "hosted_invoice_url": f"https://invoice.stripe.com/i/{invoice_id}"}  # fmt: skip

    stripe.on("POST", "/v1/invoices/", lambda req: finalize(req) if req.path.endswith("/finalize") else
              (pay(req) if pay and req.path.endswith("/pay") else paid(req)), prefix=True)  # fmt: skip


def test_with_stripe_off_it_does_nothing_and_says_so(stripe_off):
    invoice = _invoice()
    outcome = overage_invoice_send(invoice=invoice, as_of=NOV_1)
    assert not outcome
    assert outcome.status == "stripe_off"
    assert outcome.message.startswith("Stripe is not configured: overage of invoice")
    assert not OverageBilling.objects.exists()


def test_no_overage_no_stripe_call(stripe_recorder):
    invoice = _invoice(units=900)
    outcome = overage_invoice_send(invoice=invoice, as_of=NOV_1)
    assert (bool(outcome), outcome.status) == (False, "no_overage")
    assert stripe_recorder.requests == []


def test_overage_becomes_an_item_and_an_invoice_with_keys_from_the_local_invoice(stripe_recorder):
    _stripe_invoicing(stripe_recorder)
    invoice = _invoice(units=3000)  # 2,000 over at 0.00015 USD = 0.30 USD, with the 5 USD fee
    assert (invoice.base_charge, invoice.overage, invoice.total) == (Decimal(5), Decimal("0.3"), Decimal("5.3"))
    outcome = overage_invoice_send(invoice=invoice, as_of=NOV_1)
    assert (bool(outcome), outcome.status, outcome.amount_cents) == (True, "invoiced", 30)
    stripe_invoice_id = outcome.stripe_invoice_id
    assert stripe_recorder.calls() == [
        ("POST", "/v1/customers/cus_overage", stripe_recorder.requests[0].idempotency_key),
        ("POST", "/v1/invoiceitems", f"overage-item:{invoice.pk}"),
        ("POST", "/v1/invoices", f"overage-invoice:{invoice.pk}"),
        ("POST", f"/v1/invoices/{stripe_invoice_id}/finalize", f"overage-finalize:{invoice.pk}"),
        ("POST", f"/v1/invoices/{stripe_invoice_id}/pay", f"overage-pay:{invoice.pk}"),
    ]
    metadata = {"metadata[tokenledger_invoice_id]": str(invoice.pk), "metadata[period_id]": str(invoice.period_id),
                "metadata[account_id]": str(invoice.account_id)}  # fmt: skip
    description = "Overage: 2000 messages x 0.00015 USD (2026-10-01 to 2026-11-01)"
    assert stripe_recorder.only("POST", "/v1/invoiceitems").form == {
        "customer": "cus_overage", "amount": "30", "currency": "usd", "description": description, **metadata,
    }  # fmt: skip
    assert stripe_recorder.only("POST", "/v1/invoices").form == {
        "customer": "cus_overage", "description": description, "pending_invoice_items_behavior": "include", **metadata,
    }  # fmt: skip
    assert stripe_recorder.only("POST", f"/v1/invoices/{stripe_invoice_id}/finalize").form == {"auto_advance": "true"}
    invoice.refresh_from_db()
    assert invoice.stripe_invoice_id == stripe_invoice_id
    assert invoice.hosted_invoice_url == f"https://invoice.stripe.com/i/{stripe_invoice_id}"
    assert (invoice.status, invoice.paid_at) == ("paid", datetime.fromtimestamp(1793500000, tz=UTC))
    cursor = OverageBilling.objects.get(invoice=invoice)
    assert (cursor.step, cursor.amount_cents, cursor.description) == ("paid", 30, description)

    # the job runs again: nothing more is sent
    sent = len(stripe_recorder.requests)
    assert (
        overage_invoice_send(invoice=invoice, as_of=NOV_1 + timedelta(hours=1)).stripe_invoice_id == stripe_invoice_id
    )
    assert len(stripe_recorder.requests) == sent


def test_the_spend_cap_bounds_what_is_billed(stripe_recorder):
    _stripe_invoicing(stripe_recorder)
    invoice = _invoice(units=400_000)  # 399,000 over = 59.85 USD, but the starter cap is 50 USD in all
    assert invoice.cap_applied
    overage_invoice_send(invoice=invoice, as_of=NOV_1)
    item = stripe_recorder.only("POST", "/v1/invoiceitems").form
    assert item["amount"] == "4500"  # 50 USD cap - 5 USD fee
    assert item["description"].endswith(", monthly spend cap applied")


def test_a_crash_between_the_item_and_the_invoice_never_bills_twice(stripe_recorder, monkeypatch):
    _stripe_invoicing(stripe_recorder)
    invoice = _invoice()
    real_item_create = gateway.invoice_item_create
    crashes = iter([True])

    def item_then_crash(**kwargs: Any) -> Any:
        item = real_item_create(**kwargs)  # Stripe created it ...
        if next(crashes, False):
            raise gateway.StripeTransientError("worker lost before the cursor was saved")  # ... and we never knew
        return item

    monkeypatch.setattr(overage_service.gateway, "invoice_item_create", item_then_crash)
    first = overage_invoice_send(invoice=invoice, as_of=NOV_1)
    assert (bool(first), first.status) == (False, "failed")
    cursor = OverageBilling.objects.get(invoice=invoice)
    assert (cursor.step, cursor.attempts) == ("pending", 1)
    assert "worker lost" in cursor.last_error
    # the retry job resumes it once due, with the same key: Stripe answers with the item it already made
    assert overage_billing_resume(as_of=NOV_1) == 0
    assert cursor.next_attempt_at is not None
    assert overage_billing_resume(as_of=cursor.next_attempt_at) == 1
    items = [r for r in stripe_recorder.requests if r.path == "/v1/invoiceitems"]
    assert [(r.idempotency_key, r.replayed) for r in items] == [
        (f"overage-item:{invoice.pk}", False),
        (f"overage-item:{invoice.pk}", True),
    ]
    assert len([r for r in stripe_recorder.requests if r.path == "/v1/invoices"]) == 1
    cursor.refresh_from_db()
    assert (cursor.step, cursor.stripe_invoice_item_id) == ("paid", "ii_test0001")  # the first item, replayed


def test_stripe_down_at_the_invoice_step_resumes_there(stripe_recorder):
    _stripe_invoicing(stripe_recorder)
    stripe_recorder.on("POST", "/v1/invoices", lambda _r: (500, error_body("boom", kind="api_error")))
    invoice = _invoice()
    outcome = overage_invoice_send(invoice=invoice, as_of=NOV_1)
    assert outcome.status == "failed"
    assert OverageBilling.objects.get(invoice=invoice).step == "item_created"
    _stripe_invoicing(stripe_recorder)  # Stripe is back
    assert overage_invoice_send(invoice=invoice, as_of=NOV_1 + timedelta(minutes=5)).status == "invoiced"
    assert len([r for r in stripe_recorder.requests if r.path == "/v1/invoiceitems"]) == 1
    assert [r.idempotency_key for r in stripe_recorder.requests if r.path == "/v1/invoices"] == [
        f"overage-invoice:{invoice.pk}"
    ] * 2


def test_a_declined_card_leaves_the_invoice_open_for_stripe_to_collect(stripe_recorder):
    declined = error_body("Your card was declined.", code="card_declined", kind="card_error")
    _stripe_invoicing(stripe_recorder, pay=lambda _r: (402, declined))
    invoice = _invoice()
    outcome = overage_invoice_send(invoice=invoice, as_of=NOV_1)
    assert (bool(outcome), outcome.status) == (True, "payment_failed")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.stripe_invoice_id != "") == ("open", True)
    assert OverageBilling.objects.get(invoice=invoice).last_error == "card declined: Your card was declined."


def test_overage_already_on_the_renewal_is_not_billed_again(stripe_recorder):
    _stripe_invoicing(stripe_recorder)
    invoice = _invoice(units=3000)
    OverageBilling.objects.create(period=invoice.period, renewal_cents=20, renewal_item_id="ii_renewal")
    overage_invoice_send(invoice=invoice, as_of=NOV_1)
    assert stripe_recorder.only("POST", "/v1/invoiceitems").form["amount"] == "10"  # 30 - 20 already on the renewal

    everything = _invoice(units=3000, customer="cus_other")
    OverageBilling.objects.create(period=everything.period, renewal_cents=30)
    outcome = overage_invoice_send(invoice=everything, as_of=NOV_1)
    assert outcome.status == "nothing_due"
    assert len([r for r in stripe_recorder.requests if r.path == "/v1/invoiceitems"]) == 1


def test_the_close_job_sends_the_overage(stripe_recorder):
    scheduled = pytest.importorskip("config.scheduled", reason="the period-close job is not in this build")
    _stripe_invoicing(stripe_recorder)
    account = AccountFactory.create(plan="starter", as_of=OCT_1)
    Account.objects.filter(pk=account.pk).update(stripe_customer_id="cus_job")
    period = period_current(account=account, as_of=OCT_1)
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=Decimal(3000))
    counts = scheduled.close_periods(NOV_1 + timedelta(hours=3))
    assert counts["invoiced"] >= 1
    assert Invoice.objects.get(period=period).stripe_invoice_id


def _send_from_the_console(admin_client: Any, invoices: list[Invoice]) -> list[str]:
    response = admin_client.post(
        "/admin/billing/invoice/",
        {"action": "send_overage", "_selected_action": [i.pk for i in invoices]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def test_the_console_sends_overage_closed_while_stripe_was_off_once(stripe_recorder, admin_client):
    # closed while Stripe was off: the close sent nothing, the invoice has no Stripe side yet
    _stripe_invoicing(stripe_recorder)
    over, under = _invoice(units=3000), _invoice(units=900, customer="cus_under")
    assert not OverageBilling.objects.exists()
    said = _send_from_the_console(admin_client, [over, under])
    assert f"invoice #{under.pk} has no overage to bill" in said
    assert any(m.startswith(f"invoice #{over.pk}: paid in_") and m.endswith("(0.30 USD)") for m in said), said
    assert [c[2] for c in stripe_recorder.calls()[1:]] == [
        f"overage-item:{over.pk}", f"overage-invoice:{over.pk}", f"overage-finalize:{over.pk}", f"overage-pay:{over.pk}"
    ]  # fmt: skip
    sent = len(stripe_recorder.requests)
    _send_from_the_console(admin_client, [over])  # again: answered from the cursor, nothing sent
    assert len(stripe_recorder.requests) == sent
    assert Invoice.objects.get(pk=over.pk).status == "paid"


def test_the_console_says_when_stripe_is_off(stripe_off, admin_client):
    invoice = _invoice(units=3000)
    said = _send_from_the_console(admin_client, [invoice])
    assert said == [f"Stripe is not configured: overage of invoice #{invoice.pk} (0.30 USD) was not sent"]
    assert not OverageBilling.objects.exists()
