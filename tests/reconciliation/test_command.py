"""`manage.py reconcile`: the summary as JSON on stdout, exit 0 even with discrepancies, 1 with a one-line message
when the file cannot be read at all; what a run keeps about its file."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from reconciliation.management.commands.reconcile import Command
from reconciliation.models import ReconciliationRun
from tests.reconciliation.conftest import SAMPLES, sample

CONTRACT_KEYS = {"run_id", "source", "rows", "matched", "discrepancy", "not_found", "errors", "total_calculated_usd",
                 "total_actual_usd", "difference_usd", "match_rate", "not_in_export"}  # fmt: skip


@pytest.fixture
def run_command(monkeypatch):
    """The exit status `manage.py reconcile ARGV` would have (run_from_argv exits as manage.py does)."""
    # run_from_argv closes the database connections when done, which would end the test's transaction
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)

    def run(*argv: str) -> int:
        try:
            Command().run_from_argv(["manage.py", "reconcile", *argv])
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    return run


def test_prints_the_summary_and_exits_0_with_discrepancies(account, record, capsys, run_command):
    record(account, ("e2", "gpt-4o-mini", "2026-10-02T10:00:00Z", 0, 0, 1_000_000))  # 0.60 against 1.20
    path = SAMPLES / "openai-costs-export.csv"
    assert run_command("--source", "openai-costs", str(path)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == CONTRACT_KEYS
    # 4 buckets: 10-02 a discrepancy, the others billed with no usage of ours
    assert (summary["rows"], summary["matched"], summary["discrepancy"], summary["not_found"]) == (5, 0, 1, 3)
    run = ReconciliationRun.objects.get(pk=summary["run_id"])
    assert (run.trigger, run.file_name, run.status, run.actor) == (
        "command",
        "openai-costs-export.csv",
        "completed",
        None,
    )
    assert run.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert run.size_bytes == len(path.read_bytes())
    assert run.duration_ms is not None and run.finished_at is not None
    assert run.options["tolerance_pct"] == "5" and run.options["tolerance_usd"] == "0.05"


def test_the_source_is_told_from_the_header_when_not_named(catalog, capsys, run_command):
    assert run_command(str(SAMPLES / "anthropic-cost-report.json")) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "anthropic-costs"


def test_exit_1_with_one_line_when_the_file_cannot_be_read(catalog, tmp_path, capsys, run_command):
    bad = tmp_path / "notes.csv"
    bad.write_bytes(b"name,colour\nx,y\n")
    assert run_command(str(bad)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().count("\n") == 0
    assert "notes.csv cannot be read: the header matches no known source" in captured.err
    failed = ReconciliationRun.objects.get()
    assert (failed.status, failed.source, failed.file_name) == ("failed", "", "notes.csv")
    assert failed.failure.startswith("the header matches no known source")

    assert run_command(str(tmp_path / "missing.csv")) == 1
    assert "cannot open" in capsys.readouterr().err
    assert run_command("--tolerance-pct", "-1", str(bad)) != 0  # argparse refuses it before anything runs


def test_the_same_file_again_is_a_new_run_that_names_the_earlier_one(catalog, capsys, run_command):
    path = str(SAMPLES / "requests.csv")
    assert run_command(path) == 0
    first = json.loads(capsys.readouterr().out)["run_id"]
    assert run_command(path) == 0
    captured = capsys.readouterr()
    second = json.loads(captured.out)["run_id"]
    assert second != first
    assert f"in run #{first}" in captured.err
    assert ReconciliationRun.objects.get(pk=second).same_file_as_id == first


def test_dry_run_and_tolerances(account, record):
    record(account, ("e2", "gpt-4o-mini", "2026-10-02T10:00:00Z", 0, 0, 1_000_000))
    out = call_command_json(
        "reconcile", str(SAMPLES / "openai-costs-export.csv"), "--dry-run", "--tolerance-pct", "60",
        "--tolerance-usd", "0.01",
    )  # fmt: skip
    assert (out["run_id"], out["matched"], out["discrepancy"]) == (None, 1, 0)
    assert ReconciliationRun.objects.count() == 0


def test_call_command_raises_command_error_for_an_unreadable_file(catalog, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(CommandError, match=r"empty\.csv cannot be read: the file is empty") as caught:
        call_command("reconcile", str(empty))
    assert caught.value.returncode == 1


def call_command_json(*args: str) -> dict:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def test_samples_are_the_shared_ones_when_shared_is_beside_the_repo():
    """The copies under tests/ are the samples of ../shared when that folder exists (CI has it beside the repo)."""
    shared = SAMPLES.parents[3] / "shared" / "samples"
    if not shared.is_dir():
        pytest.skip("no ../shared/samples beside the repository")
    for name in ("openai-costs-export.csv", "openai-usage-export.csv", "anthropic-cost-report.csv",
                 "anthropic-cost-report.json", "requests.csv"):  # fmt: skip
        assert (shared / name).read_bytes() == sample(name), name
