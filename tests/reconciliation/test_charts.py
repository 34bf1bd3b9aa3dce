"""The inline SVG charts: labels escaped, negative values below the zero line, empty data still a valid chart."""

from __future__ import annotations

import re
from decimal import Decimal
from xml.etree import ElementTree

from pricing.display import usd_short
from reconciliation.charts import Series, bar_chart, line_chart


def test_bar_chart_escapes_labels_and_hangs_negatives_below_zero():
    svg = str(bar_chart(title="Margin <by> model", categories=["<script>alert(1)</script>", "b"],
                        series=[Series("margin & more", [Decimal("12.5"), Decimal("-3")])]))  # fmt: skip
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "margin &amp; more" in svg
    ElementTree.fromstring(svg)  # noqa: S314 - our own markup: well-formed
    zero = re.search(r'<line class="zero" x1="[\d.]+" x2="[\d.]+" y1="([\d.]+)"', svg)
    assert zero is not None
    bars = re.findall(r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="#\w+"><title>', svg)
    (up_y, up_h), (down_y, down_h) = bars
    assert Decimal(up_y) + Decimal(up_h) == Decimal(zero.group(1)) == Decimal(down_y)  # one above, one below
    assert Decimal(down_h) > 0


def test_line_chart_and_empty_data():
    svg = str(line_chart(title="Trend", categories=["2026-09", "2026-10"],
                         series=[Series("actual", [Decimal(0), Decimal("3.006562")]),
                                 Series("calculated", [Decimal(0), Decimal("0.6")])]))  # fmt: skip
    ElementTree.fromstring(svg)  # noqa: S314 - our own markup
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 4
    assert "2026-10: actual 3.006562" in svg
    empty = str(bar_chart(title="Nothing", categories=[], series=[Series("x", [])]))
    ElementTree.fromstring(empty)  # noqa: S314 - our own markup


def test_axis_labels():
    assert [usd_short(Decimal(v)) for v in ("0", "0.05", "12.345", "2500", "-3400000")] == [
        "$0.00", "$0.0500", "$12.35", "$2.5k", "-$3.4M",
    ]  # fmt: skip
