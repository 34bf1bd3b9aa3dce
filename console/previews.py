"""Change previews: what a model price, plan terms or feature cost change would have done to last period's usage.

Each preview re-rates the affected events of a window with the proposed version in place of the one they were
rated with, through the same rating function recording uses (pricing.rating.rate_usage), and compares the result
with what was recorded: per customer, the charge, provider cost and margin before and after. "Last period" is the
previous calendar month (UTC), the period every calendar-anchored account was last invoiced for.

Nothing is written; the proposed version never reaches the database or the catalog cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import QuerySet

from billing.models import Account, BillingPeriod
from console.figures import Figures
from pricing.catalog import CatalogSnapshot, FeatureCostVersion, ModelPriceVersion, PlanTermsVersion
from pricing.errors import PricingError
from pricing.rating import PlanCharge, UsageLine, plan_charge, rate_usage
from usage.events import DIMENSIONS, EVENT_FEATURES
from usage.models import UsageEvent

# Before every other version: the proposed one is the only one in force for the re-rated events.
ALWAYS = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} (UTC, end excluded)"


def last_period(*, now: datetime) -> Window:
    """The previous calendar month, UTC."""
    this_month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = this_month.year * 12 + this_month.month - 2
    return Window(this_month.replace(year=months // 12, month=months % 12 + 1), this_month)


@dataclass(frozen=True)
class CustomerImpact:
    account_id: int
    name: str
    before: Figures
    after: Figures
    plan_charge_before: Decimal | None = None  # plan-terms previews only: fee and overage on the period's units
    plan_charge_after: Decimal | None = None

    @property
    def charge_change(self) -> Decimal:
        return self.after.revenue - self.before.revenue

    @property
    def changed(self) -> bool:
        return (
            self.before.revenue != self.after.revenue
            or self.before.cost != self.after.cost
            or self.plan_charge_before != self.plan_charge_after
        )


@dataclass(frozen=True)
class ChangePreview:
    subject: str
    window: Window
    customers: list[CustomerImpact]
    unrated: list[str] = field(default_factory=list)  # events the proposed version cannot rate, with why

    @property
    def before(self) -> Figures:
        return sum((c.before for c in self.customers), Figures())

    @property
    def after(self) -> Figures:
        return sum((c.after for c in self.customers), Figures())

    @property
    def affected(self) -> int:
        """Customers whose charge, cost or plan charge would have been different."""
        return sum(1 for c in self.customers if c.changed)

    @property
    def events(self) -> int:
        return self.before.events


def usage_line(event: UsageEvent) -> UsageLine:
    """An event's counts as the rating function reads them (the inverse of what recording stored)."""
    return UsageLine(
        model=event.model_id,
        occurred_at=event.occurred_at,
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cached_input_tokens=event.cached_input_tokens,
        reasoning_tokens=event.reasoning_tokens,
        images=event.images,
        features=tuple(EVENT_FEATURES.use_of(item) for item in event.features or ()),
        multiplier=event.multiplier,
        **{name: getattr(event, name) for name in DIMENSIONS},
    )


Terms = Callable[[UsageEvent], PlanTermsVersion | None]


def _recorded_terms(snapshot: CatalogSnapshot) -> Terms:
    """The terms an event was rated with: those its period opened with."""

    def terms(event: UsageEvent) -> PlanTermsVersion | None:
        return snapshot.terms_by_id.get(event.period.terms_id)

    return terms


def _impacts(
    events: Iterable[UsageEvent], *, after: CatalogSnapshot, terms: Terms
) -> tuple[dict[int, tuple[Figures, Figures]], list[str]]:
    per_account: dict[int, tuple[Figures, Figures]] = {}
    unrated: list[str] = []
    for event in events:
        before = Figures(event.charge_usd, event.cost_usd, 1)
        try:
            rating = rate_usage(usage_line(event), after, tier=event.plan_code, terms=terms(event))
        except PricingError as exc:
            unrated.append(f"{event.request_id}: {exc}")
            now = before  # shown unchanged, and listed as not rated
        else:
            now = Figures(rating.charge_usd, rating.cost_usd, 1)
        was, will = per_account.get(event.account_id, (Figures(), Figures()))
        per_account[event.account_id] = (was + before, will + now)
    return per_account, unrated


def _preview(
    subject: str, window: Window, events: QuerySet[UsageEvent], *, after: CatalogSnapshot, terms: Terms
) -> ChangePreview:
    chosen = events.filter(occurred_at__gte=window.start, occurred_at__lt=window.end).select_related("period")
    per_account, unrated = _impacts(chosen.order_by("account_id", "occurred_at").iterator(), after=after, terms=terms)
    names = dict(Account.objects.filter(pk__in=list(per_account)).values_list("pk", "name"))
    customers = [CustomerImpact(pk, names.get(pk, f"#{pk}"), was, will) for pk, (was, will) in per_account.items()]
    customers.sort(key=lambda c: (-abs(c.charge_change), c.name))
    return ChangePreview(subject=subject, window=window, customers=customers, unrated=unrated)


def model_price_preview(
    *, snapshot: CatalogSnapshot, model_id: str, price: ModelPriceVersion, window: Window
) -> ChangePreview:
    """The model's events in the window re-rated at `price` (every other price as it was)."""
    entry = snapshot.models[model_id]
    proposed = dataclasses.replace(price, effective_from=ALWAYS)
    models = {**snapshot.models, model_id: dataclasses.replace(entry, prices=(proposed,))}
    after = dataclasses.replace(snapshot, models=models)
    events = UsageEvent.objects.filter(model_id=model_id)
    return _preview(f"the new price of {model_id}", window, events, after=after, terms=_recorded_terms(snapshot))


def feature_cost_preview(
    *, snapshot: CatalogSnapshot, feature_key: str, cost: FeatureCostVersion, window: Window
) -> ChangePreview:
    """The window's events that used the feature re-rated with `cost` for it."""
    entry = snapshot.features[feature_key]
    proposed = dataclasses.replace(cost, effective_from=ALWAYS)
    features = {**snapshot.features, feature_key: dataclasses.replace(entry, costs=(proposed,))}
    after = dataclasses.replace(snapshot, features=features)
    with_features = UsageEvent.objects.exclude(features=[])
    ids = [
        pk
        for pk, used in with_features.filter(occurred_at__gte=window.start, occurred_at__lt=window.end)
        .values_list("pk", "features")
        .iterator()
        if any(EVENT_FEATURES.use_of(item).key == feature_key for item in used or ())
    ]
    events = UsageEvent.objects.filter(pk__in=ids)
    return _preview(f"the new cost of {feature_key}", window, events, after=after, terms=_recorded_terms(snapshot))


def _plan_charges(
    *, plan_code: str, terms: PlanTermsVersion, window: Window, snapshot: CatalogSnapshot
) -> dict[int, tuple[PlanCharge, PlanCharge]]:
    """Per account, the plan charge of its period that started in the window: with its own terms and the new ones,
    on the units it used."""
    periods = BillingPeriod.objects.filter(plan__code=plan_code, start__gte=window.start, start__lt=window.end)
    charges = {}
    for period in periods:
        own = snapshot.terms_by_id.get(period.terms_id)
        if own is not None:
            charges[period.account_id] = (plan_charge(own, period.units_used), plan_charge(terms, period.units_used))
    return charges


def plan_terms_preview(
    *, snapshot: CatalogSnapshot, plan_code: str, terms: PlanTermsVersion, window: Window
) -> ChangePreview:
    """The plan's events in the window re-rated with the new terms (the markup moves the charge), and each account's
    plan charge (fee, overage, cap) for its period in the window with the new terms, on the units it used."""
    events = UsageEvent.objects.filter(plan_code=plan_code)
    preview = _preview(f"the new terms of {plan_code}", window, events, after=snapshot, terms=lambda event: terms)
    charges = _plan_charges(plan_code=plan_code, terms=terms, window=window, snapshot=snapshot)
    by_account = {c.account_id: c for c in preview.customers}
    names = dict(Account.objects.filter(pk__in=list(charges)).values_list("pk", "name"))
    for pk, (was, will) in charges.items():
        base = by_account.get(pk) or CustomerImpact(pk, names.get(pk, f"#{pk}"), Figures(), Figures())
        by_account[pk] = dataclasses.replace(
            base, plan_charge_before=was.total.amount, plan_charge_after=will.total.amount
        )
    customers = sorted(by_account.values(), key=lambda c: (-abs(c.charge_change), c.name))
    return dataclasses.replace(preview, customers=customers)
