"""Explaining a charge: from an event, or from an invoice down to its events, the price versions and the rates that
made it. Reads only; every lookup is scoped to the account asked about.

The price version is found with pricing's own lookup (the effective-dated catalog at the event's time), the same one
rating used, and set beside the version id the event recorded when it was rated, so a difference would show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Min, Sum

from billing.models import Account, Invoice
from pricing.catalog import ModelPriceVersion, PlanTermsVersion, RateVersion
from pricing.dimensions import DIMENSIONS
from pricing.errors import PricingError
from pricing.models import ModelPrice
from pricing.money import CREDITS, precise
from pricing.selectors import catalog_snapshot, plan_terms_version
from usage.models import UsageEvent

# the rating breakdown's keys, with the price field and the event's count each one is
BREAKDOWN_PARTS: tuple[tuple[str, str, str], ...] = (
    ("input", "input_per_million", "uncached input tokens"),
    ("cached_input", "cached_input_per_million", "cached input tokens"),
    ("cache_write", "cache_write_per_million", "5-minute cache writes"),
    ("cache_write_1h", "cache_write_1h_per_million", "1-hour cache writes"),
    ("image_input", "image_input_per_million", "image input tokens"),
    ("audio_input", "audio_input_per_million", "audio input tokens"),
    ("output", "output_per_million", "output tokens"),
    ("reasoning", "reasoning_per_million", "reasoning tokens"),
    ("image_output", "image_output_per_million", "image output tokens"),
    ("audio_output", "audio_output_per_million", "audio output tokens"),
    ("images", "image_price", "images"),
    ("seconds", "price_per_second", "seconds"),
    ("characters", "price_per_character", "characters"),
    ("requests", "price_per_request", "requests"),
)


@dataclass(frozen=True)
class PriceRate:
    name: str  # the price field, as in the catalog
    unit: str
    amount: Decimal


@dataclass(frozen=True)
class CostPart:
    label: str
    amount_usd: Decimal  # the provider cost of this part, as rating computed it


@dataclass(frozen=True)
class VersionFound:
    """A model's price version in force at a time, through pricing's lookup, with who set it and why."""

    model_id: str
    at: datetime
    version: ModelPriceVersion | None
    effective_from: datetime | None
    reason: str
    rates: list[PriceRate]


@dataclass(frozen=True)
class EventExplanation:
    event: UsageEvent
    price: VersionFound
    recorded_version_id: int | None
    parts: list[CostPart]
    terms: PlanTermsVersion
    credits_rate: RateVersion | None

    @property
    def version_matches(self) -> bool:
        return self.price.version is not None and self.price.version.id == self.recorded_version_id

    @property
    def charge_before_markup(self) -> Decimal:
        return precise(self.event.charge_usd / self.terms.markup) if self.terms.markup else self.event.charge_usd


def price_version_found(*, model_id: str, at: datetime) -> VersionFound:
    """The version in force for `model_id` at `at`, by the catalog snapshot's lookup (None when none was)."""
    try:
        version: ModelPriceVersion | None = catalog_snapshot().find_model(model_id).price_at(at)
    except PricingError:
        version = None
    if version is None:
        return VersionFound(model_id=model_id, at=at, version=None, effective_from=None, reason="", rates=[])
    stored = ModelPrice.objects.filter(pk=version.id).only("reason", "effective_from").first()
    rates = [
        PriceRate(name=d.price_field, unit=d.unit, amount=amount)
        for d in DIMENSIONS
        if (amount := version.base.get(d.price_field)) is not None and (amount or d.price_field == "input_per_million")
    ]
    if version.image_price:
        rates.append(PriceRate(name="image_price", unit="USD per image", amount=version.image_price))
    return VersionFound(
        model_id=model_id, at=at, version=version, effective_from=version.effective_from,
        reason=stored.reason if stored else "", rates=rates,
    )  # fmt: skip


def event_explanation(*, account: Account, event_id: int) -> EventExplanation | None:
    """Why an event of this account cost what it did; None when the id is not one of the account's events."""
    event = UsageEvent.objects.select_related("period__terms__plan").filter(account_id=account.pk, pk=event_id).first()
    if event is None:
        return None
    labels = {key: label for key, _, label in BREAKDOWN_PARTS}
    parts = [
        CostPart(label=labels.get(key, key.replace("feature:", "feature ")), amount_usd=Decimal(str(amount)))
        for key, amount in (event.breakdown or {}).items()
        if Decimal(str(amount))
    ]
    try:
        credits_rate: RateVersion | None = catalog_snapshot().rate_at(CREDITS, event.occurred_at)
    except PricingError:
        credits_rate = None
    return EventExplanation(
        event=event,
        price=price_version_found(model_id=event.model_id, at=event.occurred_at),
        recorded_version_id=event.price_version_id,
        parts=parts,
        terms=plan_terms_version(event.period.terms),
        credits_rate=credits_rate,
    )


@dataclass(frozen=True)
class VersionGroup:
    """The invoice's events rated with one model's price version."""

    model_id: str
    price_version_id: int | None
    events: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    charge_usd: Decimal
    credits: Decimal
    first_event_id: int
    price: VersionFound


@dataclass(frozen=True)
class InvoiceExplanation:
    invoice: Invoice
    groups: list[VersionGroup]
    terms: PlanTermsVersion

    @property
    def events_charge_usd(self) -> Decimal:
        return sum((g.charge_usd for g in self.groups), Decimal(0))


def invoice_explanation(*, account: Account, invoice_id: int) -> InvoiceExplanation | None:
    """An invoice of this account, its usage line split by model and price version (None when not the account's)."""
    invoice = Invoice.objects.select_related("period__terms__plan").filter(account_id=account.pk, pk=invoice_id).first()
    if invoice is None:
        return None
    rows = (
        UsageEvent.objects.filter(account_id=account.pk, period_id=invoice.period_id)
        .values("model_id", "price_version_id")
        .annotate(
            n=Count("id"), tokens_in=Sum("input_tokens"), tokens_out=Sum("output_tokens"), cost=Sum("cost_usd"),
            charge=Sum("charge_usd"), credit_sum=Sum("credits"), first=Min("id"), at=Min("occurred_at"),
        )
        .order_by("model_id", "price_version_id")
    )  # fmt: skip
    groups = [_version_group(row) for row in rows]
    return InvoiceExplanation(invoice=invoice, groups=groups, terms=plan_terms_version(invoice.period.terms))


def _version_group(row: Mapping[str, Any]) -> VersionGroup:
    return VersionGroup(
        model_id=row["model_id"], price_version_id=row["price_version_id"], events=row["n"],
        input_tokens=row["tokens_in"] or 0, output_tokens=row["tokens_out"] or 0,
        cost_usd=_decimal(row["cost"]), charge_usd=_decimal(row["charge"]), credits=_decimal(row["credit_sum"]),
        first_event_id=row["first"], price=price_version_found(model_id=row["model_id"], at=row["at"]),
    )  # fmt: skip


def _decimal(value: object) -> Decimal:
    """A sum at the stored precision (SQLite sums decimals as floating point; this rounds that away)."""
    return precise(Decimal(str(value))) if value is not None else Decimal(0)
