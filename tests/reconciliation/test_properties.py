"""Whatever bytes arrive, the parser reports: a file it cannot read at all raises UnreadableFile (and nothing
else), and once rows start, every record is a typed row or a RowError with its line number, never an exception."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciliation.parsers import (
    ANTHROPIC_COSTS,
    OPENAI_COSTS,
    OPENAI_USAGE,
    REQUESTS,
    SOURCES,
    BucketRow,
    EmptyBucket,
    ParsedRow,
    RequestRow,
    RowError,
    UnreadableFile,
    provider_file_open,
)

HEADERS = {
    OPENAI_COSTS: b"start_time,end_time,start_time_iso,end_time_iso,amount_value,amount_currency,line_item,project_id\r\n",
    OPENAI_USAGE: b"start_time,end_time,project_id,num_model_requests,model,input_tokens,output_tokens,input_cached_tokens\n",
    ANTHROPIC_COSTS: b"\xef\xbb\xbfstarting_at,ending_at,workspace_id,model,token_type,currency,amount\r\n",
    REQUESTS: b"request_id,timestamp,model,input_tokens,output_tokens,cached_input_tokens,cost_usd\n",
}
PARSED = (BucketRow, RequestRow, EmptyBucket, RowError)
BYTES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHAPES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _drain(content: bytes, source: str | None) -> list[ParsedRow]:
    try:
        opened = provider_file_open(io.BytesIO(content), source=source)
    except UnreadableFile:
        return []
    rows = list(opened.rows)
    assert all(isinstance(row, PARSED) for row in rows)
    return rows


@BYTES
@given(content=st.binary(max_size=2000), source=st.sampled_from([None, *SOURCES]))
def test_arbitrary_bytes_never_raise(content, source):
    _drain(content, source)


@BYTES
@given(body=st.binary(max_size=2000), source=st.sampled_from(SOURCES))
def test_a_good_header_then_arbitrary_bytes_gives_rows_or_errors(body, source):
    rows = _drain(HEADERS[source] + body, source)
    assert all(row.line >= 2 for row in rows if isinstance(row, RowError))


cells = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "0", "10.0", "1e9", "-1", "NaN", "Infinity", "2026-10-01T10:00:00Z", "1790812800", '"', ",",
                     "\r\n", "\x00", "0.8958740000000000", "gpt-4o-mini, input", "9" * 40]),
)  # fmt: skip


@SHAPES
@given(
    source=st.sampled_from(SOURCES),
    records=st.lists(st.lists(cells, min_size=0, max_size=10), max_size=20),
    crlf=st.booleans(),
)
def test_csv_records_of_any_text_give_rows_or_errors(source, records, crlf):
    buffer = io.StringIO()

    csv.writer(buffer, lineterminator="\r\n" if crlf else "\n").writerows(records)
    rows = _drain(HEADERS[source] + buffer.getvalue().encode("utf-8", "surrogatepass"), source)
    written = buffer.getvalue()
    assert len(rows) <= written.count("\n") + written.count("\r") + 1  # at most one record per physical line


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.decimals(allow_nan=False).map(str),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=15,
)


@SHAPES
@given(
    buckets=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "start_time": st.integers() | st.text(max_size=12),
                "starting_at": st.text(max_size=25),
                "end_time": json_values,
                "results": st.lists(
                    st.dictionaries(
                        st.sampled_from(["amount", "line_item", "input_tokens", "output_tokens", "model", "object",
                                         "input_cached_tokens", "token_type", "currency", "project_id"]),
                        json_values,
                    ),
                    max_size=4,
                )
                | json_values,
            },
        ),
        max_size=6,
    ),
    source=st.sampled_from([None, OPENAI_COSTS, OPENAI_USAGE, ANTHROPIC_COSTS]),
)  # fmt: skip
def test_json_pages_of_any_shape_give_rows_or_errors(buckets, source):

    _drain(json.dumps({"data": buckets}, default=str).encode(), source)
