"""A gateway's per-request log matched by request id: each matched event gets its actual cost, status and time,
and running the same file again changes nothing. Default tolerance: max(5 % of the gateway's cost, $0.000001)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from reconciliation.models import ReconciliationLine, ReconciliationRun
from tests.reconciliation.conftest import run_file, sample
from usage.models import UsageEvent

D = Decimal
AS_OF = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
HEADER = b"request_id,timestamp,model,input_tokens,output_tokens,cached_input_tokens,cost_usd\r\n"


def lines(run: ReconciliationRun | None) -> dict[str, ReconciliationLine]:
    assert run is not None
    return {line.key: line for line in run.lines.order_by("id")}


def event_state(request_id: str) -> tuple[Decimal | None, str, datetime | None]:
    event = UsageEvent.objects.get(request_id=request_id)
    return event.actual_cost_usd, event.reconciliation_status, event.reconciled_at


@pytest.fixture
def sample_events(account, record):
    record(
        account,
        # 1000 x 0.15 + 500 x 0.60 = 0.00045, as the gateway says
        ("req_0001", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500),
        # 1000 x 0.15 + 1000 x 0.075 + 100 x 0.60 = 0.000285
        ("req_0002", "gpt-4o-mini", "2026-10-01T10:01:00Z", 2000, 1000, 100),
        # 1000 x 0.80 + 1000 x 4.00 = 0.0048
        ("req_0003", "claude-3-5-haiku", "2026-10-01T10:02:00Z", 1000, 0, 1000),
    )


def test_requests_sample_matches_and_sets_each_events_actual_cost(sample_events):
    result = run_file(sample("requests.csv"), as_of=AS_OF)
    summary = result.summary
    assert (summary["rows"], summary["matched"], summary["discrepancy"], summary["not_found"]) == (3, 3, 0, 0)
    assert (summary["errors"], summary["not_in_export"], summary["match_rate"]) == (0, 0, "1.0000")
    assert summary["total_actual_usd"] == summary["total_calculated_usd"] == "0.005535000000"
    assert result.run is not None and result.run.events_updated == 3
    assert event_state("req_0002") == (D("0.000285"), "matched", AS_OF)
    # matched requests are rolled up per day x model (each event carries its own actual cost and status)
    found = lines(result.run)
    assert set(found) == {"2026-10-01|gpt-4o-mini|matched requests", "2026-10-01|claude-3-5-haiku|matched requests"}
    gpt = found["2026-10-01|gpt-4o-mini|matched requests"]
    assert (gpt.status, gpt.events, gpt.calculated_usd, gpt.actual_usd, gpt.reason) == (
        "matched", 2, D("0.000735"), D("0.000735"), "2 requests matched",
    )  # fmt: skip
    assert (gpt.input_tokens, gpt.cached_input_tokens, gpt.provider_output_tokens, gpt.line_number) == (
        3000, 1000, 600, 2,
    )  # fmt: skip


def test_running_the_same_file_again_is_idempotent(sample_events):
    first = run_file(sample("requests.csv"), as_of=AS_OF)
    before = {
        e.request_id: (e.actual_cost_usd, e.reconciliation_status, e.reconciled_at) for e in UsageEvent.objects.all()
    }
    second = run_file(sample("requests.csv"), as_of=datetime(2026, 11, 3, tzinfo=UTC))
    after = {
        e.request_id: (e.actual_cost_usd, e.reconciliation_status, e.reconciled_at) for e in UsageEvent.objects.all()
    }
    assert after == before  # not even the reconciled time moves
    assert first.run is not None and second.run is not None and second.run.events_updated == 0
    assert {**second.summary, "run_id": None} == {**first.summary, "run_id": None}
    assert second.same_file_as == first.run
    assert second.run.same_file_as_id == first.summary["run_id"]
    assert second.run.sha256 == first.run.sha256 and len(second.run.sha256) == 64


def test_a_corrected_file_moves_the_event_from_discrepancy_to_matched(sample_events):
    wrong = HEADER + b"req_0001,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.0009\r\n"
    run_file(wrong, as_of=AS_OF)
    assert event_state("req_0001") == (D("0.0009"), "discrepancy", AS_OF)
    later = datetime(2026, 11, 5, tzinfo=UTC)
    run_file(sample("requests.csv"), as_of=later)
    assert event_state("req_0001") == (D("0.00045"), "matched", later)


def test_discrepancy_reasons_per_request(account, record):
    record(
        account,
        ("tokens", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500),  # 0.00045
        ("drift", "gpt-4o-mini", "2026-10-01T10:01:00Z", 0, 0, 1000),  # output only: 0.0006
        ("cached", "gpt-4o-mini", "2026-10-01T10:02:00Z", 10000, 8000, 0),  # 2000 x 0.15 + 8000 x 0.075 = 0.0009
        ("alias", "claude-3-5-haiku", "2026-10-01T10:03:00Z", 1000, 0, 0),  # 0.0008
        ("model", "gpt-4o-mini", "2026-10-01T10:04:00Z", 1000, 0, 0),  # 0.00015
    )
    content = HEADER + (
        b"tokens,2026-10-01T10:00:00Z,gpt-4o-mini,2000,1000,0,0.0009\r\n"  # the gateway saw twice the tokens
        b"drift,2026-10-01T10:01:00Z,gpt-4o-mini,0,1000,0,0.0012\r\n"  # $1.20 per 1M output
        b"cached,2026-10-01T10:02:00Z,gpt-4o-mini,10000,0,8000,0.0015\r\n"  # all 10,000 at 0.15
        b"alias,2026-10-01T10:03:00Z,claude-haiku-latest,1000,0,0,0.0016\r\n"
        b"model,2026-10-01T10:04:00Z,claude-3-5-haiku,1000,0,0,0.0008\r\n"
    )
    result = run_file(content, as_of=AS_OF)
    assert result.summary["discrepancy"] == 5
    found = lines(result.run)
    assert {key: line.reason_code for key, line in found.items()} == {
        "tokens": "token_counts",
        "drift": "price_drift",
        "cached": "cached_as_uncached",
        "alias": "model_alias",
        "model": "model_differs",
    }
    assert found["tokens"].reason.endswith("our event recorded fewer tokens than the gateway logged for this request")
    assert found["drift"].implied_output_per_million == D("1.2")
    assert (
        "the gateway's amount is our 8,000 cached input tokens priced at the full input price" in found["cached"].reason
    )
    assert event_state("drift") == (D("0.0012"), "discrepancy", AS_OF)


def test_not_found_and_not_in_export(account, record):
    record(
        account,
        ("known", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500),
        ("unlisted", "gpt-4o-mini", "2026-10-01T10:30:00Z", 1000, 0, 0),  # inside the file's time span
        ("later", "gpt-4o-mini", "2026-10-01T12:00:00Z", 1000, 0, 0),  # after it: not this file's business
    )
    content = HEADER + (
        b"known,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.00045\r\n"
        b"ghost,2026-10-01T11:00:00Z,gpt-4o-mini,1000,500,0,0.00045\r\n"
    )
    result = run_file(content, as_of=AS_OF)
    s = result.summary
    assert (s["matched"], s["not_found"], s["not_in_export"], s["match_rate"]) == (1, 1, 1, "0.5000")
    found = lines(result.run)
    assert (found["ghost"].status, found["ghost"].reason_code) == ("not_found", "missing_events")
    assert (found["unlisted"].status, found["unlisted"].calculated_usd) == ("not_in_export", D("0.00015"))
    assert event_state("unlisted") == (None, "pending", None)
    assert "later" not in found


def test_an_event_far_from_the_gateways_timestamp_is_still_found(account, record):
    record(account, ("skewed", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500))
    content = HEADER + b"skewed,2026-10-03T10:00:00Z,gpt-4o-mini,1000,500,0,0.00045\r\n"  # two days off
    result = run_file(content, as_of=AS_OF)
    assert result.summary["matched"] == 1
    assert event_state("skewed")[1] == "matched"


def test_a_request_id_two_accounts_share(account, other_account, record):
    record(account, ("shared", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500))
    record(other_account, ("shared", "claude-3-5-haiku", "2026-10-01T10:00:00Z", 1000, 0, 1000))
    record(account, ("twice", "gpt-4o-mini", "2026-10-01T10:01:00Z", 1000, 0, 0))
    record(other_account, ("twice", "gpt-4o-mini", "2026-10-01T10:01:00Z", 1000, 0, 0))
    content = HEADER + (
        b"shared,2026-10-01T10:00:00Z,claude-3-5-haiku-20241022,1000,1000,0,0.0048\r\n"  # the model tells them apart
        b"twice,2026-10-01T10:01:00Z,gpt-4o-mini,1000,0,0,0.00015\r\n"  # nothing does
    )
    result = run_file(content, as_of=AS_OF)
    assert result.run is not None
    statuses = sorted(result.run.lines.values_list("key", "status"))
    # account's "shared" and both "twice" events are in the file's span but matched by no row
    assert statuses == [("2026-10-01|claude-3-5-haiku|matched requests", "matched"), ("shared", "not_in_export"),
                        ("twice", "error"), ("twice", "not_in_export"), ("twice", "not_in_export")]  # fmt: skip
    assert UsageEvent.objects.get(request_id="shared", account=other_account).reconciliation_status == "matched"
    assert UsageEvent.objects.get(request_id="shared", account=account).reconciliation_status == "pending"
    ambiguous = result.run.lines.get(status="error")
    assert (ambiguous.reason_code, ambiguous.line_number) == ("ambiguous", 3)
    assert result.summary["not_in_export"] == 3


def test_a_request_id_repeated_in_the_file_is_an_error(sample_events):
    content = sample("requests.csv") + b"req_0001,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.00045\r\n"
    result = run_file(content, as_of=AS_OF)
    assert (result.summary["matched"], result.summary["errors"]) == (3, 1)
    error = result.run.lines.get(status="error")  # type: ignore[union-attr]
    assert (error.line_number, error.reason) == (5, "request id repeated (first on line 2)")


def test_a_request_id_repeated_chunks_apart_is_an_error_too(sample_events, monkeypatch):
    monkeypatch.setattr("reconciliation.services.requests.matcher.CHUNK", 2)  # lines 2-3, then 4-5: the repeat is apart
    content = sample("requests.csv") + b"req_0001,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.99\r\n"
    result = run_file(content, as_of=AS_OF)
    assert (result.summary["matched"], result.summary["discrepancy"], result.summary["errors"]) == (3, 0, 1)
    assert result.summary["total_actual_usd"] == "0.005535000000"  # the repeat's 0.99 is not counted
    error = result.run.lines.get(status="error")  # type: ignore[union-attr]
    assert (error.line_number, error.reason) == (5, "request id repeated (an earlier row matched its event)")
    assert event_state("req_0001")[:2] == (D("0.00045"), "matched")


def test_the_request_tolerance_is_five_percent_or_a_millionth_of_a_dollar(account, record):
    record(
        account,
        ("tiny", "gpt-4o-mini", "2026-10-01T10:00:00Z", 0, 0, 1),  # one output token: $0.0000006
        ("usual", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500),  # $0.00045
    )
    cases = [
        (b"tiny,0.0000015", "matched"),  # off by 0.0000009 <= max(5 % = 0.000000075, 0.000001)
        (b"tiny,0.0000020", "discrepancy"),  # off by 0.0000014
        (b"usual,0.000472", "matched"),  # off by 0.000022 <= 5 % of 0.000472 = 0.0000236
        (b"usual,0.00048", "discrepancy"),  # off by 0.00003 > 5 % of 0.00048 = 0.000024
    ]
    for row, expected in cases:
        request_id, cost = row.split(b",")
        tokens = b"0,1,0" if request_id == b"tiny" else b"1000,500,0"
        content = HEADER + request_id + b",2026-10-01T10:00:00Z,gpt-4o-mini," + tokens + b"," + cost + b"\r\n"
        run_file(content, as_of=AS_OF)
        assert event_state(request_id.decode())[1] == expected, row


def test_a_dry_run_writes_nothing(sample_events):
    result = run_file(sample("requests.csv"), dry_run=True, as_of=AS_OF)
    assert result.run is None and result.summary["run_id"] is None
    assert result.summary["matched"] == 3
    assert ReconciliationRun.objects.count() == 0 and ReconciliationLine.objects.count() == 0
    assert event_state("req_0001") == (None, "pending", None)
