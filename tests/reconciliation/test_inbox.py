"""The scheduled job: each new file in RECONCILIATION_INBOX reconciled once (by SHA-256), filed into done/ or
failed/, and one email to staff when a run falls below the match rate, a line exceeds the amount, or a file could
not be read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from core.models import JobRun
from reconciliation.models import ReconciliationRun
from reconciliation.tasks import reconciliation_inbox_task
from tests.reconciliation.conftest import sample

AS_OF = "2026-11-01T03:00:00+00:00"


@pytest.fixture
def inbox(db, tmp_path, settings):
    settings.RECONCILIATION_INBOX = tmp_path / "inbox"
    settings.RECONCILIATION_ALERT_DISCREPANCY_USD = "0.5"
    (tmp_path / "inbox").mkdir()
    get_user_model().objects.create_user("ops", email="ops@example.com", is_staff=True)
    get_user_model().objects.create_user("gone", email="gone@example.com", is_staff=True, is_active=False)
    get_user_model().objects.create_user("customer", email="customer@example.com")
    return tmp_path / "inbox"


def files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_the_inbox_job_reconciles_new_files_and_alerts_staff(inbox, account, record, mailoutbox):
    record(
        account,
        ("e2", "gpt-4o-mini", "2026-10-02T10:00:00Z", 0, 0, 1_000_000),  # 0.60 against the export's 1.20
        ("req_0001", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500),
        ("req_0002", "gpt-4o-mini", "2026-10-01T10:01:00Z", 2000, 1000, 100),
        ("req_0003", "claude-3-5-haiku", "2026-10-01T10:02:00Z", 1000, 0, 1000),
    )
    (inbox / "openai-costs-october.csv").write_bytes(sample("openai-costs-export.csv"))
    (inbox / "gateway-october.csv").write_bytes(sample("requests.csv"))
    (inbox / "notes.txt").write_bytes(b"remember the milk\n")
    (inbox / ".partial-upload").write_bytes(b"still arriving")

    counts = reconciliation_inbox_task(AS_OF)

    assert counts == {"runs": 2, "already_done": 0, "unreadable": 1, "alert_recipients": 1}
    assert files(inbox) == [".partial-upload", "done/gateway-october.csv", "done/openai-costs-october.csv",
                            "failed/notes.txt"]  # fmt: skip
    runs = {run.file_name: run for run in ReconciliationRun.objects.all()}
    costs, gateway = runs["openai-costs-october.csv"], runs["gateway-october.csv"]
    assert (costs.trigger, costs.as_of, costs.source) == (
        "schedule",
        datetime(2026, 11, 1, 3, tzinfo=UTC),
        "openai-costs",
    )
    assert (gateway.source, gateway.matched, gateway.events_updated) == ("requests", 3, 3)
    assert runs["notes.txt"].status == "failed"

    (email,) = mailoutbox
    assert email.to == ["ops@example.com"]
    assert email.subject == "TokenLedger reconciliation: 2 items need attention"
    # the cost export: 0 matched of 4 compared; 10-01 (the gateway's two small requests against 0.895874) and 10-02
    # (0.60 against 1.20) are off by more than 0.50; the gateway log matched fully
    assert f"Run #{costs.pk}: openai-costs-october.csv (openai-costs), 0 matched, 2 discrepancies, 2 not found" in (
        email.body
    )
    assert "match rate 0.0 % is below 95.0 %" in email.body
    assert "2026-10-02|gpt-4o-mini|proj_demo: we calculated $0.60, the provider billed $1.20: price drift" in email.body
    assert "2026-10-01|gpt-4o-mini|proj_demo: we calculated $0.000735, the provider billed $0.895874" in email.body
    assert f"/admin/reconciliation/reconciliationrun/{costs.pk}/change/" in email.body
    assert "gateway-october.csv" not in email.body
    assert "notes.txt could not be read and was moved to failed/: the header matches no known source" in email.body
    job = JobRun.objects.get(job="reconciliation.inbox")
    assert (job.status, job.counts["runs"]) == ("succeeded", 2)


def test_a_file_already_reconciled_is_not_run_again(inbox, catalog, mailoutbox):
    (inbox / "gateway.csv").write_bytes(sample("requests.csv"))
    assert reconciliation_inbox_task(AS_OF)["runs"] == 1
    first = ReconciliationRun.objects.get()

    assert reconciliation_inbox_task(AS_OF) == {"runs": 0, "already_done": 0, "unreadable": 0, "alert_recipients": 0}

    (inbox / "gateway.csv").write_bytes(sample("requests.csv"))  # the same file dropped again
    assert reconciliation_inbox_task(AS_OF)["already_done"] == 1
    assert ReconciliationRun.objects.count() == 1
    assert files(inbox) == ["done/gateway.csv", f"done/run-{first.pk}-gateway.csv"]


def test_no_email_when_every_run_is_fine(inbox, account, record, mailoutbox):
    record(
        account,
        ("a1", "claude-3-5-haiku", "2026-10-01T09:00:00Z", 2_000_000, 0, 1_000_000),
        ("a2", "claude-3-5-haiku", "2026-10-02T09:00:00Z", 200_000, 200_000, 0),
    )
    (inbox / "anthropic.json").write_bytes(sample("anthropic-cost-report.json"))
    assert reconciliation_inbox_task(AS_OF) == {"runs": 1, "already_done": 0, "unreadable": 0, "alert_recipients": 0}
    assert mailoutbox == []
    assert ReconciliationRun.objects.get().match_rate == 1


def test_a_missing_inbox_is_nothing_to_do(tmp_path, settings, catalog):
    settings.RECONCILIATION_INBOX = tmp_path / "nowhere"
    assert reconciliation_inbox_task(AS_OF) == {"runs": 0, "already_done": 0, "unreadable": 0, "alert_recipients": 0}
