"""The money filters and the SVG charts: pure functions, no database."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.template import Context, Template

from dashboard.charts import ChartPoint, axis_scale, bar_list_chart, column_chart, nice_step
from dashboard.templatetags.money import format_credits, format_money, price_filter
from pricing.money import Money, MoneyError


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (Decimal("1234.5"), "USD", "$1,234.50"),
        (Decimal("0.005"), "USD", "$0.01"),  # half up, once
        (Decimal("0.004999"), "USD", "$0.005"),  # not zero, so never shown as $0.00 (issue 21)
        (Decimal("-12.345"), "USD", "-$12.35"),
        (Decimal("-0.001"), "USD", "-$0.001"),
        (Decimal("-0.0000001"), "USD", "-$0.0000001"),
        (Decimal(0), "USD", "$0.00"),  # never "-$0.00"
        (Decimal("2284.01"), "ZAR", "R\u00a02,284.01"),
        (Decimal("99.999"), "EUR", "€100.00"),
        (Decimal("1234.5"), "JPY", "¥1,235"),  # no minor unit
        (Decimal("10.5"), "CHF", "10.50\u00a0CHF"),  # no symbol: the code after the amount
        (Decimal("1234567.5"), "CREDITS", "1,234,568"),
        (12, "USD", "$12.00"),
        ("7.125", "usd", "$7.13"),
    ],
)
def test_money_is_formatted_for_its_currency(amount, currency, shown):
    assert format_money(amount, currency) == shown


def test_money_objects_carry_their_currency_and_floats_are_refused():
    assert format_money(Money(Decimal("18.5"), "ZAR")) == "R\u00a018.50"
    with pytest.raises(MoneyError, match="float"):
        format_money(1.1, "USD")
    with pytest.raises(MoneyError, match="float"):
        format_credits(2.5)


def test_credits_and_prices():
    assert format_credits(Decimal("250000.000000000000")) == "250,000"
    assert format_credits(Decimal("0.4")) == "0.4"  # under one credit: never a bare 0 (issue 21)
    assert format_credits(Decimal("0.000321")) == "0.0003"
    assert price_filter(Decimal("0.000150000000"), "USD") == "$0.00015"
    assert price_filter(Decimal("5"), "USD") == "$5.00"
    assert price_filter(Decimal("0.0000004"), "USD") == "$0.0000004"  # a price too small for 6 places keeps its own


def test_filters_in_a_template():
    template = Template(
        '{% load money %}{{ a|money:"USD" }} | {{ b|credits }} | {{ c|plain }} | {{ d|units }} | {{ m|money }}'
    )
    text = template.render(
        Context(
            {
                "a": Decimal("5"),
                "b": Decimal("1000000"),
                "c": Decimal("18.500000"),
                "d": Decimal("2.50"),
                "m": Money(Decimal("3"), "EUR"),
            }
        )
    )
    assert text == "$5.00 | 1,000,000 | 18.5 | 2.50 | €3.00"


@pytest.mark.parametrize(
    ("value", "step"),
    [("0.3", "0.5"), ("1", "1"), ("1.2", "2"), ("3", "5"), ("7", "10"), ("250", "500"), ("0", "1")],
)
def test_nice_steps(value, step):
    assert nice_step(Decimal(value)) == Decimal(step)


def test_axis_reaches_the_peak_in_round_steps():
    for peak in ["1", "9", "45", "101", "4500", "123456", "999999"]:
        step, steps = axis_scale(Decimal(peak))
        assert step * steps >= Decimal(peak) and 1 <= steps <= 4
        assert step == nice_step(step)  # a round number
    assert axis_scale(Decimal("0.3")) == (Decimal(1), 1)  # credits are whole: never a step below 1


def _points(values: list[str]) -> list[ChartPoint]:
    return [ChartPoint(label=f"Day {i}", value=Decimal(v), detail=f"{v} credits") for i, v in enumerate(values)]


def test_column_chart_draws_a_bar_for_each_day_with_usage_only():
    svg = str(column_chart(_points(["0", "5", "0", "20", "0.5"]), title="Daily <usage>", description="d",
                           value_label=format_credits))  # fmt: skip
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'role="img"' in svg and "<title" in svg and "Daily &lt;usage&gt;" in svg  # labelled and escaped
    bars = re.findall(r'<rect class="bar" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', svg)
    assert len(bars) == 3
    heights = [Decimal(h) for *_, h in bars]
    assert heights[1] > heights[0] > heights[2] > 0  # 20 > 5 > 0.5, and a tiny day still shows
    assert "<title>Day 3: 20 credits</title>" in svg
    coordinates = re.findall(r' (?:x|y|x1|y1|x2|y2|width|height)="([^"]+)"', svg)
    assert coordinates and all(re.fullmatch(r"\d+(\.\d\d)?", c) for c in coordinates)  # fixed point, never 1E+2


def test_bar_list_chart_sorts_nothing_and_scales_to_the_longest():
    svg = str(bar_list_chart(_points(["10", "40", "0"]), title="By model", description="d", value_label=format_credits))
    widths = re.findall(r'<rect class="bar" x="0" y="[\d.]+" width="([\d.]+)"', svg)
    assert [Decimal(w) for w in widths] == [Decimal("120.00"), Decimal("480.00")]
    empty = str(bar_list_chart([], title="By model", description="d", value_label=format_credits))
    assert "No usage in this range" in empty and 'class="bar"' not in empty
