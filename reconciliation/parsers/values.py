"""Reading one value of a record: text, amounts, counts, times, line items and model names; never a float."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from reconciliation.parsers.rows import EARLIEST, LATEST, MAX_AMOUNT, MAX_COUNT, OPENAI_PARTS, RowError, RowProblem


def clean(value: str, name: str) -> str:
    value = value.strip()
    if "\ufffd" in value:
        raise RowProblem(f"{name} is not valid UTF-8")
    if "\x00" in value:
        # no provider writes one, and no database text column can hold one
        raise RowProblem(f"{name} holds a NUL character")
    return value


def row_error(line: int, reason: str) -> RowError:
    """A row error whose message can be stored: a NUL quoted from the file is written as \\x00."""
    return RowError(line=line, reason=reason.replace("\x00", "\\x00"))


def decimal_read(text: str, name: str) -> Decimal:
    """A Decimal from the text as written (`0.8958740000000000` stays exact); finite and of a sane size."""
    text = clean(text, name)
    if not text:
        raise RowProblem(f"{name} is empty")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise RowProblem(f"{name} is not a number: {text[:40]!r}") from None
    if not value.is_finite() or abs(value) >= MAX_AMOUNT:
        raise RowProblem(f"{name} is out of range: {text[:40]!r}")
    return value


def count_read(text: str, name: str) -> int:
    """A whole count >= 0, written `1500` or `1500.0`."""
    text = clean(text, name)
    if text.isascii() and text.isdigit() and len(text) < 16:
        return int(text)
    if not text:
        raise RowProblem(f"{name} is empty")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise RowProblem(f"{name} is not a number: {text[:40]!r}") from None
    if not value.is_finite() or value < 0 or value >= MAX_COUNT or value != value.to_integral_value():
        raise RowProblem(f"{name} must be a whole number >= 0, got {text[:40]!r}")
    return int(value)


def optional_count(text: str, name: str) -> int | None:
    return count_read(text, name) if text.strip() else None


def time_read(text: str, name: str) -> datetime:
    """An aware UTC time from ISO 8601 (`Z` or an offset; without one it is UTC) or Unix seconds (`1790812800`)."""
    text = clean(text, name)
    if not text:
        raise RowProblem(f"{name} is empty")
    moment: datetime
    if text[0].isdigit() and text.replace(".", "", 1).isdigit():
        try:
            seconds = Decimal(text)
            moment = datetime.fromtimestamp(int(seconds), UTC) if seconds < 10**11 else LATEST
        except (InvalidOperation, ValueError, OverflowError, OSError):
            raise RowProblem(f"{name} is not a time: {text[:40]!r}") from None
    else:
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is not UTC:
                moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except (ValueError, OverflowError):
            raise RowProblem(f"{name} is not a time: {text[:40]!r}") from None
    if not EARLIEST <= moment < LATEST:
        raise RowProblem(f"{name} is out of range: {text[:40]!r}")
    return moment


def json_time(value: object, name: str) -> datetime:
    if isinstance(value, bool) or value is None:
        raise RowProblem(f"{name} is missing")
    if isinstance(value, int | Decimal | str):
        return time_read(str(value), name)
    raise RowProblem(f"{name} is not a time")


def json_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise RowProblem(f"expected text, got {type(value).__name__}")


def json_number(value: object, name: str, read: Callable[[str, str], Any]) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise RowProblem(f"{name} is missing or not a number")
    return read(str(value), name)


def cents_to_usd(cents: Decimal) -> Decimal:
    return cents.scaleb(-2)


def line_item_split(line_item: str) -> tuple[str, str]:
    """`"gpt-4o-mini-2024-07-18, cached input"` -> (model, cached_input); an empty line item is a day total."""
    line_item = line_item.strip()
    model, comma, part = line_item.rpartition(", ")
    if not comma:
        return line_item, ""
    known = OPENAI_PARTS.get(part.strip().lower())
    return model.strip(), known if known else f"other:{part.strip().lower()}"


_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


def undated_model_name(name: str) -> str:
    """`gpt-4o-mini-2024-08-06` -> `gpt-4o-mini`: the family a dated snapshot name most likely belongs to."""
    return _SNAPSHOT_SUFFIX.sub("", name)
