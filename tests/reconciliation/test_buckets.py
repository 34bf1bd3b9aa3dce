"""Aggregate exports (OpenAI costs and usage, Anthropic costs) matched bucket by bucket against recorded events.

Prices of the seed catalog, USD per 1M tokens: gpt-4o-mini input 0.15, cached 0.075, output 0.60;
claude-3-5-haiku input 0.80, cached 0.08, output 4.00. Default tolerance: max(5 % of the provider's amount, $0.05).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing.models import AIModel
from pricing.services import model_alias_add
from reconciliation.models import ReconciliationLine, ReconciliationRun
from tests.reconciliation.conftest import run_file, sample

D = Decimal


def lines(run: ReconciliationRun | None) -> dict[str, ReconciliationLine]:
    assert run is not None
    return {line.key: line for line in run.lines.order_by("id")}


def counts(summary: dict) -> tuple[int, int, int, int, int, int]:
    return (summary["rows"], summary["matched"], summary["discrepancy"], summary["not_found"],
            summary["not_in_export"], summary["errors"])  # fmt: skip


# --- the samples --------------------------------------------------------------------------------------------------


@pytest.fixture
def openai_cost_events(account, other_account, record):
    record(
        account,
        # 10-01 input: 5,972,493 x 0.15 / 1M = 0.89587395 against 0.895874: off by $0.00000005 -> matched
        ("e1", "gpt-4o-mini", "2026-10-01T10:00:00Z", 5_972_493, 0, 0),
        # 10-02 output: 1,000,000 x 0.60 / 1M = 0.60 against 1.20: off by 0.60 > max(0.06, 0.05) -> discrepancy
        ("e2", "gpt-4o-mini", "2026-10-02T10:00:00Z", 0, 0, 1_000_000),
        # 10-03 is a day total (empty line_item): 0.15 + 700,000 x 0.60 / 1M = 0.57 against 0.569788 -> matched
        ("e3", "gpt-4o-mini-2024-07-18", "2026-10-03T10:00:00Z", 1_000_000, 0, 700_000),
        # 10-04 is an empty bucket: the provider billed nothing, we calculated 0.015 -> not_in_export
        ("e4", "gpt-4o-mini", "2026-10-04T10:00:00Z", 100_000, 0, 0),
        # 10-05 cached input: 4,545,333 x 0.075 / 1M = 0.340899975 against 0.3409 -> matched
        ("e5", "gpt-4o-mini", "2026-10-05T10:00:00Z", 4_545_333, 4_545_333, 0),
        # an Anthropic model: not in an OpenAI export's scope at all
        ("c1", "claude-3-5-haiku", "2026-10-02T10:00:00Z", 1000, 0, 1000),
    )


def test_openai_cost_export_sample(openai_cost_events):
    result = run_file(sample("openai-costs-export.csv"), name="openai-costs-export.csv")
    summary = result.summary
    # 5 data rows: 4 buckets and 1 empty bucket (skipped and counted)
    assert counts(summary) == (5, 3, 1, 0, 1, 0)
    assert summary["source"] == "openai-costs"
    assert summary["match_rate"] == "0.75"  # 3 / (3 + 1 + 0)
    # ours: 0.89587395 + 0.60 + 0.57 + 0.015 + 0.340899975; theirs: 0.895874 + 1.20 + 0.569788 + 0.3409
    assert summary["total_calculated_usd"] == "2.421773925"
    assert summary["total_actual_usd"] == "3.006562"
    assert summary["difference_usd"] == "0.584788075"
    run = result.run
    assert run is not None and run.empty_buckets == 1 and run.file_format == "csv"
    assert run.period_start is not None and run.period_end is not None
    assert (run.period_start.isoformat(), run.period_end.isoformat()) == (
        "2026-10-01T00:00:00+00:00", "2026-10-06T00:00:00+00:00",
    )  # fmt: skip
    found = lines(run)
    assert {key: line.status for key, line in found.items()} == {
        "2026-10-01|gpt-4o-mini|proj_demo": "matched",
        "2026-10-02|gpt-4o-mini|proj_demo": "discrepancy",
        "2026-10-03|*|proj_demo": "matched",
        "2026-10-04|gpt-4o-mini|proj_demo": "not_in_export",
        "2026-10-05|gpt-4o-mini|proj_demo": "matched",
    }
    drift = found["2026-10-02|gpt-4o-mini|proj_demo"]
    assert (drift.calculated_usd, drift.actual_usd, drift.difference_usd) == (D("0.6"), D("1.2"), D("0.6"))
    assert drift.reason_code == "price_drift"
    assert drift.implied_output_per_million == D("1.2")
    assert drift.reason == (
        "price drift: implied output price $1.2000 per 1M against the catalog's $0.6000 per 1M, +100.0% "
        "(unless events are missing on our side)"
    )
    assert (drift.model_name, drift.line_number, drift.output_tokens, drift.events) == (
        "gpt-4o-mini-2024-07-18", 3, 1_000_000, 1,
    )  # fmt: skip
    assert found["2026-10-04|gpt-4o-mini|proj_demo"].reason_code == "not_billed"
    assert found["2026-10-03|*|proj_demo"].model_id == ""


def test_openai_usage_export_sample(account, record):
    record(
        account,
        # 10-01: the provider's tokens exactly: 1,750,000 x 0.15 + 250,000 x 0.075 + 500,000 x 0.60 = 0.58125
        ("u1", "gpt-4o-mini-2024-07-18", "2026-10-01T12:00:00Z", 2_000_000, 250_000, 500_000),
        # 10-02: we have 1,000,000 in / 200,000 out (0.27); the provider counted 1,500,000 / 300,000 (0.405)
        ("u2", "gpt-4o-mini", "2026-10-02T12:00:00Z", 1_000_000, 0, 200_000),
    )
    result = run_file(sample("openai-usage-export.csv"))
    # 3 rows: 2 buckets, 1 empty; 10-02 is off by 0.135 > max(0.02025, 0.05)
    assert counts(result.summary) == (3, 1, 1, 0, 0, 0)
    assert result.summary["match_rate"] == "0.5"
    assert result.summary["total_actual_usd"] == "0.98625"  # the provider's tokens at catalog prices
    assert result.summary["total_calculated_usd"] == "0.85125"
    short = lines(result.run)["2026-10-02|gpt-4o-mini|proj_demo"]
    assert (short.provider_input_tokens, short.provider_output_tokens, short.input_tokens) == (
        1_500_000, 300_000, 1_000_000,
    )  # fmt: skip
    assert short.reason_code == "token_counts"
    assert short.reason.endswith("events missing on our side")


@pytest.mark.parametrize("name", ["anthropic-cost-report.csv", "anthropic-cost-report.json"])
def test_anthropic_cost_report_sample(account, record, name):
    record(
        account,
        # 10-01: 2,000,000 x 0.80 + 1,000,000 x 4.00 = 1.60 + 4.00 = 5.60 against 160 + 400 cents
        ("a1", "claude-3-5-haiku", "2026-10-01T09:00:00Z", 2_000_000, 0, 1_000_000),
        # 10-02: 200,000 cached x 0.08 = 0.016 against 1.6 cents
        ("a2", "claude-3-5-haiku-20241022", "2026-10-02T09:00:00Z", 200_000, 200_000, 0),
        # an OpenAI model: not in an Anthropic report's scope
        ("o1", "gpt-4o-mini", "2026-10-01T09:00:00Z", 1000, 0, 0),
    )
    result = run_file(sample(name), name=name)
    assert counts(result.summary) == (3, 2, 0, 0, 0, 0)
    assert result.summary["match_rate"] == "1"
    assert result.summary["total_actual_usd"] == "5.616"
    assert set(lines(result.run)) == {"2026-10-01|claude-3-5-haiku", "2026-10-02|claude-3-5-haiku"}


# --- reasons ------------------------------------------------------------------------------------------------------

COSTS_HEADER = b"start_time,end_time,amount_value,amount_currency,line_item,project_id\r\n"
OCT = {1: b"1790812800,1790899200", 2: b"1790899200,1790985600", 3: b"1790985600,1791072000"}


def test_a_dated_snapshot_name_matches_its_model(account, record):
    # dated snapshots resolve to the undated model by themselves (docs/usage.md, names)
    record(account, ("e1", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1_000_000, 0, 0))  # 0.15
    content = COSTS_HEADER + OCT[1] + b',0.15,usd,"gpt-4o-mini-2024-08-06, input",proj_demo\r\n'
    assert counts(run_file(content).summary) == (1, 1, 0, 0, 0, 0)


def test_an_unmapped_alias_then_the_alias_added(account, record, django_capture_on_commit_callbacks):
    record(account, ("e1", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1_000_000, 0, 0))  # 0.15
    content = COSTS_HEADER + OCT[1] + b',0.15,usd,"house-mini, input",proj_demo\r\n'
    first = run_file(content)
    # the provider's name maps to nothing: its line is not_found, our gpt-4o-mini usage not_in_export
    assert counts(first.summary) == (1, 0, 0, 1, 1, 0)
    found = lines(first.run)
    alias = found["2026-10-01|house-mini|proj_demo"]
    assert alias.reason_code == "model_alias"
    assert alias.reason.startswith("'house-mini' is not a catalog model or alias")
    assert found["2026-10-01|gpt-4o-mini|proj_demo"].status == "not_in_export"

    with django_capture_on_commit_callbacks(execute=True):  # the catalog cache refreshes when the write commits
        model_alias_add(model=AIModel.objects.get(model_id="gpt-4o-mini"), alias="house-mini")
    second = run_file(content)
    assert counts(second.summary) == (1, 1, 0, 0, 0, 0)
    assert second.same_file_as == first.run


def test_cached_tokens_the_provider_priced_as_uncached(account, record):
    # ours: 5M uncached x 0.15 + 5M cached x 0.075 = 1.125; the provider billed all 10M at 0.15 = 1.50
    record(account, ("e1", "gpt-4o-mini", "2026-10-01T10:00:00Z", 10_000_000, 5_000_000, 0))
    result = run_file(COSTS_HEADER + OCT[1] + b',1.50,usd,"gpt-4o-mini, input",proj_demo\r\n')
    (line,) = lines(result.run).values()
    assert (line.status, line.reason_code) == ("discrepancy", "cached_as_uncached")
    assert line.reason == (
        "the provider's amount is our 5,000,000 cached input tokens priced at the full input price ($0.1500 per 1M "
        "instead of $0.0750 per 1M)"
    )


def test_cached_tokens_we_priced_as_uncached(account, record):
    # the provider billed 200,000 cached tokens (1.6 cents); our event carries no cached tokens: 0.16
    record(account, ("a2", "claude-3-5-haiku", "2026-10-02T09:00:00Z", 200_000, 0, 0))
    content = b"starting_at,ending_at,model,token_type,currency,amount\n" + (
        b"2026-10-02T00:00:00Z,2026-10-03T00:00:00Z,claude-3-5-haiku-20241022,cache_read_input_tokens,USD,1.6\n"
    )
    (line,) = lines(run_file(content).run).values()
    assert (line.status, line.reason_code, line.difference_usd) == ("discrepancy", "cached_as_uncached", D("-0.144"))
    assert "our events carry no cached input tokens" in line.reason


def test_price_drift_with_the_implied_input_price(account, record):
    # 1,600,000 input x 0.80 + 1,000,000 output x 4.00 = 5.28 against 160 + 400 cents = 5.60: off by 0.32 > 0.28
    record(account, ("a1", "claude-3-5-haiku", "2026-10-01T09:00:00Z", 1_600_000, 0, 1_000_000))
    result = run_file(sample("anthropic-cost-report.csv"))
    line = lines(result.run)["2026-10-01|claude-3-5-haiku"]
    assert (line.status, line.reason_code) == ("discrepancy", "price_drift")
    # 1.60 / 1.6M tokens = $1.00 per 1M; output 4.00 / 1M = $4.00, as the catalog says, so only input drifted
    assert (line.implied_input_per_million, line.implied_output_per_million) == (D("1"), None)
    assert "implied input price $1.0000 per 1M against the catalog's $0.8000 per 1M, +25.0%" in line.reason
    # 10-02's cache read has no usage on our side
    missing = lines(result.run)["2026-10-02|claude-3-5-haiku"]
    assert (missing.status, missing.reason_code, missing.actual_usd) == ("not_found", "missing_events", D("0.016"))


def test_a_bucket_the_provider_billed_without_our_events_is_not_found(account):
    result = run_file(COSTS_HEADER + OCT[2] + b',2.5,usd,"gpt-4o-mini, output",proj_demo\r\n')
    assert counts(result.summary) == (1, 0, 0, 1, 0, 0)
    assert result.summary["match_rate"] == "0"
    (line,) = lines(result.run).values()
    assert (line.reason_code, line.calculated_usd, line.actual_usd) == ("missing_events", D(0), D("2.5"))


def test_a_foreign_currency_is_a_discrepancy_with_its_reason(account, record):
    record(account, ("e1", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1_000_000, 0, 0))
    result = run_file(COSTS_HEADER + OCT[1] + b',0.15,eur,"gpt-4o-mini, input",proj_demo\r\n')
    (line,) = lines(result.run).values()
    assert (line.status, line.reason_code, line.currency) == ("discrepancy", "currency", "EUR")
    assert result.summary["total_actual_usd"] == "0"  # euros are not added to a USD total


# --- granularity and projects -------------------------------------------------------------------------------------


def test_projects_split_the_buckets_when_mapped(account, other_account, record):
    record(account, ("e1", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1_000_000, 0, 0))  # proj_demo: 0.15
    record(other_account, ("x1", "gpt-4o-mini", "2026-10-01T11:00:00Z", 2_000_000, 0, 0))  # no project: 0.30
    content = (
        COSTS_HEADER
        + OCT[1]
        + b',0.15,usd,"gpt-4o-mini, input",proj_demo\r\n'
        + (OCT[1] + b',0.70,usd,"gpt-4o-mini, input",proj_elsewhere\r\n')
    )
    result = run_file(content)
    found = {key: (line.status, line.reason_code) for key, line in lines(result.run).items()}
    assert found == {
        "2026-10-01|gpt-4o-mini|proj_demo": ("matched", ""),
        "2026-10-01|gpt-4o-mini|proj_elsewhere": ("not_found", "unmapped_project"),
        "2026-10-01|gpt-4o-mini|(no project)": ("not_in_export", "not_billed"),
    }


def test_without_mapped_projects_the_buckets_are_day_x_model(other_account, record):
    record(other_account, ("x1", "gpt-4o-mini", "2026-10-01T11:00:00Z", 2_000_000, 0, 0))  # 0.30
    # two projects, neither mapped, and the input parts summed: 0.10 + 0.21 = 0.31 against 0.30 -> matched
    content = (
        COSTS_HEADER
        + OCT[1]
        + b',0.10,usd,"gpt-4o-mini, input",proj_a\r\n'
        + (OCT[1] + b',0.21,usd,"gpt-4o-mini-2024-07-18, input",proj_b\r\n')
    )
    (line,) = lines(run_file(content).run).values()
    assert (line.key, line.status, line.actual_usd) == ("2026-10-01|gpt-4o-mini", "matched", D("0.31"))
    assert line.model_name == "gpt-4o-mini, gpt-4o-mini-2024-07-18"


def test_a_day_with_a_total_line_is_compared_as_a_day(other_account, record):
    record(
        other_account,
        ("x1", "gpt-4o-mini", "2026-10-01T11:00:00Z", 1_000_000, 0, 0),  # 0.15
        ("x2", "gpt-4o-mini", "2026-10-01T12:00:00Z", 0, 0, 1_000_000),  # 0.60
    )
    # a model line and a line without a model on the same day: the day is compared whole, 0.30 + 0.44 = 0.74
    content = COSTS_HEADER + OCT[1] + b',0.30,usd,"gpt-4o-mini, input",\r\n' + OCT[1] + b",0.44,usd,,\r\n"
    (line,) = lines(run_file(content).run).values()
    assert (line.key, line.status, line.calculated_usd, line.actual_usd) == (
        "2026-10-01|*",
        "matched",
        D("0.75"),
        D("0.74"),
    )


# --- errors and tolerances ----------------------------------------------------------------------------------------


def test_unreadable_rows_become_error_lines_and_the_rest_is_matched(account, record):
    record(account, ("e1", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1_000_000, 0, 0))
    content = (
        COSTS_HEADER
        + b"1790812800,1790899200,lots,usd,gpt-4o-mini,proj_demo\r\n"
        + (OCT[1] + b',0.15,usd,"gpt-4o-mini, input",proj_demo\r\n')
    )
    result = run_file(content)
    assert counts(result.summary) == (2, 1, 0, 0, 0, 1)
    error = lines(result.run)["line 2"]
    assert (error.status, error.line_number, error.reason) == ("error", 2, "amount_value is not a number: 'lots'")
    assert result.summary["match_rate"] == "1"  # errors are not compared


def test_tolerances_can_be_set_per_run(openai_cost_events):
    strict = run_file(sample("openai-costs-export.csv"), tolerance_pct=D(0), tolerance_usd=D(0))
    # nothing is within $0 of the provider: 10-01, 10-02, 10-03 and 10-05 are all discrepancies
    assert counts(strict.summary) == (5, 0, 4, 0, 1, 0)
    assert strict.run is not None and strict.run.options["tolerance_pct"] == "0"
    loose = run_file(sample("openai-costs-export.csv"), tolerance_pct=D(60))
    # 10-02 is off by 0.60, within 60 % of 1.20 = 0.72
    assert counts(loose.summary) == (5, 4, 0, 0, 1, 0)


# --- the price dimensions as reasons (docs/reconciliation.md) ----------------------------------------------------

ANTHROPIC_HEADER = (
    b"starting_at,ending_at,workspace_id,description,model,cost_type,token_type,service_tier,context_window,"
    b"currency,amount\r\n"
)
ANTHROPIC_DAY = b"2026-10-01T00:00:00Z,2026-10-02T00:00:00Z,,usage,claude-3-5-haiku-20241022,tokens,"


def test_cache_writes_the_provider_billed_and_our_events_lack(account, record):
    # ours: 2,000,000 input x 0.80 = 1.60 (no cache writes on the events); Anthropic billed 1,000,000 uncached
    # (80 cents) and 1,000,000 5-minute cache writes at 1.25x (100 cents): 1.80, off by 0.20 > max(0.09, 0.05)
    record(account, ("a1", "claude-3-5-haiku", "2026-10-01T09:00:00Z", 2_000_000, 0, 0))
    content = (
        ANTHROPIC_HEADER
        + ANTHROPIC_DAY + b"uncached_input_tokens,standard,0-200k,USD,80\r\n"
        + ANTHROPIC_DAY + b"cache_creation.ephemeral_5m_input_tokens,standard,0-200k,USD,100\r\n"
    )  # fmt: skip
    (line,) = lines(run_file(content).run).values()
    assert (line.status, line.reason_code) == ("discrepancy", "cache_writes")
    assert "$1.00" in line.reason and "cache_write_input_tokens" in line.reason


def test_a_bill_at_half_our_amount_is_explained_as_batch(account, record):
    # ours: 10,000,000 input x 0.15 = 1.50; the provider billed 0.75, the Batch API's half
    record(account, ("e1", "gpt-4o-mini", "2026-10-01T10:00:00Z", 10_000_000, 0, 0))
    (line,) = lines(run_file(COSTS_HEADER + OCT[1] + b',0.75,usd,"gpt-4o-mini, input",proj_demo\r\n').run).values()
    assert (line.status, line.reason_code) == ("discrepancy", "service_tier")
    assert "Batch API" in line.reason
