"""Revenue, provider cost and margin of a set of usage events: the three figures every console table shows.

Revenue is what customers were charged (`UsageEvent.charge_usd`, the plan's markup included); provider cost is
what the provider charges us for the same calls (`UsageEvent.cost_usd`, rated at list price); margin is their
difference. Amounts stay unrounded Decimal here: a template rounds each shown figure once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from usage.models import UsageEvent

ZERO = Decimal(0)
HUNDRED = Decimal(100)
PERCENT_PLACES = Decimal("0.1")
_ZERO_SUM = Value(ZERO, output_field=DecimalField(max_digits=28, decimal_places=12))


@dataclass(frozen=True)
class Figures:
    """Revenue, cost and margin of some events, in USD, unrounded."""

    revenue: Decimal = ZERO
    cost: Decimal = ZERO
    events: int = 0

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def margin_pct(self) -> Decimal | None:
        """Margin as a share of revenue, to one decimal; None without revenue (a share of nothing means nothing)."""
        if self.revenue <= 0:
            return None
        return (self.margin * HUNDRED / self.revenue).quantize(PERCENT_PLACES)

    @property
    def negative(self) -> bool:
        return self.margin < 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.revenue + other.revenue, self.cost + other.cost, self.events + other.events)


def _sums() -> dict[str, Any]:
    return {
        "revenue": Coalesce(Sum("charge_usd"), _ZERO_SUM),
        "cost": Coalesce(Sum("cost_usd"), _ZERO_SUM),
        "events": Count("pk"),
    }


def _figures(row: Mapping[str, Any]) -> Figures:
    return Figures(revenue=Decimal(row["revenue"]), cost=Decimal(row["cost"]), events=int(row["events"]))


def figures_of(events: QuerySet[UsageEvent]) -> Figures:
    """The figures of every event in `events`, in one aggregate query."""
    return _figures(events.order_by().aggregate(**_sums()))


@dataclass(frozen=True)
class Group:
    """The figures of the events sharing one key (a day, a model, a plan, an account)."""

    key: Any
    label: str
    figures: Figures


def figures_by(events: QuerySet[UsageEvent], *, key: str) -> dict[Any, Figures]:
    """The figures of `events` grouped by `key` (a field or an annotation), in one query."""
    rows = events.order_by().values(key).annotate(**_sums())
    return {row[key]: _figures(row) for row in rows}


def groups_by_revenue(figures: Mapping[Any, Figures], labels: Mapping[Any, str] | None = None) -> list[Group]:
    """Groups, highest revenue first (ties by label), labelled from `labels` or the key itself."""
    groups = [Group(key, (labels or {}).get(key, str(key)), fig) for key, fig in figures.items()]
    return sorted(groups, key=lambda group: (-group.figures.revenue, group.label))
