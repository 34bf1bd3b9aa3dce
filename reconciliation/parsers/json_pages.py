"""JSON pages of the providers' cost and usage APIs: each bucket's results become typed rows."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from reconciliation.parsers.csv_files import anthropic_part
from reconciliation.parsers.rows import (
    ANTHROPIC_COSTS,
    ONE_DAY,
    OPENAI_COSTS,
    OPENAI_USAGE,
    REQUESTS,
    BucketRow,
    EmptyBucket,
    ParsedRow,
    ProviderFile,
    RowProblem,
    UnreadableFile,
)
from reconciliation.parsers.values import (
    cents_to_usd,
    clean,
    count_read,
    decimal_read,
    json_number,
    json_text,
    json_time,
    line_item_split,
    row_error,
)


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


def json_open(text: io.TextIOWrapper, source: str | None) -> ProviderFile:
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
                raise RowProblem("a bucket must be an object")
            start, end = _json_bucket_times(bucket, source)
            results = bucket.get("results") or []
            if not isinstance(results, list):
                raise RowProblem("results must be a list")
        except RowProblem as exc:
            item += 1
            yield row_error(item, f"{where}: {exc}")
            continue
        if not results:
            item += 1
            yield EmptyBucket(line=item, start=start, end=end)
            continue
        for r, result in enumerate(results):
            item += 1
            try:
                if not isinstance(result, dict):
                    raise RowProblem("a result must be an object")
                yield _JSON_CONVERTERS[source](item, start, end, result)
            except RowProblem as exc:
                yield row_error(item, f"{where}.results[{r}]: {exc}")


def _json_bucket_times(bucket: Mapping[str, Any], source: str) -> tuple[datetime, datetime]:
    names = ("starting_at", "ending_at") if source == ANTHROPIC_COSTS else ("start_time", "end_time")
    start = json_time(bucket.get(names[0]), names[0])
    end = json_time(bucket[names[1]], names[1]) if bucket.get(names[1]) is not None else start + ONE_DAY
    if end <= start:
        raise RowProblem("the bucket ends before it starts")
    return start, end


def _openai_costs_result(line: int, start: datetime, end: datetime, result: Mapping[str, Any]) -> BucketRow:
    amount = result.get("amount")
    if not isinstance(amount, dict):
        raise RowProblem("amount must be an object with value and currency")
    model, part = line_item_split(clean(json_text(result.get("line_item")), "line_item"))
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=model,
        part=part,
        project=clean(json_text(result.get("project_id")), "project_id"),
        amount_usd=json_number(amount.get("value"), "amount.value", decimal_read),
        currency=clean(json_text(amount.get("currency")), "amount.currency").upper() or "USD",
    )


def _openai_usage_result(line: int, start: datetime, end: datetime, result: Mapping[str, Any]) -> BucketRow:
    input_tokens = json_number(result.get("input_tokens"), "input_tokens", count_read)
    cached_value = result.get("input_cached_tokens")
    cached = 0 if cached_value is None else json_number(cached_value, "input_cached_tokens", count_read)
    if cached > input_tokens:
        raise RowProblem("input_cached_tokens exceeds input_tokens (cached tokens are part of the input)")
    requests = result.get("num_model_requests")
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=clean(json_text(result.get("model")), "model"),
        part="",
        project=clean(json_text(result.get("project_id")), "project_id"),
        amount_usd=None,
        currency="USD",
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=json_number(result.get("output_tokens"), "output_tokens", count_read),
        requests=None if requests is None else json_number(requests, "num_model_requests", count_read),
    )


def _anthropic_result(line: int, start: datetime, end: datetime, result: Mapping[str, Any]) -> BucketRow:
    cents = json_number(result.get("amount"), "amount", decimal_read)
    return BucketRow(
        line=line,
        start=start,
        end=end,
        model=clean(json_text(result.get("model")), "model"),
        part=anthropic_part(json_text(result.get("token_type")), json_text(result.get("cost_type"))),
        project=clean(json_text(result.get("workspace_id")), "workspace_id"),
        amount_usd=cents_to_usd(cents),
        currency=clean(json_text(result.get("currency")), "currency").upper() or "USD",
    )


_JSON_CONVERTERS: dict[str, Callable[[int, datetime, datetime, Mapping[str, Any]], BucketRow]] = {
    OPENAI_COSTS: _openai_costs_result,
    OPENAI_USAGE: _openai_usage_result,
    ANTHROPIC_COSTS: _anthropic_result,
}
