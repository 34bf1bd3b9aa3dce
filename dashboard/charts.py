"""Charts drawn on the server as SVG: no JavaScript, no charting library, and no float anywhere.

Every coordinate is computed in Decimal and written with two decimals. Each bar carries a <title> (the browser's
tooltip, and what a screen reader announces); the SVG is labelled by its own <title> and <desc>. A bar is drawn only
for a value above zero, so the number of bars says on how many days (or for how many models) there was usage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from itertools import count

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

TWO_PLACES = Decimal("0.01")
_ids = count(1)


@dataclass(frozen=True)
class ChartPoint:
    """One bar: its axis label, its value, and the line its tooltip shows."""

    label: str
    value: Decimal
    detail: str = ""


def _n(value: Decimal) -> str:
    """A coordinate as SVG wants it: fixed point, two decimals."""
    return f"{value.quantize(TWO_PLACES, rounding=ROUND_HALF_UP):f}"


def nice_step(value: Decimal, *, minimum: Decimal = Decimal(0)) -> Decimal:
    """The smallest of 1, 2, 5 x 10^k at or above `value` (and `minimum`), so gridlines fall on round numbers."""
    value = max(value, minimum)
    if value <= 0:
        return Decimal(1)
    power = Decimal(10) ** value.adjusted()
    for factor in (Decimal(1), Decimal(2), Decimal(5), Decimal(10)):
        if value <= factor * power:
            return factor * power
    return Decimal(10) * power  # unreachable: value < 10 x 10^adjusted() always


def axis_scale(peak: Decimal, *, lines: int = 4, whole: bool = True) -> tuple[Decimal, int]:
    """(step, number of steps) of a y axis reaching at or above `peak` in at most `lines` round steps. `whole`: the
    values are whole numbers (credits, requests), so a step is never below 1."""
    step = nice_step(peak / lines, minimum=Decimal(1) if whole else Decimal(0))
    steps = max(1, int((peak / step).to_integral_value(rounding=ROUND_CEILING)))
    return step, steps


def _svg_open(*, width: int, height: int, title: str, description: str, css_class: str) -> tuple[str, str]:
    ident = f"chart{next(_ids)}"
    head = format_html(
        '<svg class="{}" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title {}-desc" '
        'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
        css_class,
        width,
        height,
        ident,
        ident,
        ident,
        title,
        ident,
        description,
    )
    return head, ident


def column_chart(
    points: Sequence[ChartPoint],
    *,
    title: str,
    description: str,
    value_label: Callable[[Decimal], str],
    label_every: int = 7,
    whole: bool = True,
) -> SafeString:
    """Vertical bars, one slot per point (e.g. one per day), with a y axis of up to four round steps."""
    width, height = 480, 210
    left, right, top, bottom = Decimal(64), Decimal(6), Decimal(12), Decimal(28)
    plot_w, plot_h = Decimal(width) - left - right, Decimal(height) - top - bottom
    head, _ = _svg_open(
        width=width, height=height, title=title, description=description, css_class="chart chart-columns"
    )
    parts = [head]
    peak = max((p.value for p in points), default=Decimal(0))
    step, steps = axis_scale(peak, whole=whole)
    ceiling = step * steps
    for index in range(steps + 1):
        value = step * index
        y = top + plot_h - plot_h * index / steps
        parts.append(
            format_html(
                '<line class="grid" x1="{}" y1="{}" x2="{}" y2="{}"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>',
                _n(left),
                _n(y),
                _n(left + plot_w),
                _n(y),
                _n(left - 6),
                _n(y),
                value_label(value),
            )
        )
    slots = max(len(points), 1)
    slot = plot_w / slots
    bar_w = slot * Decimal("0.7")
    for index, point in enumerate(points):
        x = left + slot * index
        if point.value > 0:
            bar_h = max(plot_h * point.value / ceiling, Decimal("0.8"))  # a tiny day still shows
            tooltip = f"{point.label}: {point.detail or value_label(point.value)}"
            parts.append(
                format_html(
                    '<rect class="bar" x="{}" y="{}" width="{}" height="{}" rx="1.5"><title>{}</title></rect>',
                    _n(x + (slot - bar_w) / 2),
                    _n(top + plot_h - bar_h),
                    _n(bar_w),
                    _n(bar_h),
                    tooltip,
                )
            )
        # every `label_every`th slot is labelled, and the last one unless a label sits right before it
        last_far_enough = index == len(points) - 1 and index % label_every >= 3
        if index % label_every == 0 or last_far_enough:
            near_end = index >= len(points) - 3  # ends at its slot, so the right edge never cuts it off
            parts.append(
                format_html(
                    '<text class="axis" x="{}" y="{}" text-anchor="{}">{}</text>',
                    _n(x + slot if near_end else x + slot / 2),
                    _n(Decimal(height) - 8),
                    "end" if near_end else "middle",
                    point.label,
                )
            )
    parts.append(format_html('<line class="baseline" x1="{}" y1="{}" x2="{}" y2="{}"/>',
                             _n(left), _n(top + plot_h), _n(left + plot_w), _n(top + plot_h)))  # fmt: skip
    parts.append("</svg>")
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - every piece above is escaped by format_html


def bar_list_chart(
    points: Sequence[ChartPoint], *, title: str, description: str, value_label: Callable[[Decimal], str]
) -> SafeString:
    """Horizontal bars, one row per point (e.g. per model), the label above each bar and its value at the right:
    long names stay readable on a phone."""
    width = 480
    row_h, bar_h, top = Decimal(46), Decimal(12), Decimal(4)
    rows = [p for p in points if p.value > 0]
    height = int(top * 2 + row_h * max(len(rows), 1))
    head, _ = _svg_open(width=width, height=height, title=title, description=description, css_class="chart chart-bars")
    parts = [head]
    peak = max((p.value for p in rows), default=Decimal(0))
    full = Decimal(width)
    if not rows:
        parts.append(format_html('<text class="axis" x="0" y="{}">{}</text>', _n(top + 20), "No usage in this range"))
    for index, point in enumerate(rows):
        y = top + row_h * index
        length = max(full * point.value / peak, Decimal("0.8")) if peak > 0 else Decimal(0)
        parts.append(
            format_html(
                '<text class="label" x="0" y="{}">{}</text>'
                '<text class="value" x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect class="track" x="0" y="{}" width="{}" height="{}" rx="3"/>'
                '<rect class="bar" x="0" y="{}" width="{}" height="{}" rx="3"><title>{}</title></rect>',
                _n(y + 19),
                point.label,
                width,
                _n(y + 19),
                value_label(point.value),
                _n(y + 27),
                width,
                _n(bar_h),
                _n(y + 27),
                _n(length),
                _n(bar_h),
                f"{point.label}: {point.detail or value_label(point.value)}",
            )
        )
    parts.append("</svg>")
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - every piece above is escaped by format_html
