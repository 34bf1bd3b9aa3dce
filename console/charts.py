"""The console's charts, drawn on the server as SVG by the charting modules the apps already have: revenue, cost
and margin side by side per day (reconciliation.charts, which draws negative bars below zero), and one bar per
model, plan or customer (usage.dashboard.charts)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.safestring import SafeString

from console.figures import Group
from pricing.display import usd_short
from reconciliation.charts import Series, bar_chart
from usage.dashboard.charts import ChartPoint, bar_list_chart


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


def revenue_bars(groups: Sequence[Group], *, title: str, limit: int = 8) -> SafeString:
    """One bar per group (highest revenue first), the margin in each bar's tooltip."""
    points = [
        ChartPoint(
            label=group.label,
            value=group.figures.revenue,
            detail=f"revenue {usd_short(group.figures.revenue)}, margin {usd_short(group.figures.margin)}",
        )
        for group in groups[:limit]
    ]
    return bar_list_chart(points, title=title, description=f"{title}: revenue per bar", value_label=usd_short)
