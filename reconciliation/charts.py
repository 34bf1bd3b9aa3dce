"""Charts for the reconciliation reports, drawn on the server as inline SVG: no JavaScript, nothing fetched.

Geometry is computed in Decimal like everything else that starts from money, and written to one decimal place.
Every bar and point carries a <title>, so hovering shows its exact value; the tables beside each chart carry the
numbers too, for screen readers and for copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from pricing.display import usd_short

WIDTH = Decimal(760)
HEIGHT = Decimal(280)
LEFT, RIGHT, TOP, BOTTOM = Decimal(78), Decimal(12), Decimal(30), Decimal(46)
TICKS = 4
PALETTE = ("#417690", "#e0a030", "#6a9955", "#b04a4a")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[Decimal]


def _n(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP):f}"


def _nice_top(value: Decimal) -> Decimal:
    """A round number >= value for the top of the axis (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        top = step.scaleb(exponent)
        if top >= value:
            return top
    return Decimal(10).scaleb(exponent)


class _Frame:
    """The plot area and a value -> y mapping over [low, high], both including 0."""

    def __init__(self, series: Sequence[Series]) -> None:
        values = [v for s in series for v in s.values] or [Decimal(0)]
        high = max(max(values), Decimal(0))
        low = min(min(values), Decimal(0))
        span_top = _nice_top(high) if high > 0 else Decimal(0)
        span_bottom = -_nice_top(-low) if low < 0 else Decimal(0)
        if span_top == span_bottom:
            span_top = Decimal(1)
        self.high, self.low = span_top, span_bottom
        self.plot_width = WIDTH - LEFT - RIGHT
        self.plot_height = HEIGHT - TOP - BOTTOM

    def y(self, value: Decimal) -> Decimal:
        return TOP + (self.high - value) / (self.high - self.low) * self.plot_height

    def axis(self) -> list[str]:
        parts = []
        for index in range(TICKS + 1):
            value = self.low + (self.high - self.low) * index / TICKS
            y = _n(self.y(value))
            parts.append(
                f'<line class="grid" x1="{_n(LEFT)}" x2="{_n(WIDTH - RIGHT)}" y1="{y}" y2="{y}"/>'
                f'<text class="tick" x="{_n(LEFT - 6)}" y="{y}" text-anchor="end" dominant-baseline="middle">'
                f"{escape(usd_short(value))}</text>"
            )
        zero = _n(self.y(Decimal(0)))
        parts.append(f'<line class="zero" x1="{_n(LEFT)}" x2="{_n(WIDTH - RIGHT)}" y1="{zero}" y2="{zero}"/>')
        return parts


def _legend(series: Sequence[Series]) -> list[str]:
    parts = []
    x = LEFT
    for index, s in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        parts.append(
            f'<rect x="{_n(x)}" y="8" width="12" height="12" fill="{color}"/>'
            f'<text class="legend" x="{_n(x + 16)}" y="18">{escape(s.name)}</text>'
        )
        x += Decimal(24 + 8 * len(s.name))
    return parts


def _svg(title: str, body: list[str]) -> SafeString:
    style = (
        "<style>.grid{stroke:#ddd;stroke-width:1}.zero{stroke:#888;stroke-width:1}"
        ".tick,.label,.legend{font:11px sans-serif;fill:currentColor}.line{fill:none;stroke-width:2}</style>"
    )
    return format_html(
        '<svg class="recon-chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="100%" '
        'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}{}</svg>',
        title,
        _n(WIDTH),
        _n(HEIGHT),
        title,
        mark_safe(style),  # noqa: S308 - a constant
        mark_safe("".join(body)),  # noqa: S308 - every text in it went through escape()
    )


def _category_labels(categories: Sequence[str], step: Decimal) -> list[str]:
    parts = []
    every = max(1, len(categories) // 12)  # at most about twelve labels
    for index, name in enumerate(categories):
        if index % every:
            continue
        x = LEFT + step * index + step / 2
        label = name if len(name) <= 14 else name[:13] + "…"
        parts.append(
            f'<text class="label" x="{_n(x)}" y="{_n(HEIGHT - BOTTOM + 16)}" text-anchor="middle">{escape(label)}</text>'
        )
    return parts


def bar_chart(*, title: str, categories: Sequence[str], series: Sequence[Series]) -> SafeString:
    """Grouped vertical bars, one group per category, one bar per series; negative values hang below zero."""
    frame = _Frame(series)
    count = max(len(categories), 1)
    step = frame.plot_width / count
    bar = step * Decimal("0.8") / max(len(series), 1)
    body = frame.axis()
    zero = frame.y(Decimal(0))
    for s_index, s in enumerate(series):
        color = PALETTE[s_index % len(PALETTE)]
        for index, value in enumerate(s.values):
            x = LEFT + step * index + step * Decimal("0.1") + bar * s_index
            y = frame.y(value)
            top, height = (y, zero - y) if value >= 0 else (zero, y - zero)
            label = f"{categories[index] if index < len(categories) else ''}: {s.name} {usd_short(value)} ({value})"
            body.append(
                f'<rect x="{_n(x)}" y="{_n(top)}" width="{_n(bar)}" height="{_n(height)}" fill="{color}">'
                f"<title>{escape(label)}</title></rect>"
            )
    body += _category_labels(categories, step) + _legend(series)
    return _svg(title, body)


def line_chart(*, title: str, categories: Sequence[str], series: Sequence[Series]) -> SafeString:
    """One line per series across the categories, with a marked point per value."""
    frame = _Frame(series)
    count = max(len(categories), 1)
    step = frame.plot_width / count
    body = frame.axis()
    for s_index, s in enumerate(series):
        color = PALETTE[s_index % len(PALETTE)]
        points = [(LEFT + step * index + step / 2, frame.y(value)) for index, value in enumerate(s.values)]
        if len(points) > 1:
            path = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
            body.append(f'<polyline class="line" stroke="{color}" points="{path}"/>')
        for index, (x, y) in enumerate(points):
            label = f"{categories[index] if index < len(categories) else ''}: {s.name} {s.values[index]}"
            body.append(
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3.5" fill="{color}"><title>{escape(label)}</title></circle>'
            )
    body += _category_labels(categories, step) + _legend(series)
    return _svg(title, body)
