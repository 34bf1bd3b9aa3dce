"""The console's charts, drawn on the server as SVG by reconciliation.charts (grouped bars; a negative margin hangs
below zero, each bar's tooltip gives its exact amount): revenue, cost and margin per day or month, and revenue
beside margin per model, plan or customer."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.safestring import SafeString

from console.figures import Group
from reconciliation.charts import Series, bar_chart

TOP_BARS = 8


def figures_chart(groups: Sequence[Group], *, title: str) -> SafeString:
    """Revenue, provider cost and margin per group (a day or a month), in that order."""
    return bar_chart(
        title=title,
        categories=[group.label for group in groups],
        series=[
            Series("revenue", [group.figures.revenue for group in groups]),
            Series("provider cost", [group.figures.cost for group in groups]),
            Series("margin", [group.figures.margin for group in groups]),
        ],
    )


def revenue_chart(groups: Sequence[Group], *, title: str) -> SafeString:
    """Revenue and margin of the first groups (the highest revenue: callers pass them sorted)."""
    shown = groups[:TOP_BARS]
    return bar_chart(
        title=title,
        categories=[group.label for group in shown],
        series=[
            Series("revenue", [group.figures.revenue for group in shown]),
            Series("margin", [group.figures.margin for group in shown]),
        ],
    )
