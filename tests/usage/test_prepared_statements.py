"""core.statements' prepared statements on real PostgreSQL: a `Statement(..., prepare=True)` is planned once per
connection (PREPARE in the round trip of its first run, EXECUTE afterwards) and answers exactly what the same
statement sent as text answers, whatever its values' types; a failed round trip or a new connection never leaves a
statement EXECUTEd that the server does not have."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from django.db import DatabaseError, connection, models
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core import statements as statements_module
from core.statements import Statement, statements_run

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class _Choice(models.TextChoices):
    QUOTED = "a'b"
    PLAIN = "plain"


def _prepared_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


def _verbs(queries: CaptureQueriesContext) -> list[str]:
    return [part.split()[0] for q in queries.captured_queries for part in q["sql"].split(";\n")]


@pytest.fixture(autouse=True)
def _fresh_connection():
    connection.close()  # each test starts on a connection with nothing prepared
    yield
    connection.close()


def test_a_prepared_statement_is_planned_once_and_then_executed():
    statement = Statement("SELECT %s::int8 + 1, %s", [41, "text"], prepare=True)
    with CaptureQueriesContext(connection) as first:
        assert statements_run(statement) == [[(42, "text")]]
    with CaptureQueriesContext(connection) as second:
        assert statements_run(Statement(statement.sql, [1, "other"], prepare=True)) == [[(2, "other")]]
    assert _verbs(first) == ["PREPARE", "EXECUTE"]
    assert _verbs(second) == ["EXECUTE"]
    assert len(first.captured_queries) == len(second.captured_queries) == 1  # the PREPARE rides with the call
    assert len(_prepared_names()) == 1


@pytest.mark.parametrize(
    ("sql", "value", "expected"),
    [
        # without a declared type `$1 > 0` would make $1 an integer and round 0.4 down to 0
        ("SELECT %s > 0, %s * 3", Decimal("0.4"), (True, Decimal("1.2"))),
        ("SELECT %s > 0, %s * 3", Decimal("-0.000000000001"), (False, Decimal("-0.000000000003"))),
        ("SELECT %s > 0, %s * 3", 3_000_000_000, (True, 9_000_000_000)),
        ("SELECT %s IS NULL, %s IS NULL", None, (True, True)),
        ("SELECT %s < now(), %s + interval '1 day'", datetime(2024, 1, 1, tzinfo=UTC),
         (True, datetime(2024, 1, 2, tzinfo=UTC))),
        ("SELECT %s < current_date, %s + 1", date(2024, 1, 1), (True, date(2024, 1, 2))),
        ("SELECT %s AND true, NOT %s", True, (True, False)),
        ("SELECT 'a' = ANY(%s), cardinality(%s::text[])", ["a", "b,c", "d'e"], (True, 3)),
        ("SELECT %s = 'x''y', length(%s)", "x'y", (True, 3)),
        ("SELECT %s = '00000000-0000-0000-0000-000000000001', %s::text", uuid.UUID(int=1),
         (True, "00000000-0000-0000-0000-000000000001")),
        # the values core.statements writes as text itself (not psycopg): each form its type's text takes
        ("SELECT %s > 0, %s * 3", Decimal("1E+3"), (True, Decimal("3E+3"))),
        ("SELECT %s = 0, %s * 1", Decimal("-0E-12"), (True, Decimal("0E-12"))),
        ("SELECT %s < 0, %s * 2", Decimal("-12345678901234567890.123456789012"),
         (True, Decimal("-24691357802469135780.246913578024"))),
        ("SELECT %s = 'NaN', %s::text", Decimal("NaN"), (True, "NaN")),
        ("SELECT %s < 0, %s + 1", -9_223_372_036_854_775_807, (True, -9_223_372_036_854_775_806)),
        ("SELECT %s = timestamptz '2024-01-01 05:30+05:30', %s::text",
         datetime(2024, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
         (True, "2024-01-01 00:00:00+00")),
        ("SELECT %s = timestamp '2024-01-01 00:00:00.000001', %s::text", datetime(2024, 1, 1, 0, 0, 0, 1),
         (True, "2024-01-01 00:00:00.000001")),
        ("SELECT %s::int8[] = '{1,-2}', array_length(%s::int8[], 1)", [1, -2], (True, 2)),
        ("SELECT %s::numeric[] = '{1.5,-0.25}', (%s::numeric[])[2]", [Decimal("1.5"), Decimal("-0.25")],
         (True, Decimal("-0.25"))),
        ("SELECT %s::date[] = '{2024-01-01}', (%s::date[])[1]", [date(2024, 1, 1)], (True, date(2024, 1, 1))),
        ("SELECT %s::int8[] = '{}', cardinality(%s::int8[])", [], (True, 0)),
        ("SELECT %s::text[] = '{\"a,b\",\"c}\"}', cardinality(%s::text[])", ["a,b", "c}"], (True, 2)),
        ("SELECT %s::numeric[] IS NULL, cardinality(%s::numeric[])", [Decimal("NaN"), Decimal(1)], (False, 2)),
        # strings: written here when ASCII (quotes doubled; a backslash and a percent sign are themselves)
        ("SELECT %s = 'a\\b', length(%s)", "a\\b", (True, 3)),
        ("SELECT %s = '50%%', %s || ''", "50%", (True, "50%")),
        ("SELECT %s = '', length(%s)", "", (True, 0)),
        ("SELECT %s = $$'';--$$, %s", "'';--", (True, "'';--")),
        ("SELECT %s = 'caf\u00e9', length(%s)", "caf\u00e9", (True, 4)),  # not ASCII: quoted by psycopg
        # an enum member that is a str is written as its value, as psycopg dumps it (str first in its MRO)
        ("SELECT %s = 'a''b', %s || ''", _Choice.QUOTED, (True, "a'b")),
        # arrays of strings: each element in double quotes, its backslashes and double quotes escaped
        ("SELECT %s::text[] = ARRAY['a\\b', 'q\"d', 'x''y', 'NULL', '', '{,}'], (%s::text[])[2]",
         ["a\\b", 'q"d', "x'y", "NULL", "", "{,}"], (True, 'q"d')),
        ("SELECT %s::text[] = ARRAY['a''b', 'plain'], (%s::text[])[1]", [_Choice.QUOTED, _Choice.PLAIN],
         (True, "a'b")),
        ("SELECT %s::text[] = ARRAY['caf\u00e9'], (%s::text[])[1]", ["caf\u00e9"], (True, "caf\u00e9")),  # psycopg
    ],
)  # fmt: skip
def test_prepared_or_not_a_statement_answers_the_same(sql, value, expected):
    as_text = statements_run(Statement(sql, [value, value]))
    for _ in range(2):  # the PREPARE's run, then an EXECUTE alone
        assert statements_run(Statement(sql, [value, value], prepare=True)) == as_text == [[expected]]


def test_percent_signs_and_statements_it_cannot_prepare_run_as_text():
    with CaptureQueriesContext(connection) as queries:
        assert statements_run(Statement("SELECT 'a%%' || %s", ["b"], prepare=True)) == [[("a%b",)]]
        # a value of a type it does not declare (here bytes) leaves the statement as text
        assert statements_run(Statement("SELECT length(%s)", [b"abc"], prepare=True)) == [[(3,)]]
    assert _verbs(queries) == ["PREPARE", "EXECUTE", "SELECT"]


def test_after_a_failed_round_trip_the_next_starts_from_nothing_prepared():
    statement = Statement("SELECT %s::int8 * 2", [21], prepare=True)
    with pytest.raises(DatabaseError):  # the PREPARE runs, then the division fails
        statements_run(statement, Statement("SELECT 1 / %s", [0]))
    with CaptureQueriesContext(connection) as queries:
        assert statements_run(statement) == [[(42,)]]
        assert statements_run(statement) == [[(42,)]]
    assert _verbs(queries) == ["DEALLOCATE", "PREPARE", "EXECUTE", "EXECUTE"]


def test_a_prepare_that_never_ran_is_prepared_again():
    good = Statement("SELECT %s::int8 + 1", [1], prepare=True)
    with pytest.raises(DatabaseError):  # the bad PREPARE fails before the good one is sent
        statements_run(Statement("SELECT no_such_column + %s", [1], prepare=True), good)
    assert statements_run(good) == [[(2,)]]
    assert statements_run(good) == [[(2,)]]


def test_a_new_connection_prepares_again():
    statement = Statement("SELECT %s::int8 - 1", [1], prepare=True)
    assert statements_run(statement) == [[(0,)]]
    connection.close()
    with CaptureQueriesContext(connection) as queries:
        assert statements_run(statement) == [[(0,)]]
    assert _verbs(queries) == ["PREPARE", "EXECUTE"]


def test_turned_off_nothing_is_prepared(settings):
    settings.GATE_PREPARED_STATEMENTS = False
    with CaptureQueriesContext(connection) as queries:
        assert statements_run(Statement("SELECT %s::int8", [7], prepare=True)) == [[(7,)]]
    assert _verbs(queries) == ["SELECT"]
    assert _prepared_names() == set()


def test_no_more_than_the_cap_are_prepared_on_one_connection(monkeypatch):
    monkeypatch.setattr(statements_module, "PREPARED_MAX", 3)
    for number in range(5):
        assert statements_run(Statement(f"SELECT {number} + %s::int8", [1], prepare=True)) == [[(number + 1,)]]
    assert len(_prepared_names()) == 3


def test_a_percent_sign_in_a_string_written_here_beside_one_psycopg_quotes():
    sql = "SELECT %s || %s || %s"
    values = ["10% off, ", "d\u00e9j\u00e0 ", "%s%%"]  # the middle one is not ASCII: psycopg quotes it
    for _ in range(2):
        assert statements_run(Statement(sql, values, prepare=True)) == [[("10% off, d\u00e9j\u00e0 %s%%",)]]


def test_a_string_holding_nul_is_refused_as_psycopg_refuses_it():
    with pytest.raises(psycopg.DataError, match="NUL"):
        statements_run(Statement("SELECT %s", ["a\x00b"]))
    with pytest.raises(psycopg.DataError, match="NUL"):
        statements_run(Statement("SELECT %s", ["a\x00b"], prepare=True))


def test_where_the_server_reads_backslashes_as_escapes_psycopg_quotes_strings():
    with connection.cursor() as cursor:
        cursor.execute("SET standard_conforming_strings = off")  # the fixture's new connection resets it
    for _ in range(2):
        assert statements_run(Statement("SELECT %s || ''", ["a\\b'c"], prepare=True)) == [[("a\\b'c",)]]


def test_a_none_between_values_keeps_the_others_in_their_places():
    sql = "SELECT %s::int8, %s IS NULL, %s || 'b'"
    cases: list[tuple[list[object], tuple[object, ...]]] = [
        ([1, None, "a"], (1, True, "ab")),
        ([1, 2, None], (1, False, None)),
    ]
    for values, expected in cases:
        for _ in range(2):
            assert statements_run(Statement(sql, values, prepare=True)) == [[expected]]
    assert len(_prepared_names()) == 2  # one per place a None takes


def test_a_table_changed_under_a_prepared_statement_fails_once_then_is_prepared_afresh():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE prepared_probe (x int4, y text)")
        cursor.execute("INSERT INTO prepared_probe VALUES (1, 'a')")
    statement = Statement("SELECT x, y FROM prepared_probe WHERE x = %s", [1], prepare=True)
    assert statements_run(statement) == [[(1, "a")]]
    with connection.cursor() as cursor:  # a migration, say
        cursor.execute("ALTER TABLE prepared_probe ALTER COLUMN y TYPE int4 USING length(y)")
    with pytest.raises(DatabaseError, match="cached plan must not change result type"):
        statements_run(statement)
    assert statements_run(statement) == [[(1, 1)]]


_LITERAL_VALUES = st.one_of(
    st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
    st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e15"), max_value=Decimal("1e15"),
                places=12),
    st.datetimes(timezones=st.just(UTC), min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)),
    st.dates(min_value=date(1, 1, 1)),
    st.uuids(),
    st.booleans(),
    st.lists(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1), max_size=5),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40),
    st.text(alphabet=st.characters(max_codepoint=127, exclude_characters="\x00"), max_size=40),
    st.lists(st.text(alphabet=st.characters(max_codepoint=127, exclude_characters="\x00"), max_size=8), max_size=4),
    st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8), max_size=4),
)  # fmt: skip


@hypothesis_settings(max_examples=150, deadline=None)
@given(value=_LITERAL_VALUES)
def test_any_value_written_as_text_reads_back_as_psycopg_quoted_it(value):
    """The values core.statements writes into an EXECUTE itself read back exactly as psycopg's quoting of the same
    value in the same statement sent as text does."""
    sql = "SELECT %s"
    if isinstance(value, list):
        sql = "SELECT %s::text[]" if value and isinstance(value[0], str) else "SELECT %s::int8[]"
    as_text = statements_run(Statement(sql, [value]))
    assert statements_run(Statement(sql, [value], prepare=True)) == as_text
