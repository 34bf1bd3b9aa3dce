"""CSV exports and gateway logs: the header tells the source, each record becomes one typed row."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from reconciliation.parsers.rows import (
    ANTHROPIC_COSTS,
    ANTHROPIC_PARTS,
    MAX_REQUEST_ID,
    ONE_DAY,
    OPENAI_COSTS,
    OPENAI_USAGE,
    REQUESTS,
    BucketRow,
    EmptyBucket,
    ParsedRow,
    ProviderFile,
    RequestRow,
    RowError,
    RowProblem,
    UnreadableFile,
)
from reconciliation.parsers.values import (
    cents_to_usd,
    clean,
    count_read,
    decimal_read,
    line_item_split,
    optional_count,
    row_error,
    time_read,
)

TIME_COLUMNS = {
    OPENAI_COSTS: ("start_time", "start_time_iso"),
    OPENAI_USAGE: ("start_time", "start_time_iso"),
    ANTHROPIC_COSTS: ("starting_at",),
    REQUESTS: ("timestamp",),
}
REQUIRED_COLUMNS = {
    OPENAI_COSTS: ("amount_value",),
    OPENAI_USAGE: ("input_tokens", "output_tokens"),
    ANTHROPIC_COSTS: ("amount",),
    REQUESTS: ("request_id", "model", "input_tokens", "output_tokens", "cost_usd"),
}


def source_detect(columns: Sequence[str]) -> str | None:
    """The source a CSV header belongs to (names lower-cased and stripped), or None."""
    names = set(columns)
    if {"request_id", "cost_usd"} <= names:
        return REQUESTS
    if "amount_value" in names:
        return OPENAI_COSTS
    if "starting_at" in names and "amount" in names:
        return ANTHROPIC_COSTS
    if names & {"start_time", "start_time_iso"} and {"input_tokens", "output_tokens"} <= names:
        return OPENAI_USAGE
    return None


def _header_check(columns: Sequence[str], source: str) -> None:
    names = set(columns)
    missing = [c for c in REQUIRED_COLUMNS[source] if c not in names]
    if not names & set(TIME_COLUMNS[source]):
        missing.insert(0, " or ".join(TIME_COLUMNS[source]))
    if missing:
        raise UnreadableFile(f"the header has no {', '.join(missing)} column, which a {source} file needs")


class _Record:
    """One CSV record by column name; a missing column reads as ""."""

    __slots__ = ("index", "values")

    def __init__(self, index: Mapping[str, int], values: list[str]) -> None:
        self.index = index
        self.values = values

    def get(self, name: str) -> str:
        position = self.index.get(name)
        return self.values[position] if position is not None else ""

    def filled(self, name: str) -> bool:
        return bool(self.get(name).strip())


def _requests_converter(index: Mapping[str, int]) -> Callable[[int, list[str]], ParsedRow]:
    """The requests row reader with the column positions fixed once: a million rows read in seconds."""
    at_id, at_time, at_model = index["request_id"], index["timestamp"], index["model"]
    at_input, at_output, at_cost = index["input_tokens"], index["output_tokens"], index["cost_usd"]
    at_cached, at_currency = index.get("cached_input_tokens"), index.get("currency")

    def convert(line: int, values: list[str]) -> ParsedRow:
        request_id = clean(values[at_id], "request_id")
        if not request_id:
            raise RowProblem("request_id is empty")
        if len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
            raise RowProblem(f"request_id must be 1-{MAX_REQUEST_ID} printable characters")
        model = clean(values[at_model], "model")
        if not model:
            raise RowProblem("model is empty")
        text = values[at_input]
        input_tokens = (
            int(text) if text.isdigit() and text.isascii() and len(text) < 16 else count_read(text, "input_tokens")
        )
        text = values[at_output]
        output_tokens = (
            int(text) if text.isdigit() and text.isascii() and len(text) < 16 else count_read(text, "output_tokens")
        )
        text = values[at_cached] if at_cached is not None else ""
        if text.isdigit() and text.isascii() and len(text) < 16:
            cached = int(text)
        else:
            cached = count_read(text, "cached_input_tokens") if text.strip() else 0
        if cached > input_tokens:
            raise RowProblem("cached_input_tokens exceeds input_tokens (cached tokens are part of the input)")
        currency = clean(values[at_currency], "currency").upper() if at_currency is not None else ""
        return RequestRow(
            line=line,
            request_id=request_id,
            occurred_at=time_read(values[at_time], "timestamp"),
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached,
            cost_usd=decimal_read(values[at_cost], "cost_usd"),
            currency=currency or "USD",
        )

    return convert


def csv_open(text: io.TextIOWrapper, source: str | None) -> ProviderFile:
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise UnreadableFile("the file is empty") from None
    except csv.Error as exc:
        raise UnreadableFile(f"the header cannot be read as CSV: {exc}") from None
    columns = tuple(name.strip().lower() for name in header)
    detected = source or source_detect(columns)
    if detected is None:
        shown = ", ".join(columns[:12])[:300]
        raise UnreadableFile(f"the header matches no known source ({shown}); name the source")
    _header_check(columns, detected)
    index: dict[str, int] = {}
    for position, name in enumerate(columns):
        index.setdefault(name, position)
    if detected == REQUESTS:
        rows = _csv_rows(reader, len(columns), _requests_converter(index))
    else:
        convert = _CSV_CONVERTERS[detected]
        rows = _csv_rows(reader, len(columns), lambda line, values: convert(line, _Record(index, values)))
    return ProviderFile(source=detected, file_format="csv", columns=columns, rows=rows)


def _csv_rows(reader: Any, width: int, convert: Callable[[int, list[str]], ParsedRow]) -> Iterator[ParsedRow]:
    last_line = reader.line_num
    stalled = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # the reader has consumed the bad physical line(s); go on with the next record
            yield row_error(last_line + 1, f"not readable as CSV: {exc}")
            stalled = stalled + 1 if reader.line_num == last_line else 0
            if stalled > 2:
                return
            last_line = reader.line_num
            continue
        line = last_line + 1  # a quoted field may span lines: a record is numbered by its first line
        last_line = reader.line_num
        if not values or (len(values) == 1 and not values[0].strip()):
            continue  # a blank line is not a record
        if len(values) != width:
            yield RowError(line=line, reason=f"the row has {len(values)} values, the header has {width} columns")
            continue
        try:
            yield convert(line, values)
        except RowProblem as exc:
            yield row_error(line, str(exc))


def _bucket_times(record: _Record) -> tuple[datetime, datetime]:
    if record.filled("start_time"):
        start = time_read(record.get("start_time"), "start_time")
    else:
        start = time_read(record.get("start_time_iso"), "start_time_iso")
    if record.filled("end_time"):
        end = time_read(record.get("end_time"), "end_time")
    elif record.filled("end_time_iso"):
        end = time_read(record.get("end_time_iso"), "end_time_iso")
    else:
        end = start + ONE_DAY
    if end <= start:
        raise RowProblem("the bucket ends before it starts")
    return start, end


def _empty(line: int, record: _Record, times: Callable[[_Record], tuple[datetime, datetime]]) -> EmptyBucket:
    try:
        start, end = times(record)
    except RowProblem:
        return EmptyBucket(line=line, start=None, end=None)
    return EmptyBucket(line=line, start=start, end=end)


def _openai_costs_row(line: int, record: _Record) -> ParsedRow:
    if not any(record.filled(name) for name in ("amount_value", "line_item", "amount_currency")):
        return _empty(line, record, _bucket_times)
    start, end = _bucket_times(record)
    model, part = line_item_split(clean(record.get("line_item"), "line_item"))
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=model,
        part=part,
        project=clean(record.get("project_id"), "project_id"),
        amount_usd=decimal_read(record.get("amount_value"), "amount_value"),
        currency=clean(record.get("amount_currency"), "amount_currency").upper() or "USD",
    )


def _openai_usage_row(line: int, record: _Record) -> ParsedRow:
    counts = ("input_tokens", "output_tokens", "input_cached_tokens", "num_model_requests")
    if not any(record.filled(name) for name in (*counts, "model")):
        return _empty(line, record, _bucket_times)
    start, end = _bucket_times(record)
    input_tokens = count_read(record.get("input_tokens"), "input_tokens")
    cached = optional_count(record.get("input_cached_tokens"), "input_cached_tokens") or 0
    if cached > input_tokens:
        raise RowProblem("input_cached_tokens exceeds input_tokens (cached tokens are part of the input)")
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=clean(record.get("model"), "model"),
        part="",
        project=clean(record.get("project_id"), "project_id"),
        amount_usd=None,
        currency="USD",
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=count_read(record.get("output_tokens"), "output_tokens"),
        requests=optional_count(record.get("num_model_requests"), "num_model_requests"),
    )


def _anthropic_times(record: _Record) -> tuple[datetime, datetime]:
    start = time_read(record.get("starting_at"), "starting_at")
    end = time_read(record.get("ending_at"), "ending_at") if record.filled("ending_at") else start + ONE_DAY
    if end <= start:
        raise RowProblem("the bucket ends before it starts")
    return start, end


def anthropic_part(token_type: str, cost_type: str) -> str:
    token_type = token_type.strip().lower()
    if token_type:
        return ANTHROPIC_PARTS.get(token_type, f"other:{token_type}")
    cost_type = cost_type.strip().lower()
    return f"other:{cost_type}" if cost_type and cost_type != "tokens" else ""


def _anthropic_row(line: int, record: _Record) -> ParsedRow:
    if not any(record.filled(name) for name in ("amount", "model", "token_type", "description")):
        return _empty(line, record, _anthropic_times)
    start, end = _anthropic_times(record)
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=clean(record.get("model"), "model"),
        part=anthropic_part(clean(record.get("token_type"), "token_type"), record.get("cost_type")),
        project=clean(record.get("workspace_id"), "workspace_id"),
        amount_usd=cents_to_usd(decimal_read(record.get("amount"), "amount")),
        currency=clean(record.get("currency"), "currency").upper() or "USD",
    )


_CSV_CONVERTERS: dict[str, Callable[[int, _Record], ParsedRow]] = {
    OPENAI_COSTS: _openai_costs_row,
    OPENAI_USAGE: _openai_usage_row,
    ANTHROPIC_COSTS: _anthropic_row,
}
