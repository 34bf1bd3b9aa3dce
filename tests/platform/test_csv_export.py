"""The CSV writer every download uses (core/csv_export.py): the formula guard, cell by cell, and the file it writes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core.csv_export import csv_lines, csv_write, safe_cell


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("\uff1d1+1", "'\uff1d1+1"),  # full-width equals sign
        ("-", "'-"),
        ("-1E5", "'-1E5"),  # an exponent is not how we write numbers: text
        ("-Infinity", "'-Infinity"),
        ("Acme = fine", "Acme = fine"),  # only the first character matters
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_text_a_spreadsheet_would_run_is_quoted(value, written):
    assert safe_cell(value) == written


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (Decimal("-1.500000000000"), "-1.500000000000"),
        (Decimal("1E-12"), "0.000000000001"),  # never an exponent
        (-3, "-3"),
        ("-1.5", "-1.5"),  # a number already written as text stays a number
        ("+3", "+3"),
        ("-.5", "-.5"),
        (None, ""),
        (True, "True"),
        (date(2026, 12, 1), "2026-12-01"),
        (datetime(2026, 12, 1, 3, 4, tzinfo=UTC), "2026-12-01T03:04:00+00:00"),
    ],
)
def test_numbers_and_dates_are_written_as_themselves(value, written):
    assert safe_cell(value) == written


def test_a_written_file_reads_back_with_every_cell_guarded():
    out = io.StringIO()
    csv_write(out, [("account", "balance"), ("=cmd|'/C calc'!A0", Decimal("-2.5")), ('say "hi", ok', 7)])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["account", "balance"],
        ["'=cmd|'/C calc'!A0", "-2.5"],
        ['say "hi", ok', "7"],
    ]


def test_streamed_lines_are_the_same_file_one_row_at_a_time():
    rows = [("name",), ("@evil",), ("ok",)]
    out = io.StringIO()
    csv_write(out, rows)
    lines = list(csv_lines(rows))
    assert len(lines) == 3
    assert "".join(lines) == out.getvalue() == "name\r\n'@evil\r\nok\r\n"
