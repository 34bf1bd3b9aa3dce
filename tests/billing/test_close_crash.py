"""A period close killed with SIGKILL after its first chunk committed, then run again (a real subprocess on
PostgreSQL): every period closed once, every overage billed once, every summary sent once, the dead run abandoned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import psycopg
import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection

from billing.models import BillingPeriod, Invoice, OverageBilling
from core.jobs import job_lock
from core.models import JobRun
from tests.billing.stripe_samples import Recorded, RecordingStripe, stripe_recorder  # noqa: F401
from tests.factories import AccountFactory
from usage.models import Alert
from usage.services.recording import usage_record_batch

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
OCT_10 = datetime(2026, 10, 10, 12, tzinfo=UTC)
AS_OF = "2026-11-01T03:00:00+00:00"
ACCOUNTS = 12
CHUNK = 4


def _stripe_invoicing(stripe: RecordingStripe) -> None:
    stripe.on("POST", "/v1/invoiceitems", lambda _r: {"id": stripe.next_id("ii"), "object": "invoiceitem"})
    stripe.on("POST", "/v1/invoices", lambda _r: {"id": stripe.next_id("in"), "object": "invoice", "status": "draft"})

    def advance(req: Recorded) -> dict[str, Any]:
        invoice_id = req.path.split("/")[3]
        status = "open" if req.path.endswith("/finalize") else "paid"
        return {"id": invoice_id, "object": "invoice", "status": status}

    stripe.on("POST", "/v1/invoices/", advance, prefix=True)


def _child_env() -> dict[str, str]:
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "REDIS_URL", "EMAIL_"))}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",  # the test database
        SECRET_KEY="x", DEBUG="0", BILLING_CLOSE_CHUNK=str(CHUNK),
        EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
    )  # fmt: skip
    return env


def _wait_for(predicate: Any, what: str, limit: float = 120) -> None:
    """Poll the database until `predicate()` holds (a bound on a hung child, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_a_close_killed_after_its_first_chunk_is_finished_once_by_the_next_run(stripe_recorder):  # noqa: F811
    call_command("seed_catalog", stdout=StringIO())
    with time_machine.travel(OCT_10, tick=False):
        accounts = [
            AccountFactory.create(plan="basic", owner_email=f"owner{n}@crash.test", name=f"Crash shop {n}")
            for n in range(ACCOUNTS)
        ]
        for account in accounts:  # 12,000 tokens on a plan with 10,000 included: 2,000 over at 0.001 = 2 USD
            usage_record_batch(account=account, raw_events=[
                {"request_id": "big", "model": "qwen-3-32b", "input_tokens": 11000, "output_tokens": 1000}
            ])  # fmt: skip
    due = list(BillingPeriod.objects.order_by("end", "pk").values_list("pk", "account_id"))
    second_chunk_account = due[CHUNK][1]

    # the test holds the lock of an account of the second chunk: the child commits its first chunk, then waits there
    db = connection.settings_dict
    blocker = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"])
    blocker.execute("SELECT id FROM billing_account WHERE id = %s FOR UPDATE", [second_chunk_account])
    child = subprocess.Popen(
        [sys.executable, "manage.py", "close_periods", "--as-of", AS_OF], cwd=ROOT, env=_child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for(lambda: Invoice.objects.count() >= CHUNK, "the first chunk's invoices")
        assert child.poll() is None, child.communicate()
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
        blocker.rollback()
        blocker.close()
    assert child.returncode == -signal.SIGKILL
    assert Invoice.objects.count() == CHUNK  # the killed run committed its first chunk and nothing after
    killed = JobRun.objects.get(job="close_periods")
    assert killed.status == "running"

    def lock_free() -> bool:  # the dead process's advisory lock goes with its connection
        with job_lock("close_periods") as acquired:
            return acquired

    _wait_for(lock_free, "the killed run's lock to be released")
    _stripe_invoicing(stripe_recorder)
    out = StringIO()
    call_command("close_periods", "--as-of", AS_OF, stdout=out)
    assert json.loads(out.getvalue())["closed"] == ACCOUNTS - CHUNK

    october = BillingPeriod.objects.filter(start=datetime(2026, 10, 1, tzinfo=UTC))
    assert october.count() == ACCOUNTS and set(october.values_list("status", flat=True)) == {"closed"}
    assert Invoice.objects.count() == ACCOUNTS
    assert BillingPeriod.objects.filter(start=datetime(2026, 11, 1, tzinfo=UTC), status="open").count() == ACCOUNTS
    # every invoice's overage went to Stripe exactly once, the killed run's first chunk included
    items = [r for r in stripe_recorder.requests if r.path == "/v1/invoiceitems"]
    invoice_ids = sorted(Invoice.objects.values_list("pk", flat=True))
    assert sorted(r.idempotency_key for r in items) == sorted(f"overage-item:{pk}" for pk in invoice_ids)
    assert {r.form["amount"] for r in items} == {"200"}
    cursors = OverageBilling.objects.filter(invoice__in=invoice_ids)
    assert sorted(cursors.values_list("invoice_id", flat=True)) == invoice_ids
    assert set(cursors.values_list("step", flat=True)) == {"paid"}
    # every account got its October summary once
    summaries = [m for m in mail.outbox if "summary for October 2026" in m.subject]
    assert sorted(m.to[0] for m in summaries) == sorted(f"owner{n}@crash.test" for n in range(ACCOUNTS))
    assert Alert.objects.filter(kind="monthly_summary", sent_at__isnull=False).count() == ACCOUNTS
    # the dead run is shown as abandoned, the new one succeeded
    killed.refresh_from_db()
    assert killed.status == "abandoned"
    assert JobRun.objects.filter(job="close_periods").exclude(pk=killed.pk).get().status == "succeeded"
    integrity = StringIO()
    call_command("check_integrity", stdout=integrity)
    assert json.loads(integrity.getvalue()) == {"ok": True, "problems": []}

    # a third run sends nothing again
    requests, emails = len(stripe_recorder.requests), len(mail.outbox)
    call_command("close_periods", "--as-of", AS_OF, stdout=StringIO())
    assert (len(stripe_recorder.requests), len(mail.outbox)) == (requests, emails)
