"""Which version of a price, cost, rate or terms is in force, scheduled or superseded at a time, and the
catalog rows with the versions in force prefetched."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from pricing.display import plain
from pricing.models import AIModel, ExchangeRate, Feature, FeatureCost, ModelPrice, OperationLimit, Plan, PlanTerms

IN_FORCE, SCHEDULED, SUPERSEDED = "in force", "scheduled", "superseded"


def when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else ""


class _Dated(Protocol):
    @property
    def effective_from(self) -> datetime: ...


D = TypeVar("D", bound=_Dated)


def versions_with_status(versions: Iterable[D], at: datetime) -> list[tuple[D, str]]:
    """Each version (newest first) with whether it is in force at `at`, scheduled after it, or superseded."""
    result: list[tuple[D, str]] = []
    found = False
    for version in sorted(versions, key=lambda v: v.effective_from, reverse=True):
        if version.effective_from > at:
            status = SCHEDULED
        elif not found:
            status, found = IN_FORCE, True
        else:
            status = SUPERSEDED
        result.append((version, status))
    return result


def models_with_prices(*, at: datetime) -> QuerySet[AIModel]:
    """Models with `prices_in_force` (newest first, so [0] is the current one) and their aliases: three queries."""
    prices = ModelPrice.objects.filter(effective_from__lte=at).order_by("-effective_from")
    return AIModel.objects.prefetch_related(Prefetch("prices", queryset=prices, to_attr="prices_in_force"), "aliases")


def features_with_costs(*, at: datetime) -> QuerySet[Feature]:
    costs = FeatureCost.objects.filter(effective_from__lte=at).order_by("-effective_from")
    return Feature.objects.prefetch_related(
        Prefetch("costs", queryset=costs.prefetch_related("tier_multipliers"), to_attr="costs_in_force")
    )


def plans_with_terms(*, at: datetime) -> QuerySet[Plan]:
    terms = PlanTerms.objects.filter(effective_from__lte=at).order_by("-effective_from")
    return Plan.objects.prefetch_related(Prefetch("terms", queryset=terms, to_attr="terms_in_force"))


def exchange_rates_with_status(*, at: datetime) -> QuerySet[ExchangeRate]:
    """Every rate version, annotated `superseded` when a later version of its currency is in force at `at`."""
    later = ExchangeRate.objects.filter(
        currency=OuterRef("currency"), effective_from__gt=OuterRef("effective_from"), effective_from__lte=at
    )
    return ExchangeRate.objects.select_related("set_by").annotate(superseded=Exists(later))


def rate_status(rate: ExchangeRate, at: datetime) -> str:
    if rate.effective_from > at:
        return SCHEDULED
    return SUPERSEDED if getattr(rate, "superseded", False) else IN_FORCE


def first_or_none(versions: Sequence[D] | None) -> D | None:
    return versions[0] if versions else None


def tier_multipliers_text(multipliers: dict[str, Decimal]) -> str:
    return ", ".join(f"{tier} x{plain(m)}" for tier, m in sorted(multipliers.items()))


def plan_codes() -> list[str]:
    return list(Plan.objects.values_list("code", flat=True))


def operation_limit_exists(*, plan: Plan | None, operation_type: str) -> bool:
    return OperationLimit.objects.filter(plan=plan, operation_type=operation_type).exists()
