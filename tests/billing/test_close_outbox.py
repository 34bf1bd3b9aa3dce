"""What follows an invoice goes through the outbox; a close in the future is refused; late usage is billed once."""

# ruff: noqa: F811 - the shared pytest fixtures are imported from tests.billing.stripe_samples

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.management import CommandError, call_command

from billing.errors import CloseInFuture
from billing.models import BillingPeriod, Invoice, InvoiceOutbox, LateUsageAdjustment
from billing.services.periods import period_close, periods_close_chunk, periods_close_due
from config import tasks
from tests.billing.stripe_samples import Recorded, RecordingStripe, error_body, stripe_recorder  # noqa: F401
from tests.factories import AccountFactory, EventFactory, events_record
from usage.models import UsageEvent

pytestmark = pytest.mark.usefixtures("catalog")

ROOT = Path(__file__).resolve().parents[2]
OCT_10 = datetime(2026, 10, 10, 12, tzinfo=UTC)
NOV_1_CLOSE = datetime(2026, 11, 1, 3, tzinfo=UTC)
DEC_1_CLOSE = datetime(2026, 12, 1, 3, tzinfo=UTC)


def _stripe_invoicing(stripe: RecordingStripe) -> None:
    stripe.on("POST", "/v1/invoiceitems", lambda _r: {"id": stripe.next_id("ii"), "object": "invoiceitem"})
    stripe.on("POST", "/v1/invoices", lambda _r: {"id": stripe.next_id("in"), "object": "invoice", "status": "draft"})

    def advance(req: Recorded) -> dict[str, Any]:
        invoice_id = req.path.split("/")[3]
        return {"id": invoice_id, "object": "invoice", "status": "open" if req.path.endswith("/finalize") else "paid"}

    stripe.on("POST", "/v1/invoices/", advance, prefix=True)


def _tokens(account: Any, request_id: str, tokens: int) -> None:
    events_record(account, [EventFactory.build(request_id=request_id, input_tokens=tokens - 1000, output_tokens=1000)])


def _basic_october(*, tokens: int = 12000, email: str = "owner@late.test") -> Any:
    """An account on `basic` (10,000 tokens included, then 0.001 USD a token) with `tokens` used in October."""
    with time_machine.travel(OCT_10, tick=False):
        account = AccountFactory.create(plan="basic", owner_email=email)
        _tokens(account, "october", tokens)
    return account


def _integrity() -> dict[str, Any]:
    out = StringIO()
    with contextlib.suppress(CommandError):  # exit 1 when not ok: the JSON says why
        call_command("check_integrity", stdout=out)
    return json.loads(out.getvalue())


# --- a close in the future ---------------------------------------------------------------------------------------


def test_the_command_refuses_a_close_in_the_future_with_a_message_and_exit_1(tmp_path):
    env = {**os.environ, "SECRET_KEY": "x", "DEBUG": "0", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "close_periods", "--as-of", "2099-01-01T00:00:00Z"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "as_of 2099-01-01T00:00:00+00:00 is in the future" in done.stderr
    assert "periods are closed only after they end" in done.stderr
    assert done.stdout == ""


def test_the_service_and_the_task_refuse_a_close_in_the_future_and_close_nothing():
    account = _basic_october()
    october = BillingPeriod.objects.get(account=account)
    with time_machine.travel(datetime(2026, 10, 20, tzinfo=UTC), tick=False):
        future = datetime(2026, 11, 1, 3, tzinfo=UTC)
        with pytest.raises(CloseInFuture, match="is in the future"):
            period_close(period=october, as_of=future)
        with pytest.raises(CloseInFuture):
            periods_close_due(as_of=future)
        with pytest.raises(CloseInFuture):
            tasks.close_periods(as_of=future.isoformat())
        with pytest.raises(CommandError, match="is in the future"):
            call_command("close_periods", "--as-of", future.isoformat(), stdout=StringIO())
    october.refresh_from_db()
    assert (october.status, Invoice.objects.count()) == ("open", 0)


# --- the outbox --------------------------------------------------------------------------------------------------


def test_rows_left_by_a_run_that_died_before_sending_are_sent_once_by_the_beat_job(stripe_recorder):
    _stripe_invoicing(stripe_recorder)
    account = _basic_october()
    period = BillingPeriod.objects.get(account=account)
    with time_machine.travel(NOV_1_CLOSE, tick=False):
        # what a killed run leaves: the chunk committed (invoice and its outbox rows), the send never ran
        [invoice] = periods_close_chunk(period_ids=[period.pk], as_of=NOV_1_CLOSE)
    rows = InvoiceOutbox.objects.filter(invoice=invoice)
    assert sorted(rows.values_list("kind", "status")) == [("monthly_summary", "pending"), ("overage", "pending")]
    assert stripe_recorder.requests == [] and mail.outbox == []

    with time_machine.travel(NOV_1_CLOSE + timedelta(minutes=5), tick=False):
        assert tasks.send_outbox() == {"sent": 2, "failed": 0, "pending": 0}
        assert tasks.send_outbox() == {"sent": 0, "failed": 0, "pending": 0}
    items = [r for r in stripe_recorder.requests if r.path == "/v1/invoiceitems"]
    assert [(r.idempotency_key, r.form["amount"]) for r in items] == [(f"overage-item:{invoice.pk}", "200")]
    assert [m.to for m in mail.outbox if "summary for October 2026" in m.subject] == [["owner@late.test"]]
    assert _integrity() == {"ok": True, "problems": []}


def test_a_failed_send_stays_pending_with_its_error_and_is_retried_with_backoff(stripe_recorder):
    _stripe_invoicing(stripe_recorder)
    stripe_recorder.on("POST", "/v1/invoiceitems", lambda _r: (503, error_body("Stripe is down", kind="api_error")))
    account = _basic_october()
    with time_machine.travel(NOV_1_CLOSE, tick=False):
        counts = tasks.close_periods()
    assert (counts["closed"], counts["invoiced"], counts["outbox_sent"], counts["outbox_pending"]) == (1, 0, 1, 1)
    invoice = Invoice.objects.get(account=account)
    row = InvoiceOutbox.objects.get(invoice=invoice, kind="overage")
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, NOV_1_CLOSE + timedelta(minutes=1))
    assert "Stripe is down" in row.last_error
    assert _integrity() == {"ok": True, "problems": []}  # pending with its error is a known state, not a problem

    _stripe_invoicing(stripe_recorder)  # Stripe answers again
    with time_machine.travel(NOV_1_CLOSE + timedelta(seconds=30), tick=False):
        assert tasks.send_outbox()["sent"] == 0  # not due yet
    with time_machine.travel(NOV_1_CLOSE + timedelta(minutes=5), tick=False):
        assert tasks.send_outbox() == {"sent": 1, "failed": 0, "pending": 0}
        assert tasks.send_outbox()["sent"] == 0
    row.refresh_from_db()
    assert (row.status, row.last_error, row.outcome.split(":")[0]) == ("sent", "", "invoiced")
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.stripe_invoice_id
    keys = [r.idempotency_key for r in stripe_recorder.requests if r.path == "/v1/invoiceitems"]
    assert keys == [f"overage-item:{invoice.pk}"] * 2  # the failed attempt, then the one Stripe took
    assert len([m for m in mail.outbox if "summary" in m.subject]) == 1


# --- late usage --------------------------------------------------------------------------------------------------


def test_an_event_of_a_closed_period_is_billed_once_as_late_usage_on_the_next_invoice(api_client_for):
    account = _basic_october(tokens=9000)  # within the 10,000 included
    client = api_client_for(account)
    with time_machine.travel(NOV_1_CLOSE, tick=False):
        tasks.close_periods()
    october = BillingPeriod.objects.get(account=account, start=datetime(2026, 10, 1, tzinfo=UTC))
    assert Invoice.objects.get(period=october).amount_cents == 0

    with time_machine.travel(datetime(2026, 11, 5, 9, tzinfo=UTC), tick=False):
        answer = client.post("/api/usage/events", {
            "request_id": "late-one", "model": "qwen-3-32b", "input_tokens": 2000, "output_tokens": 1000,
            "occurred_at": "2026-10-20T10:00:00Z",
        }, format="json")  # fmt: skip
        assert answer.status_code == 201, answer.content
        assert answer.json()["results"][0]["status"] == "recorded"
        # sent again: a duplicate, never a second late charge
        again = client.post("/api/usage/events", {
            "request_id": "late-one", "model": "qwen-3-32b", "input_tokens": 2000, "output_tokens": 1000,
            "occurred_at": "2026-10-20T10:00:00Z",
        }, format="json")  # fmt: skip
        assert again.json()["results"][0]["status"] == "duplicate"
    event = UsageEvent.objects.get(request_id="late-one")
    assert (event.period_id, event.late) == (october.pk, True)
    october.refresh_from_db()
    assert october.units_used == Decimal(9000)  # the closed period and its invoice stay as billed
    assert _integrity() == {"ok": True, "problems": []}

    with time_machine.travel(DEC_1_CLOSE, tick=False):
        tasks.close_periods()
    november = Invoice.objects.get(account=account, period__start=datetime(2026, 11, 1, tzinfo=UTC))
    # October with the late 3,000 tokens is 12,000: 2,000 beyond the included 10,000 at 0.001 = 2 USD
    assert (november.units, november.late_usage, november.total, november.amount_cents) == (0, 2, 2, 200)
    adjustment = LateUsageAdjustment.objects.get(period=october)
    assert (adjustment.invoice, adjustment.messages, adjustment.units, adjustment.amount) == (november, 1, 3000, 2)
    listed = client.get("/api/billing/invoices").json()["results"]
    shown = [(i["period_start"][:7], Decimal(i["late_usage"]), Decimal(i["amount"])) for i in listed]
    assert shown == [("2026-11", 2, 2), ("2026-10", 0, 0)]
    summary = next(m for m in mail.outbox if "summary for November 2026" in m.subject)
    assert "Late usage of earlier periods: $2.00" in summary.body

    with time_machine.travel(datetime(2027, 1, 1, 3, tzinfo=UTC), tick=False):
        tasks.close_periods()
    december = Invoice.objects.get(account=account, period__start=datetime(2026, 12, 1, tzinfo=UTC))
    assert (december.late_usage, december.amount_cents) == (0, 0)  # billed once
    assert _integrity() == {"ok": True, "problems": []}
