"""Money as people read it (pricing/display.py): every case computed by hand; pure functions, no database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing import display
from pricing.money import Money, MoneyError

D = Decimal


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (D("1234.5"), "USD", "$1,234.50"),
        (D("0.005"), "USD", "$0.01"),  # half up, once
        (D("0.004999"), "USD", "$0.005"),  # not zero, so not "$0.00": its first significant place, half up
        (D("-12.345"), "USD", "-$12.35"),
        (D("-0.001"), "USD", "-$0.001"),
        (D("0"), "USD", "$0.00"),
        (D("-0.000000000000"), "USD", "$0.00"),  # never "-$0.00"
        (D("2284.01"), "ZAR", "R\u00a02,284.01"),
        (D("99.999"), "EUR", "€100.00"),
        (D("1234.5"), "JPY", "¥1,235"),
        (D("10.5"), "CHF", "10.50\u00a0CHF"),  # no symbol: the code after the amount
        (D("1234567.5"), "CREDITS", "1,234,568"),
        (12, "USD", "$12.00"),
        ("7.125", "usd", "$7.13"),
    ],
)
def test_money_in_a_currency(amount, currency, shown):
    assert display.money(amount, currency) == shown


def test_money_takes_its_currency_from_money_and_refuses_floats_and_no_currency():
    assert display.money(Money(D("18.5"), "ZAR")) == "R\u00a018.50"
    assert display.money(None, "USD") == "—"
    with pytest.raises(MoneyError):
        display.money(1.1, "USD")
    with pytest.raises(ValueError, match="currency"):
        display.money(D("1"))


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (D("250000.000000000000"), "250,000"),
        (D("1234.5"), "1,235"),
        (D("0.4"), "0.4"),  # under one credit: never "0"
        (D("0.000000000003"), "0.000000000003"),  # the smallest stored amount still shows
        (D("-0.6"), "-1"),
        (D("0"), "0"),
    ],
)
def test_credits_are_whole_unless_that_would_hide_them(value, shown):
    assert display.credits(value) == shown


def test_credits_at_places_and_missing():
    assert display.credits(D("1234.567"), 2) == "1,234.57"
    assert display.credits(None) == "—"
    assert display.credits(None, missing="-") == "-"


@pytest.mark.parametrize(
    ("value", "signed", "shown"),
    [
        (D("0.150000000000"), False, "0.15"),
        (D("10000.000000000000"), False, "10000"),  # no exponent (normalize alone would give 1E+4)
        (D("-0.25"), True, "-0.25"),
        (D("12.5"), True, "+12.5"),
        (D("0E-12"), True, "0"),
        (None, False, ""),  # an empty form field or cell
    ],
)
def test_plain_is_the_stored_amount_without_padding(value, signed, shown):
    assert display.plain(value, signed=signed) == shown


def test_plain_and_grouped_missing_and_separators():
    assert display.plain(None, missing="-") == "-"
    assert display.grouped(D("10000.000000000000")) == "10,000"
    assert display.grouped(D("18.50")) == "18.5"
    assert display.grouped(D("0E-12")) == "0"


@pytest.mark.parametrize(
    ("value", "places", "shown"),
    [
        (D("1234.56785"), 4, "$1,234.5679"),
        (D("0.00001"), 4, "$0.00001"),
        (D("-3.5"), 2, "-$3.50"),
        (None, 2, "-"),
    ],
)
def test_usd(value, places, shown):
    assert display.usd(value, places) == shown


def test_figure_rates_and_prices():
    assert display.figure(D("1234.5"), 2) == "1,234.50"
    assert display.figure(D("0.001"), 2) == "0.001"
    assert display.percent(D("0.98765")) == "98.8 %"
    assert display.percent(D("0.0004")) == "0.04 %"  # 0.04 %, not "0.0 %"
    assert display.percent(None) == "-"
    assert display.usd_price(D("0.100000000000")) == "$0.10"
    assert display.usd_price(D("0.075")) == "$0.075"
    assert display.usd_price(D("4")) == "$4.00"
    assert display.price(D("0.000150000000"), "USD") == "$0.00015"
    assert display.price(D("5"), "usd") == "$5.00"
    assert display.price(D("0.0000004"), "USD") == "$0.0000004"  # rounds to 0 at six places, so shown further


def test_money_text_and_units():
    assert display.money_text(Money(D("50000.4"), "CREDITS")) == "50,000"
    assert display.money_text(Money(D("92.495"), "ZAR")) == "92.50"
    assert display.units(D("1500000")) == "1,500,000"
    assert display.units(D("2.5")) == "2.50"


@pytest.mark.parametrize(
    ("value", "shown"),
    [("0", "$0.00"), ("0.05", "$0.0500"), ("12.345", "$12.35"), ("2500", "$2.5k"), ("-3400000", "-$3.4M"),
     ("0.00002", "$0.00002")],
)  # fmt: skip
def test_usd_short_for_chart_axes(value, shown):
    assert display.usd_short(D(value)) == shown
