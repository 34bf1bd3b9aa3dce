"""Scheduled jobs across a month boundary, run twice, under their lock, recorded as job runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.management import CommandError, call_command

from billing.models import BillingPeriod, Invoice, LedgerEntry, Wallet
from billing.services.periods import period_current
from billing.services.wallet import wallet_grant
from config import tasks
from core.jobs import job_lock
from core.models import JobRun
from tests.factories import AccountFactory
from usage.models import Alert
from usage.services.recording import usage_record_batch


@pytest.fixture
def catalog(db):
    call_command("seed_catalog", stdout=StringIO())


def _state():
    return (
        sorted(Invoice.objects.values_list("account_id", "amount_cents", "status")),
        sorted(BillingPeriod.objects.values_list("account_id", "start", "status")),
        sorted(LedgerEntry.objects.values_list("wallet_id", "kind", "credits")),
        Alert.objects.count(),
        len(mail.outbox),
    )


@pytest.mark.usefixtures("catalog")
def test_month_end_closes_periods_opens_new_ones_and_a_second_run_changes_nothing(
    celery_eager, django_capture_on_commit_callbacks
):
    with time_machine.travel(datetime(2026, 11, 10, 12, tzinfo=UTC), tick=False):
        starter = AccountFactory.create(plan="starter", owner_email="owner@shop.test")
        jive = AccountFactory.create(plan="jive", credits="100")
        wallet_grant(account=jive, credits="50", reason="promo", expires_at=datetime(2026, 11, 30, tzinfo=UTC))
        usage_record_batch(
            account=starter,
            raw_events=[{"request_id": f"m{n}", "model": "qwen-3-32b", "input_tokens": 10, "output_tokens": 10}
                        for n in range(1500)],
        )  # fmt: skip
        period_current(account=jive, as_of=datetime(2026, 11, 10, 12, tzinfo=UTC))
    with (
        time_machine.travel(datetime(2026, 12, 1, 3, tzinfo=UTC), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        counts = tasks.close_periods()
        # Stripe is off: the starter's overage waits in the outbox, the two summaries are sent
        assert counts == {"closed": 2, "invoiced": 0, "skipped": 0, "expired_grants": 1, "outbox_sent": 2,
                          "outbox_pending": 1}  # fmt: skip
        first = _state()
        assert tasks.close_periods() == {"closed": 0, "invoiced": 0, "skipped": 0, "expired_grants": 0,
                                         "outbox_sent": 0, "outbox_pending": 1}  # fmt: skip
        assert _state() == first

    invoice = Invoice.objects.get(account=starter)
    assert (invoice.units, invoice.amount_cents) == (Decimal(1500), 508)  # 5 + 500 x 0.00015 = 5.075 -> 5.08
    assert BillingPeriod.objects.get(account=starter, start=datetime(2026, 12, 1, tzinfo=UTC)).status == "open"
    assert Wallet.objects.get(account=jive).balance == Decimal(100)  # the unspent promo expired
    summary = [m for m in mail.outbox if "summary for November 2026" in m.subject]
    assert len(summary) == 1 and summary[0].to == ["owner@shop.test"]
    assert "Total: 5.08 USD" in summary[0].body
    assert "Overage: $0.08" in summary[0].body or "overage: $0.08" in summary[0].body
    runs = JobRun.objects.filter(job="close_periods")
    assert [r.status for r in runs] == ["succeeded", "succeeded"]


@pytest.mark.usefixtures("catalog")
def test_close_periods_command_prints_its_counts():
    with time_machine.travel(datetime(2026, 11, 10, tzinfo=UTC), tick=False):
        account = AccountFactory.create(plan="starter")
        period_current(account=account, as_of=datetime(2026, 11, 10, tzinfo=UTC))
    out = StringIO()
    call_command("close_periods", "--as-of", "2026-12-01T03:00:00Z", stdout=out)
    assert json.loads(out.getvalue())["closed"] == 1
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("close_periods", "--as-of", "next tuesday", stdout=StringIO())


@pytest.mark.django_db
def test_a_job_whose_lock_is_held_is_skipped_and_recorded():
    with job_lock("close_periods") as acquired:
        assert acquired
        assert tasks.close_periods(as_of="2026-12-01T03:00:00+00:00") == {"skipped": True}
    assert JobRun.objects.get(job="close_periods").status == "skipped"


@pytest.mark.usefixtures("catalog")
def test_check_integrity_finds_a_planted_mismatch_and_exits_1():
    account = AccountFactory.create(plan="jive", credits="100")
    usage_record_batch(
        account=account,
        raw_events=[{"request_id": "a", "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 500}],
    )
    out = StringIO()
    call_command("check_integrity", stdout=out)
    assert json.loads(out.getvalue()) == {"ok": True, "problems": []}

    Wallet.objects.filter(account=account).update(balance=Decimal("1000"))  # planted: the ledger says 98.5
    BillingPeriod.objects.filter(account=account).update(messages=7)
    out = StringIO()
    with pytest.raises(CommandError, match="2 integrity problem"):
        call_command("check_integrity", stdout=out)
    problems = json.loads(out.getvalue())["problems"]
    assert {p["check"] for p in problems} == {"wallet_balance_equals_ledger", "period_messages_equals_events"}
    assert problems[0]["expected"].startswith("98.5")


@pytest.mark.usefixtures("catalog")
def test_integrity_job_emails_staff_about_problems(django_user_model):
    django_user_model.objects.create_user("ops", email="ops@tokenledger.test", password="x", is_staff=True)
    account = AccountFactory.create(plan="jive", credits="100")
    Wallet.objects.filter(account=account).update(held=Decimal(5))
    assert tasks.check_integrity(as_of="2026-11-21T10:00:00+00:00") == {"problems": 1}
    assert mail.outbox[-1].to == ["ops@tokenledger.test"]
    assert "held_equals_active_reservations" in mail.outbox[-1].body
