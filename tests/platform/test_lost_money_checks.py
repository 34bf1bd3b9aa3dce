"""The integrity check sees money that could be lost, and a job whose process died is shown as abandoned."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing.models import BillingPeriod, Invoice, InvoiceOutbox, LateUsageAdjustment
from billing.services.periods import period_close
from config import tasks
from core.jobs import job_lock
from core.models import JobRun
from tests.factories import AccountFactory
from usage.models import UsageEvent
from usage.services.recording import usage_record_batch

OCT_10 = datetime(2026, 10, 10, 12, tzinfo=UTC)
NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def catalog(db):
    call_command("seed_catalog", stdout=StringIO())


def _problems() -> list[dict[str, str]]:
    out = StringIO()
    with contextlib.suppress(CommandError):
        call_command("check_integrity", stdout=out)
    return json.loads(out.getvalue())["problems"]


def _checks() -> set[str]:
    return {p["check"] for p in _problems()}


def _record(account: Any, request_id: str, tokens: int, **extra: Any) -> None:
    usage_record_batch(account=account, raw_events=[
        {"request_id": request_id, "model": "qwen-3-32b", "input_tokens": tokens - 1000, "output_tokens": 1000, **extra}
    ])  # fmt: skip


@pytest.fixture
def closed_october(catalog) -> Invoice:
    """A `basic` account with 12,000 tokens in October (2 USD of overage), October closed on November 1."""
    with time_machine.travel(OCT_10, tick=False):
        account = AccountFactory.create(plan="basic")
        _record(account, "october", 12000)
    with time_machine.travel(NOV_1, tick=False):
        invoice = period_close(period=BillingPeriod.objects.get(account=account), as_of=NOV_1)
        tasks.send_outbox()  # Stripe is off: the overage waits, pending with that error; the summary is sent
    assert _problems() == []
    return invoice


def test_an_invoice_with_overage_and_no_overage_billing_record(closed_october):
    InvoiceOutbox.objects.filter(invoice=closed_october, kind="overage").delete()
    [problem] = _problems()
    assert problem == {
        "check": "overage_has_one_billing_record", "object": f"invoice {closed_october.pk} of account "
        f"{closed_october.account_id}", "expected": "1 overage billing record (sent, or pending with its error)",
        "found": "0",
    }  # fmt: skip


def test_an_outbox_row_no_sender_ever_tried(closed_october):
    InvoiceOutbox.objects.filter(invoice=closed_october).update(
        status="pending", attempts=0, created_at=timezone.now() - timedelta(hours=2)
    )
    problems = _problems()
    assert {(p["check"], p["object"]) for p in problems} == {
        ("outbox_row_tried", f"overage of invoice {closed_october.pk}"),
        ("outbox_row_tried", f"monthly_summary of invoice {closed_october.pk}"),
    }


def test_late_events_the_adjustments_do_not_cover(closed_october):
    account = closed_october.account
    with time_machine.travel(datetime(2026, 11, 5, tzinfo=UTC), tick=False):
        _record(account, "late", 3000, occurred_at="2026-10-20T10:00:00Z")
    assert _problems() == []
    LateUsageAdjustment.objects.filter(period=closed_october.period).delete()
    [problem] = _problems()
    assert (problem["check"], problem["object"]) == (
        "late_events_covered_by_adjustment",
        f"period {closed_october.period_id}",
    )
    assert (problem["expected"], problem["found"]) == ("1 late events, 3000 units", "adjustments of 0 events, 0 units")


def test_an_event_of_a_closed_period_counted_in_another_period(closed_october):
    """What recording did before late usage existed: the event went into the open period as if on time."""
    account = closed_october.account
    with time_machine.travel(datetime(2026, 11, 5, tzinfo=UTC), tick=False):
        _record(account, "moved", 3000)
    UsageEvent.objects.filter(request_id="moved").update(occurred_at=datetime(2026, 10, 20, tzinfo=UTC))
    [problem] = _problems()
    assert problem["check"] == "event_in_closed_period"
    assert problem["object"] == f"event 'moved' of account {account.pk}"


def test_events_of_a_closed_period_its_invoice_did_not_bill(closed_october):
    """What a close in the future did: usage recorded into the period after its invoice was written."""
    UsageEvent.objects.filter(request_id="october").update(period=closed_october.period)
    Invoice.objects.filter(pk=closed_october.pk).update(messages=0)
    [problem] = _problems()
    assert (problem["check"], problem["found"]) == ("closed_period_events_billed", "1 events counted in the period")


# --- job records -------------------------------------------------------------------------------------------------


def _dead_run(job: str = "close_periods") -> JobRun:
    """What a killed process leaves: a `running` record whose lease nobody renews, and (without PostgreSQL) the cache
    lock it took."""
    started = timezone.now() - timedelta(minutes=10)
    run = JobRun.objects.create(job=job, as_of=started, started_at=started, lease_expires_at=started + timedelta(minutes=2),
                                host="worker-1", pid=4242)  # fmt: skip
    cache.set(f"job-lock:{job}", "the-dead-process", timeout=3600)
    return run


@pytest.mark.django_db
def test_a_running_record_whose_lease_expired_is_shown_abandoned_and_reported(admin_client):
    run = _dead_run()
    assert (run.status, run.shown_status()) == ("running", "abandoned")
    page = admin_client.get("/admin/platform/jobrun/")
    assert page.status_code == 200
    assert "abandoned" in page.content.decode()
    filtered = admin_client.get("/admin/platform/jobrun/?status=abandoned")
    assert "worker-1" in filtered.content.decode()
    assert "worker-1" not in admin_client.get("/admin/platform/jobrun/?status=running").content.decode()
    [problem] = _problems()
    assert (problem["check"], problem["object"]) == ("job_running_has_live_process",
                                                     f"job run {run.pk} (close_periods, pid 4242 on worker-1)")  # fmt: skip


@pytest.mark.usefixtures("catalog")
def test_the_next_run_takes_over_from_a_dead_one():
    dead = _dead_run()
    counts = tasks.close_periods(as_of=NOV_1.isoformat())
    assert counts.get("skipped") is not True and counts["closed"] == 0
    dead.refresh_from_db()
    assert dead.status == "abandoned"
    assert "its process died" in dead.error
    assert JobRun.objects.exclude(pk=dead.pk).get().status == "succeeded"
    assert _problems() == []


@pytest.mark.django_db
def test_a_live_run_keeps_its_job():
    with job_lock("close_periods") as acquired:  # the live process holds the job's lock, then records its run
        assert acquired
        live = JobRun.objects.create(job="close_periods", as_of=timezone.now(), started_at=timezone.now(),
                                     lease_expires_at=timezone.now() + timedelta(minutes=2))  # fmt: skip
        assert tasks.close_periods(as_of=NOV_1.isoformat()) == {"skipped": True}
        cache.delete("job-lock:close_periods")  # its cache lock timed out, yet its lease is live: it keeps the job
        assert tasks.close_periods(as_of=NOV_1.isoformat()) == {"skipped": True}
    live.refresh_from_db()
    assert (live.status, live.shown_status()) == ("running", "running")
