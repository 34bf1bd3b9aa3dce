"""The parsers, on the sample files and on what real exports do to them: BOM, CRLF, columns moved or added, empty
buckets, numbers written `10.0`, and rows that cannot be read (reported with their line number, never raised)."""

from __future__ import annotations

import codecs
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from reconciliation.parsers import (
    ANTHROPIC_COSTS,
    OPENAI_COSTS,
    OPENAI_USAGE,
    REQUESTS,
    BucketRow,
    EmptyBucket,
    RequestRow,
    RowError,
    UnreadableFile,
    line_item_split,
    provider_file_open,
    source_detect,
    undated_model_name,
)
from tests.reconciliation.conftest import sample


def read(content: bytes, source: str | None = None):
    opened = provider_file_open(io.BytesIO(content), source=source)
    return opened.source, list(opened.rows)


def day(d: int) -> datetime:
    return datetime(2026, 10, d, tzinfo=UTC)


# --- the samples ------------------------------------------------------------------------------------------------------


def test_openai_cost_export_sample():
    source, rows = read(sample("openai-costs-export.csv"))
    assert source == OPENAI_COSTS
    assert [type(r).__name__ for r in rows] == ["BucketRow", "BucketRow", "BucketRow", "EmptyBucket", "BucketRow"]
    first, second, total, empty, cached = rows
    assert (first.line, first.start, first.end) == (2, day(1), day(2))
    assert (first.model, first.part, first.project) == ("gpt-4o-mini-2024-07-18", "input", "proj_demo")
    # read from the text: every digit kept, no float in between
    assert first.amount_usd == Decimal("0.8958740000000000") and str(first.amount_usd) == "0.8958740000000000"
    assert (second.part, second.amount_usd) == ("output", Decimal("1.2"))
    assert (total.model, total.part, total.amount_usd) == ("", "", Decimal("0.569788"))  # an empty line_item: the day
    assert empty == EmptyBucket(line=5, start=day(4), end=day(5))
    assert (cached.model, cached.part, cached.amount_usd) == ("gpt-4o-mini", "cached_input", Decimal("0.3409"))
    assert all(r.currency == "USD" for r in rows if isinstance(r, BucketRow))


def test_openai_usage_export_sample_reads_counts_written_as_10_0():
    source, rows = read(sample("openai-usage-export.csv"))
    assert source == OPENAI_USAGE
    first, second, empty = rows
    assert isinstance(first, BucketRow) and first.amount_usd is None
    assert (first.input_tokens, first.cached_input_tokens, first.output_tokens, first.requests) == (
        2_000_000, 250_000, 500_000, 120,
    )  # fmt: skip
    assert (first.model, first.project, first.start) == ("gpt-4o-mini-2024-07-18", "proj_demo", day(1))
    assert (second.input_tokens, second.cached_input_tokens, second.output_tokens) == (1_500_000, 0, 300_000)
    assert empty == EmptyBucket(line=4, start=day(3), end=day(4))


@pytest.mark.parametrize("name", ["anthropic-cost-report.csv", "anthropic-cost-report.json"])
def test_anthropic_cost_report_amounts_are_cents(name):
    source, rows = read(sample(name))
    assert source == ANTHROPIC_COSTS
    assert [(r.start, r.model, r.part, r.amount_usd) for r in rows] == [
        (day(1), "claude-3-5-haiku-20241022", "input", Decimal("1.60")),  # "160.00" cents
        (day(1), "claude-3-5-haiku-20241022", "output", Decimal("4.00")),  # "400.0000" cents
        (day(2), "claude-3-5-haiku-20241022", "cached_input", Decimal("0.016")),  # "1.6" cents
    ]
    assert all(r.project == "" and r.currency == "USD" for r in rows)


def test_requests_sample():
    source, rows = read(sample("requests.csv"))
    assert source == REQUESTS
    assert rows[1] == RequestRow(
        line=3,
        request_id="req_0002",
        occurred_at=datetime(2026, 10, 1, 10, 1, tzinfo=UTC),
        model="gpt-4o-mini",
        input_tokens=2000,
        output_tokens=100,
        cached_input_tokens=1000,
        cost_usd=Decimal("0.000285"),
        currency="USD",
    )
    assert [r.request_id for r in rows] == ["req_0001", "req_0002", "req_0003"]


# --- as files come --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["openai-costs-export.csv", "openai-usage-export.csv", "anthropic-cost-report.csv", "requests.csv"]
)
def test_bom_crlf_and_lf_read_the_same(name):
    original = sample(name)
    assert b"\r\n" in original  # the samples are CRLF
    lf = original.replace(b"\r\n", b"\n")
    with_bom = codecs.BOM_UTF8 + original
    assert read(lf) == read(original) == read(with_bom)


def test_columns_in_another_order_and_unknown_columns_are_fine():
    content = (
        b"cost_usd,Model,extra_column,cached_input_tokens,output_tokens,input_tokens,timestamp,request_id,another\n"
        b"0.00045,gpt-4o-mini,whatever,0,500,1000,2026-10-01T10:00:00Z,req_0001,x\n"
    )
    source, rows = read(content)
    assert source == REQUESTS
    assert rows == [
        RequestRow(line=2, request_id="req_0001", occurred_at=datetime(2026, 10, 1, 10, tzinfo=UTC),
                   model="gpt-4o-mini", input_tokens=1000, output_tokens=500, cached_input_tokens=0,
                   cost_usd=Decimal("0.00045"), currency="USD"),
    ]  # fmt: skip


def test_cost_export_columns_reordered_and_time_as_iso_only():
    content = (
        b"line_item,amount_value,start_time_iso,project_id\r\n"
        b'"gpt-4o-mini, output",1.5,2026-10-02T00:00:00+00:00,proj_x\r\n'
    )
    source, rows = read(content)
    assert source == OPENAI_COSTS
    (row,) = rows
    assert (row.start, row.end, row.model, row.part, row.amount_usd) == (
        day(2), day(3), "gpt-4o-mini", "output", Decimal("1.5"),
    )  # fmt: skip


def test_empty_buckets_in_every_source():
    costs = b"start_time,end_time,amount_value,amount_currency,line_item,project_id\n1790985600,1791072000,,,,\n"
    usage = b"start_time,end_time,model,input_tokens,output_tokens,input_cached_tokens\n1790985600,1791072000,,,,\n"
    anthropic = b"starting_at,ending_at,model,token_type,currency,amount\n2026-10-03T00:00:00Z,,,,,\n"
    for content in (costs, usage):
        assert read(content)[1] == [EmptyBucket(line=2, start=day(3), end=day(4))]
    assert read(anthropic)[1] == [EmptyBucket(line=2, start=day(3), end=day(4))]
    page = {"data": [{"start_time": 1790985600, "end_time": 1791072000, "results": []}]}
    assert read(json.dumps(page).encode(), source=OPENAI_COSTS)[1] == [EmptyBucket(line=1, start=day(3), end=day(4))]


def test_blank_lines_are_not_records():
    content = sample("requests.csv").replace(b"\r\nreq_0002", b"\r\n\r\n\r\nreq_0002")
    _, rows = read(content)
    assert [(r.line, r.request_id) for r in rows] == [(2, "req_0001"), (5, "req_0002"), (6, "req_0003")]


# --- rows that cannot be read -----------------------------------------------------------------------------------------

HEADER = b"request_id,timestamp,model,input_tokens,output_tokens,cached_input_tokens,cost_usd\r\n"


def test_malformed_rows_are_errors_with_their_line_numbers():
    content = HEADER + (
        b"ok_1,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.00045\r\n"  # 2
        b"bad_cost,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,abc\r\n"  # 3
        b",2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.1\r\n"  # 4
        b"bad_time,yesterday,gpt-4o-mini,1000,500,0,0.1\r\n"  # 5
        b"half_token,2026-10-01T10:00:00Z,gpt-4o-mini,10.5,500,0,0.1\r\n"  # 6
        b"negative,2026-10-01T10:00:00Z,gpt-4o-mini,-1,500,0,0.1\r\n"  # 7
        b"cached_over,2026-10-01T10:00:00Z,gpt-4o-mini,10,5,11,0.1\r\n"  # 8
        b"short,2026-10-01T10:00:00Z,gpt-4o-mini\r\n"  # 9
        b"nan,2026-10-01T10:00:00Z,gpt-4o-mini,1,1,0,NaN\r\n"  # 10
        b"huge,2026-10-01T10:00:00Z,gpt-4o-mini,1,1,0,1e999\r\n"  # 11
        b"bad\xff\xfeutf8,2026-10-01T10:00:00Z,gpt-4o-mini,1,1,0,0.1\r\n"  # 12
        b'"quoted\r\nacross lines",2026-10-01T10:00:00Z,gpt-4o-mini,1,1,0,0.1\r\n'  # 13-14: one record
        b"ok_2,2026-10-01T10:00:00Z,gpt-4o-mini,2000.0,100,1000,0.000285\r\n"  # 15
    )
    _, rows = read(content)
    errors = {r.line: r.reason for r in rows if isinstance(r, RowError)}
    assert errors == {
        3: "cost_usd is not a number: 'abc'",
        4: "request_id is empty",
        5: "timestamp is not a time: 'yesterday'",
        6: "input_tokens must be a whole number >= 0, got '10.5'",
        7: "input_tokens must be a whole number >= 0, got '-1'",
        8: "cached_input_tokens exceeds input_tokens (cached tokens are part of the input)",
        9: "the row has 3 values, the header has 7 columns",
        10: "cost_usd is out of range: 'NaN'",
        11: "cost_usd is out of range: '1e999'",
        12: "request_id is not valid UTF-8",
        13: "request_id must be 1-128 printable characters",
    }
    good = [r for r in rows if isinstance(r, RequestRow)]
    assert [(r.line, r.request_id, r.input_tokens) for r in good] == [(2, "ok_1", 1000), (15, "ok_2", 2000)]


def test_a_nul_byte_spoils_one_row_not_the_file():
    """Python 3.11's csv reads NUL; the cell check refuses it, for that row only."""
    content = (
        HEADER
        + b"a,2026-10-01T10:00:00Z,m,1,1,0,0.1\r\nb\x00,2026-10-01T10:00:00Z,m,1,1,0,0.1\r\n"
        + (b"c,2026-10-01T10:00:00Z,m,1,1,0,0.1\r\n")
    )
    _, rows = read(content)
    assert [type(r).__name__ for r in rows] == ["RequestRow", "RowError", "RequestRow"]
    assert rows[1] == RowError(line=3, reason="request_id holds a NUL character")
    assert rows[2].line == 4


def test_cost_rows_that_cannot_be_read():
    content = (
        b"start_time,end_time,amount_value,amount_currency,line_item,project_id\n"
        b"1790812800,1790899200,not-money,usd,gpt-4o-mini,p\n"
        b"1790899200,1790812800,1,usd,gpt-4o-mini,p\n"
        b"soon,1790899200,1,usd,gpt-4o-mini,p\n"
    )
    _, rows = read(content)
    assert [(r.line, r.reason) for r in rows] == [
        (2, "amount_value is not a number: 'not-money'"),
        (3, "the bucket ends before it starts"),
        (4, "start_time is not a time: 'soon'"),
    ]


def test_json_results_that_cannot_be_read_are_numbered_in_file_order():
    page = {
        "object": "page",
        "data": [
            {"start_time": 1790812800, "end_time": 1790899200, "results": [
                {"object": "organization.costs.result", "amount": {"value": 0.06, "currency": "usd"},
                 "line_item": "gpt-4o-mini, input", "project_id": None},
                {"object": "organization.costs.result", "amount": "1.0"},
            ]},
            {"start_time": "not a time", "results": []},
            "not a bucket",
        ],
    }  # fmt: skip
    source, rows = read(json.dumps(page).encode())
    assert source == OPENAI_COSTS
    good, bad, bad_bucket, not_bucket = rows
    # a JSON number with a fraction is a Decimal from its text, never a float
    assert isinstance(good, BucketRow) and good.amount_usd == Decimal("0.06") and good.part == "input"
    assert (bad.line, bad.reason) == (2, "data[0].results[1]: amount must be an object with value and currency")
    assert (bad_bucket.line, bad_bucket.reason) == (3, "data[1]: start_time is not a time: 'not a time'")
    assert (not_bucket.line, not_bucket.reason) == (4, "data[2]: a bucket must be an object")


def test_openai_usage_api_page():
    page = {
        "object": "page",
        "data": [{"object": "bucket", "start_time": 1790812800, "end_time": 1790899200, "results": [
            {"object": "organization.usage.completions.result", "input_tokens": 1000, "output_tokens": 500,
             "input_cached_tokens": 800, "num_model_requests": 5, "project_id": "proj_demo", "model": "gpt-4o-mini"},
        ]}],
        "has_more": False,
    }  # fmt: skip
    source, (row,) = read(json.dumps(page).encode())
    assert source == OPENAI_USAGE
    assert (row.input_tokens, row.cached_input_tokens, row.output_tokens, row.requests) == (1000, 800, 500, 5)


# --- files that cannot be read at all -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "source", "message"),
    [
        (b"", None, "the file is empty"),
        (codecs.BOM_UTF8 + b"\r\n  ", None, "the file is empty"),
        (b"name,colour\nx,y\n", None, "the header matches no known source"),
        (
            b"start_time,amount_value\n1,2\n",
            REQUESTS,
            "the header has no timestamp, request_id, model, input_tokens, output_tokens, cost_usd column",
        ),
        (b"{not json", None, "the file is not valid JSON"),
        (b'{"data": []}', REQUESTS, "a requests file is CSV, not JSON"),
        (b'{"data": 3}', None, "a JSON file must be an API page"),
        (b'{"data": [{"start_time": 1, "results": []}]}', None, "has no result that tells its source"),
    ],
)
def test_unreadable_files(content, source, message):
    with pytest.raises(UnreadableFile, match=message):
        provider_file_open(io.BytesIO(content), source=source)


def test_a_named_source_wins_over_detection():
    content = b"start_time,end_time,amount_value,line_item\n1790812800,1790899200,1.0,gpt-4o-mini\n"
    assert read(content, source=OPENAI_COSTS)[0] == OPENAI_COSTS
    with pytest.raises(UnreadableFile, match="no input_tokens, output_tokens column"):
        read(content, source=OPENAI_USAGE)


def test_source_detection_from_headers():
    assert source_detect(["request_id", "timestamp", "cost_usd"]) == REQUESTS
    assert source_detect(["start_time", "amount_value"]) == OPENAI_COSTS
    assert source_detect(["starting_at", "amount", "model"]) == ANTHROPIC_COSTS
    assert source_detect(["start_time", "input_tokens", "output_tokens"]) == OPENAI_USAGE
    assert source_detect(["date", "total"]) is None


def test_line_items_and_model_names():
    assert line_item_split("gpt-4o-mini-2024-07-18, cached input") == ("gpt-4o-mini-2024-07-18", "cached_input")
    assert line_item_split("gpt-4o-mini, output") == ("gpt-4o-mini", "output")
    assert line_item_split("web search tool calls") == ("web search tool calls", "")
    assert line_item_split("gpt-4o-audio, audio input") == ("gpt-4o-audio", "other:audio input")
    assert line_item_split("") == ("", "")
    assert undated_model_name("gpt-4o-mini-2024-08-06") == "gpt-4o-mini"
    assert undated_model_name("claude-3-5-haiku-20241022") == "claude-3-5-haiku"
    assert undated_model_name("gpt-4o-mini") == "gpt-4o-mini"
