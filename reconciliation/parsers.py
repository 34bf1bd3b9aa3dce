"""Reading provider exports: pure and streaming. No database, no Django, never a float.

`provider_file_open(stream, source=None)` reads the head of a binary file, tells its format (CSV or a JSON page) and
its source (from the header, or the one named), and returns a ProviderFile whose `rows` yield, in file order, one
typed row per record: BucketRow (an aggregate: day x model x project), RequestRow (one gateway request),
EmptyBucket (a bucket with only its time columns: skipped and counted) or RowError (a record that cannot be read,
with its line number and why). Only a file that cannot be read at all raises, as UnreadableFile; once the rows
start, nothing in the file makes them raise.

Files are read as they come: UTF-8 with or without a BOM, CRLF or LF, numbers written `10.0` or
`0.8958740000000000` (read as Decimal from the text), columns in any order, unknown columns ignored. CSV is read with
the csv module over a text wrapper (`newline=""`); a JSON page with `json.load(parse_float=Decimal)`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

OPENAI_COSTS = "openai-costs"
OPENAI_USAGE = "openai-usage"
ANTHROPIC_COSTS = "anthropic-costs"
REQUESTS = "requests"
SOURCES = (OPENAI_COSTS, OPENAI_USAGE, ANTHROPIC_COSTS, REQUESTS)
BUCKET_SOURCES = (OPENAI_COSTS, OPENAI_USAGE, ANTHROPIC_COSTS)
# the catalog's `provider` of the models each export covers (a gateway log covers every provider)
SOURCE_PROVIDER = {OPENAI_COSTS: "openai", OPENAI_USAGE: "openai", ANTHROPIC_COSTS: "anthropic"}

# token-type parts of a cost line, as the providers write them -> ours
INPUT, CACHED_INPUT, OUTPUT, CACHE_WRITE = "input", "cached_input", "output", "cache_write"
CACHE_WRITE_1H = "cache_write_1h"  # the catalog's dimensions (docs/pricing-dimensions.md) these parts are priced at
OPENAI_PARTS = {"input": INPUT, "output": OUTPUT, "cached input": CACHED_INPUT, "cached_input": CACHED_INPUT}
ANTHROPIC_PARTS = {
    "uncached_input_tokens": INPUT,
    "output_tokens": OUTPUT,
    "cache_read_input_tokens": CACHED_INPUT,
    "cache_creation.ephemeral_5m_input_tokens": CACHE_WRITE,
    "cache_creation.ephemeral_1h_input_tokens": CACHE_WRITE_1H,
    "cache_creation_input_tokens": CACHE_WRITE,
}

HEAD_BYTES = 64 * 1024
MAX_AMOUNT = Decimal(10) ** 12  # USD on one row; beyond this a value is a misread, not a bill
MAX_COUNT = 10**15
MAX_REQUEST_ID = 128
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
ONE_DAY = timedelta(days=1)


class UnreadableFile(Exception):
    """The file cannot be read at all: empty, not a CSV or JSON page, or a header no source has."""


@dataclass(frozen=True, slots=True)
class BucketRow:
    """One aggregate line of a provider export. `amount_usd` is None in a usage export (token counts only)."""

    line: int
    start: datetime
    end: datetime
    model: str  # as the provider wrote it; "" for a line that is a day total
    part: str  # input, cached_input, output, cache_write, other:<text>, or "" for the whole line
    project: str  # provider project (OpenAI) or workspace (Anthropic); "" when none
    amount_usd: Decimal | None
    currency: str
    input_tokens: int | None = None  # input including cached, as OpenAI counts it
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    requests: int | None = None


@dataclass(frozen=True, slots=True)
class RequestRow:
    line: int
    request_id: str
    occurred_at: datetime
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class EmptyBucket:
    line: int
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str


ParsedRow = BucketRow | RequestRow | EmptyBucket | RowError


@dataclass
class ProviderFile:
    source: str
    file_format: str  # csv or json
    columns: tuple[str, ...]
    rows: Iterator[ParsedRow]


class BinaryReadable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _RowProblem(Exception):
    """Why one record cannot be read; becomes a RowError with the record's line number."""


# --- bytes in -------------------------------------------------------------------------------------------------------


class _ByteSource(io.RawIOBase):
    """A raw stream over any object with read(n), starting with bytes already read from it. Closing it leaves the
    underlying file open (the caller owns it)."""

    def __init__(self, head: bytes, stream: BinaryReadable) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._head.nbytes:
            count = min(len(target), self._head.nbytes)
            target[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._stream.read(len(target))
        if not data:
            return 0
        if not isinstance(data, bytes | bytearray):
            raise UnreadableFile("the upload is not a binary file")
        target[: len(data)] = data
        return len(data)


def _text(head: bytes, stream: BinaryReadable) -> io.TextIOWrapper:
    # bad bytes become U+FFFD, found per field below: one bad row is a row error, never the end of the file
    raw = io.BufferedReader(_ByteSource(head, stream), buffer_size=HEAD_BYTES)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _read_head(stream: BinaryReadable) -> bytes:
    try:
        head = stream.read(HEAD_BYTES)
    except (OSError, ValueError) as exc:
        raise UnreadableFile(f"the file cannot be read: {exc}") from None
    if not isinstance(head, bytes | bytearray):
        raise UnreadableFile("the upload is not a binary file")
    return bytes(head)


def _looks_like_json(head: bytes) -> bool:
    stripped = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")
    return stripped[:1] in (b"{", b"[")


def provider_file_open(stream: BinaryReadable, *, source: str | None = None) -> ProviderFile:
    """The file's source, format and rows. Raises UnreadableFile when the file cannot be read at all."""
    if source is not None and source not in SOURCES:
        raise UnreadableFile(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    head = _read_head(stream)
    if not head.strip(codecs.BOM_UTF8 + b" \t\r\n"):
        raise UnreadableFile("the file is empty")
    if _looks_like_json(head):
        return _json_open(_text(head, stream), source)
    return _csv_open(_text(head, stream), source)


# --- values -----------------------------------------------------------------------------------------------------------


def _clean(value: str, name: str) -> str:
    value = value.strip()
    if "\ufffd" in value:
        raise _RowProblem(f"{name} is not valid UTF-8")
    if "\x00" in value:
        # no provider writes one, and no database text column can hold one
        raise _RowProblem(f"{name} holds a NUL character")
    return value


def _row_error(line: int, reason: str) -> RowError:
    """A row error whose message can be stored: a NUL quoted from the file is written as \\x00."""
    return RowError(line=line, reason=reason.replace("\x00", "\\x00"))


def decimal_read(text: str, name: str) -> Decimal:
    """A Decimal from the text as written (`0.8958740000000000` stays exact); finite and of a sane size."""
    text = _clean(text, name)
    if not text:
        raise _RowProblem(f"{name} is empty")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise _RowProblem(f"{name} is not a number: {text[:40]!r}") from None
    if not value.is_finite() or abs(value) >= MAX_AMOUNT:
        raise _RowProblem(f"{name} is out of range: {text[:40]!r}")
    return value


def count_read(text: str, name: str) -> int:
    """A whole count >= 0, written `1500` or `1500.0`."""
    text = _clean(text, name)
    if text.isascii() and text.isdigit() and len(text) < 16:
        return int(text)
    if not text:
        raise _RowProblem(f"{name} is empty")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise _RowProblem(f"{name} is not a number: {text[:40]!r}") from None
    if not value.is_finite() or value < 0 or value >= MAX_COUNT or value != value.to_integral_value():
        raise _RowProblem(f"{name} must be a whole number >= 0, got {text[:40]!r}")
    return int(value)


def _optional_count(text: str, name: str) -> int | None:
    return count_read(text, name) if text.strip() else None


def time_read(text: str, name: str) -> datetime:
    """An aware UTC time from ISO 8601 (`Z` or an offset; without one it is UTC) or Unix seconds (`1790812800`)."""
    text = _clean(text, name)
    if not text:
        raise _RowProblem(f"{name} is empty")
    moment: datetime
    if text[0].isdigit() and text.replace(".", "", 1).isdigit():
        try:
            seconds = Decimal(text)
            moment = datetime.fromtimestamp(int(seconds), UTC) if seconds < 10**11 else LATEST
        except (InvalidOperation, ValueError, OverflowError, OSError):
            raise _RowProblem(f"{name} is not a time: {text[:40]!r}") from None
    else:
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is not UTC:
                moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except (ValueError, OverflowError):
            raise _RowProblem(f"{name} is not a time: {text[:40]!r}") from None
    if not EARLIEST <= moment < LATEST:
        raise _RowProblem(f"{name} is out of range: {text[:40]!r}")
    return moment


def _json_time(value: object, name: str) -> datetime:
    if isinstance(value, bool) or value is None:
        raise _RowProblem(f"{name} is missing")
    if isinstance(value, int | Decimal | str):
        return time_read(str(value), name)
    raise _RowProblem(f"{name} is not a time")


def _json_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise _RowProblem(f"expected text, got {type(value).__name__}")


def _json_number(value: object, name: str, read: Callable[[str, str], Any]) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise _RowProblem(f"{name} is missing or not a number")
    return read(str(value), name)


def _cents_to_usd(cents: Decimal) -> Decimal:
    return cents.scaleb(-2)


def line_item_split(line_item: str) -> tuple[str, str]:
    """`"gpt-4o-mini-2024-07-18, cached input"` -> (model, cached_input); an empty line item is a day total."""
    line_item = line_item.strip()
    model, comma, part = line_item.rpartition(", ")
    if not comma:
        return line_item, ""
    known = OPENAI_PARTS.get(part.strip().lower())
    return model.strip(), known if known else f"other:{part.strip().lower()}"


# --- CSV --------------------------------------------------------------------------------------------------------------

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
        request_id = _clean(values[at_id], "request_id")
        if not request_id:
            raise _RowProblem("request_id is empty")
        if len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
            raise _RowProblem(f"request_id must be 1-{MAX_REQUEST_ID} printable characters")
        model = _clean(values[at_model], "model")
        if not model:
            raise _RowProblem("model is empty")
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
            raise _RowProblem("cached_input_tokens exceeds input_tokens (cached tokens are part of the input)")
        currency = _clean(values[at_currency], "currency").upper() if at_currency is not None else ""
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


def _csv_open(text: io.TextIOWrapper, source: str | None) -> ProviderFile:
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
            yield _row_error(last_line + 1, f"not readable as CSV: {exc}")
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
        except _RowProblem as exc:
            yield _row_error(line, str(exc))


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
        raise _RowProblem("the bucket ends before it starts")
    return start, end


def _empty(line: int, record: _Record, times: Callable[[_Record], tuple[datetime, datetime]]) -> EmptyBucket:
    try:
        start, end = times(record)
    except _RowProblem:
        return EmptyBucket(line=line, start=None, end=None)
    return EmptyBucket(line=line, start=start, end=end)


def _openai_costs_row(line: int, record: _Record) -> ParsedRow:
    if not any(record.filled(name) for name in ("amount_value", "line_item", "amount_currency")):
        return _empty(line, record, _bucket_times)
    start, end = _bucket_times(record)
    model, part = line_item_split(_clean(record.get("line_item"), "line_item"))
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=model,
        part=part,
        project=_clean(record.get("project_id"), "project_id"),
        amount_usd=decimal_read(record.get("amount_value"), "amount_value"),
        currency=_clean(record.get("amount_currency"), "amount_currency").upper() or "USD",
    )


def _openai_usage_row(line: int, record: _Record) -> ParsedRow:
    counts = ("input_tokens", "output_tokens", "input_cached_tokens", "num_model_requests")
    if not any(record.filled(name) for name in (*counts, "model")):
        return _empty(line, record, _bucket_times)
    start, end = _bucket_times(record)
    input_tokens = count_read(record.get("input_tokens"), "input_tokens")
    cached = _optional_count(record.get("input_cached_tokens"), "input_cached_tokens") or 0
    if cached > input_tokens:
        raise _RowProblem("input_cached_tokens exceeds input_tokens (cached tokens are part of the input)")
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=_clean(record.get("model"), "model"),
        part="",
        project=_clean(record.get("project_id"), "project_id"),
        amount_usd=None,
        currency="USD",
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=count_read(record.get("output_tokens"), "output_tokens"),
        requests=_optional_count(record.get("num_model_requests"), "num_model_requests"),
    )


def _anthropic_times(record: _Record) -> tuple[datetime, datetime]:
    start = time_read(record.get("starting_at"), "starting_at")
    end = time_read(record.get("ending_at"), "ending_at") if record.filled("ending_at") else start + ONE_DAY
    if end <= start:
        raise _RowProblem("the bucket ends before it starts")
    return start, end


def _anthropic_part(token_type: str, cost_type: str) -> str:
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
        model=_clean(record.get("model"), "model"),
        part=_anthropic_part(_clean(record.get("token_type"), "token_type"), record.get("cost_type")),
        project=_clean(record.get("workspace_id"), "workspace_id"),
        amount_usd=_cents_to_usd(decimal_read(record.get("amount"), "amount")),
        currency=_clean(record.get("currency"), "currency").upper() or "USD",
    )


_CSV_CONVERTERS: dict[str, Callable[[int, _Record], ParsedRow]] = {
    OPENAI_COSTS: _openai_costs_row,
    OPENAI_USAGE: _openai_usage_row,
    ANTHROPIC_COSTS: _anthropic_row,
}


# --- JSON pages -----------------------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _buckets(document: object) -> list[Any]:
    """The buckets of a page (`{"data": [...]}`) or of a list of pages."""
    pages = document if isinstance(document, list) else [document]
    buckets: list[Any] = []
    for page in pages:
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise UnreadableFile('a JSON file must be an API page ({"data": [...]}) or a list of pages')
        buckets.extend(page["data"])
    return buckets


def _json_detect(buckets: list[Any]) -> str | None:
    for bucket in buckets:
        if not isinstance(bucket, dict):
            continue
        if "starting_at" in bucket:
            return ANTHROPIC_COSTS
        results = bucket.get("results")
        for result in results if isinstance(results, list) else ():
            if not isinstance(result, dict):
                continue
            kind = str(result.get("object", ""))
            if "amount" in result or kind.endswith("costs.result"):
                return OPENAI_COSTS
            if "input_tokens" in result or ".usage." in kind:
                return OPENAI_USAGE
    return None


def _json_open(text: io.TextIOWrapper, source: str | None) -> ProviderFile:
    if source == REQUESTS:
        raise UnreadableFile("a requests file is CSV, not JSON")
    try:
        document = json.load(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise UnreadableFile(f"the file is not valid JSON: {str(exc)[:200]}") from None
    buckets = _buckets(document)
    detected = source or _json_detect(buckets)
    if detected is None:
        raise UnreadableFile("the JSON page has no result that tells its source; name the source")
    return ProviderFile(source=detected, file_format="json", columns=(), rows=_json_rows(buckets, detected))


def _json_rows(buckets: list[Any], source: str) -> Iterator[ParsedRow]:
    item = 0
    for b, bucket in enumerate(buckets):
        where = f"data[{b}]"
        try:
            if not isinstance(bucket, dict):
                raise _RowProblem("a bucket must be an object")
            start, end = _json_bucket_times(bucket, source)
            results = bucket.get("results") or []
            if not isinstance(results, list):
                raise _RowProblem("results must be a list")
        except _RowProblem as exc:
            item += 1
            yield _row_error(item, f"{where}: {exc}")
            continue
        if not results:
            item += 1
            yield EmptyBucket(line=item, start=start, end=end)
            continue
        for r, result in enumerate(results):
            item += 1
            try:
                if not isinstance(result, dict):
                    raise _RowProblem("a result must be an object")
                yield _JSON_CONVERTERS[source](item, start, end, result)
            except _RowProblem as exc:
                yield _row_error(item, f"{where}.results[{r}]: {exc}")


def _json_bucket_times(bucket: Mapping[str, Any], source: str) -> tuple[datetime, datetime]:
    names = ("starting_at", "ending_at") if source == ANTHROPIC_COSTS else ("start_time", "end_time")
    start = _json_time(bucket.get(names[0]), names[0])
    end = _json_time(bucket[names[1]], names[1]) if bucket.get(names[1]) is not None else start + ONE_DAY
    if end <= start:
        raise _RowProblem("the bucket ends before it starts")
    return start, end


def _openai_costs_result(line: int, start: datetime, end: datetime, result: Mapping[str, Any]) -> BucketRow:
    amount = result.get("amount")
    if not isinstance(amount, dict):
        raise _RowProblem("amount must be an object with value and currency")
    model, part = line_item_split(_clean(_json_text(result.get("line_item")), "line_item"))
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=model,
        part=part,
        project=_clean(_json_text(result.get("project_id")), "project_id"),
        amount_usd=_json_number(amount.get("value"), "amount.value", decimal_read),
        currency=_clean(_json_text(amount.get("currency")), "amount.currency").upper() or "USD",
    )


def _openai_usage_result(line: int, start: datetime, end: datetime, result: Mapping[str, Any]) -> BucketRow:
    input_tokens = _json_number(result.get("input_tokens"), "input_tokens", count_read)
    cached_value = result.get("input_cached_tokens")
    cached = 0 if cached_value is None else _json_number(cached_value, "input_cached_tokens", count_read)
    if cached > input_tokens:
        raise _RowProblem("input_cached_tokens exceeds input_tokens (cached tokens are part of the input)")
    requests = result.get("num_model_requests")
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=_clean(_json_text(result.get("model")), "model"),
        part="",
        project=_clean(_json_text(result.get("project_id")), "project_id"),
        amount_usd=None,
        currency="USD",
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=_json_number(result.get("output_tokens"), "output_tokens", count_read),
        requests=None if requests is None else _json_number(requests, "num_model_requests", count_read),
    )


def _anthropic_result(line: int, start: datetime, end: datetime, result: Mapping[str, Any]) -> BucketRow:
    cents = _json_number(result.get("amount"), "amount", decimal_read)
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=_clean(_json_text(result.get("model")), "model"),
        part=_anthropic_part(_json_text(result.get("token_type")), _json_text(result.get("cost_type"))),
        project=_clean(_json_text(result.get("workspace_id")), "workspace_id"),
        amount_usd=_cents_to_usd(cents),
        currency=_clean(_json_text(result.get("currency")), "currency").upper() or "USD",
    )


_JSON_CONVERTERS: dict[str, Callable[[int, datetime, datetime, Mapping[str, Any]], BucketRow]] = {
    OPENAI_COSTS: _openai_costs_result,
    OPENAI_USAGE: _openai_usage_result,
    ANTHROPIC_COSTS: _anthropic_result,
}


# --- model names ------------------------------------------------------------------------------------------------------

_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


def undated_model_name(name: str) -> str:
    """`gpt-4o-mini-2024-08-06` -> `gpt-4o-mini`: the family a dated snapshot name most likely belongs to."""
    return _SNAPSHOT_SUFFIX.sub("", name)
