"""Every reason a line can carry says what actually differs: a cost difference on a request both sides logged with
the same tokens is price drift, never events missing on one side (issue 21's 21 requests with 5 costs raised).

Seed prices, USD per 1M tokens: gpt-4o-mini input 0.15, cached 0.075, output 0.60.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.urls import reverse

from reconciliation.models import ReconciliationLine, ReconciliationRun
from tests.reconciliation.conftest import run_file
from usage.models import UsageEvent

D = Decimal
AS_OF = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
HEADER = b"request_id,timestamp,model,input_tokens,output_tokens,cached_input_tokens,cost_usd\r\n"
COSTS_HEADER = b"start_time,end_time,amount_value,amount_currency,line_item,project_id\r\n"
OCT_1 = b"1790812800,1790899200"


def our_requests_fed_back(*, raised: dict[str, Decimal]) -> bytes:
    """The gateway log of our own events, each at its rated cost times the factor given for it (default 1)."""
    rows = [
        f"{e.request_id},{e.occurred_at.isoformat()},{e.model_id},{e.input_tokens},{e.output_tokens},"
        f"{e.cached_input_tokens},{e.cost_usd * raised.get(e.request_id, D(1))}\r\n".encode()
        for e in UsageEvent.objects.order_by("id")
    ]
    return HEADER + b"".join(rows)


def discrepancies(run: ReconciliationRun | None) -> dict[str, ReconciliationLine]:
    assert run is not None
    return {line.key: line for line in run.lines.filter(status="discrepancy")}


def test_our_own_requests_with_five_costs_raised_are_five_price_drifts(account, record, admin_client):
    record(
        account,
        *[(f"req_{n:02}", "gpt-4o-mini", f"2026-10-01T10:{n:02}:00Z", 1000 + 100 * n, 0, 200 + 10 * n)
          for n in range(21)],
    )  # fmt: skip
    raised = {f"req_{n:02}": D("1.1") for n in (2, 5, 8, 13, 20)}
    result = run_file(our_requests_fed_back(raised=raised), as_of=AS_OF)
    s = result.summary
    assert (s["matched"], s["discrepancy"], s["not_found"], s["not_in_export"]) == (16, 5, 0, 0)
    found = discrepancies(result.run)
    assert set(found) == set(raised)
    assert {line.reason_code for line in found.values()} == {"price_drift"}
    assert "missing" not in " ".join(line.reason for line in found.values())
    assert "+10.0%" in found["req_02"].reason
    # the run's page in the console sums its discrepancies by reason
    assert result.run is not None
    page = admin_client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[result.run.pk]))
    text = page.content.decode()
    assert "price drift: 5" in text
    assert "events missing on our side" not in text


def test_a_lower_cost_on_a_logged_request_is_price_drift_not_unbilled_usage(account, record):
    record(account, ("cheap", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500))  # 0.00045
    result = run_file(HEADER + b"cheap,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.0003\r\n", as_of=AS_OF)
    line = discrepancies(result.run)["cheap"]
    assert line.reason_code == "price_drift"
    assert line.reason.startswith("price drift: the gateway charged $0.00015 less than the catalog's prices")
    assert "did not bill" not in line.reason


def test_a_logged_request_with_more_tokens_says_our_event_recorded_fewer(account, record):
    record(account, ("short", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500))
    result = run_file(HEADER + b"short,2026-10-01T10:00:00Z,gpt-4o-mini,2000,1000,0,0.0009\r\n", as_of=AS_OF)
    line = discrepancies(result.run)["short"]
    assert line.reason_code == "token_counts"
    assert line.reason.endswith("our event recorded fewer tokens than the gateway logged for this request")


def test_a_logged_request_with_fewer_tokens_says_our_event_recorded_more(account, record):
    record(account, ("long", "gpt-4o-mini", "2026-10-01T10:00:00Z", 2000, 0, 1000))
    result = run_file(HEADER + b"long,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.00045\r\n", as_of=AS_OF)
    line = discrepancies(result.run)["long"]
    assert line.reason_code == "token_counts"
    assert line.reason.endswith("our event recorded more tokens than the gateway logged for this request")


def test_an_event_the_gateway_did_not_log_is_not_logged_not_unbilled(account, record):
    record(
        account,
        ("logged", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500),
        ("direct", "gpt-4o-mini", "2026-10-01T10:10:00Z", 1000, 0, 0),
        ("logged2", "gpt-4o-mini", "2026-10-01T10:20:00Z", 1000, 0, 500),
    )
    rows = our_requests_fed_back(raised={}).split(b"\r\n")
    result = run_file(b"\r\n".join(row for row in rows if not row.startswith(b"direct,")), as_of=AS_OF)
    assert result.run is not None
    line = result.run.lines.get(status="not_in_export")
    assert (line.key, line.reason_code) == ("direct", "not_logged")
    assert line.get_reason_code_display() == "not in the gateway's log"


def test_a_repeated_request_id_is_labelled_repeated_not_unreadable(account, record):
    record(account, ("once", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500))
    row = b"once,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.00045\r\n"
    result = run_file(HEADER + row + row, as_of=AS_OF)
    assert result.run is not None
    error = result.run.lines.get(status="error")
    assert (error.reason_code, error.get_reason_code_display()) == ("repeated", "request id repeated in the file")


def test_a_missing_row_of_a_file_is_unreadable(account, record):
    result = run_file(HEADER + b"bad,not a time,gpt-4o-mini,1,1,0,0.1\r\n", as_of=AS_OF)
    assert result.run is not None
    assert result.run.lines.get(status="error").reason_code == "unreadable"


def test_an_amount_without_token_counts_may_still_be_missing_events(account, record):
    # a cost export gives amounts only: more billed than our mixed input and output may be usage we did not record
    record(account, ("b1", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1_000_000, 0, 1_000_000))  # 0.75
    result = run_file(COSTS_HEADER + OCT_1 + b",2.00,usd,gpt-4o-mini,proj_demo\r\n", as_of=AS_OF)
    (line,) = discrepancies(result.run).values()
    assert line.reason_code == "missing_events"
    assert "events missing on our side, or higher prices" in line.reason


def test_an_amount_without_token_counts_below_ours_is_usage_not_billed(account, record):
    record(account, ("b2", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1_000_000, 0, 1_000_000))  # 0.75
    result = run_file(COSTS_HEADER + OCT_1 + b",0.30,usd,gpt-4o-mini,proj_demo\r\n", as_of=AS_OF)
    (line,) = discrepancies(result.run).values()
    assert line.reason_code == "not_billed"
    assert line.reason.startswith("we calculated $0.45 more than the provider billed")
