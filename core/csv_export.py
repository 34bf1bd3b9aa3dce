"""The one way TokenLedger writes CSV: every cell of every download goes through `safe_cell`.

Formula injection: a spreadsheet runs a cell that starts with = + - @ (or a tab or carriage return before one) as a
formula, so an account named `=HYPERLINK(...)` could run in an operator's spreadsheet. The rule, for every cell:
- numbers we write (Decimal, int) are written plainly and stay numbers: -1.5 is a number, not a formula;
- text that is a plain decimal number ("-1.5", "+3", "0.25") stays as it is: a spreadsheet reads it as that number
  and nothing else, and our amounts often arrive already formatted as text;
- any other text starting with = + - @ TAB CR LF, or their full-width forms (U+FF1D U+FF0B U+FF0D U+FF20, which some spreadsheets
  fold to the ASCII ones), is prefixed with a single quote, which spreadsheets show as text and do not evaluate.
The quote changes what a program reading the file sees ("'=1"), which is the point: the cell is text.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")

Row = Sequence[object]


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def safe_cell(value: object) -> str:
    """A cell's text with the rule above applied; None is an empty cell, dates are ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    if text[:1] in FORMULA_STARTS and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_write(out: _Writable, rows: Iterable[Row]) -> None:
    """Write `rows` (header included) to a file-like `out`, such as an HttpResponse, every cell made safe."""
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])


class _Line:
    """A file-like that hands back what csv.writer writes, so each row becomes one string to stream."""

    def write(self, text: str) -> str:
        return text


def csv_lines(rows: Iterable[Row]) -> Iterator[str]:
    """`rows` as CSV text one line at a time, every cell made safe: the body of a StreamingHttpResponse, so a
    million-row export never sits in memory."""
    writer = csv.writer(_Line())
    for row in rows:
        yield writer.writerow([safe_cell(value) for value in row])
