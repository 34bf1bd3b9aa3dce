"""The console home's pricing cards: the catalog at a glance, computed from one catalog snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from pricing.catalog import CatalogSnapshot
from pricing.display import grouped, usd_price
from pricing.errors import NoPriceInForce
from pricing.money import CREDITS
from pricing.selectors import catalog_snapshot


@dataclass(frozen=True, slots=True)
class CheapestModel:
    model_id: str
    input_per_million: Decimal
    output_per_million: Decimal


@dataclass(frozen=True, slots=True)
class CatalogSummary:
    """The console home's numbers: what is on sale now and at what rates."""

    active_models: int
    total_models: int
    billable_features: int
    active_features: int
    rates: tuple[tuple[str, Decimal], ...]
    cheapest: CheapestModel | None
    show_provider_prices: bool


def catalog_summary(*, at: datetime | None = None, snapshot: CatalogSnapshot | None = None) -> CatalogSummary:
    """Counts of active models and billable features, the USD rates in force, and the active model with the lowest
    input + output price per 1M tokens (image-only models, with no token price, are left out)."""
    at = at or timezone.now()
    snapshot = snapshot or catalog_snapshot()
    active = [m for m in snapshot.models.values() if m.is_active]
    priced: list[CheapestModel] = []
    for model in active:
        try:
            price = model.price_at(at)
        except NoPriceInForce:
            continue
        if price.input_per_million or price.output_per_million:
            priced.append(CheapestModel(model.model_id, price.input_per_million, price.output_per_million))
    cheapest = min(priced, key=lambda c: (c.input_per_million + c.output_per_million, c.model_id), default=None)
    features = [f for f in snapshot.features.values() if f.is_active]
    billable = 0
    for feature in features:
        try:
            billable += feature.cost_at(at).is_billable
        except NoPriceInForce:
            continue
    rates = []
    for currency in sorted(snapshot.rates):
        try:
            rates.append((currency, snapshot.rate_at(currency, at).rate))
        except NoPriceInForce:
            continue
    return CatalogSummary(
        active_models=len(active),
        total_models=len(snapshot.models),
        billable_features=billable,
        active_features=len(features),
        rates=tuple(rates),
        cheapest=cheapest,
        show_provider_prices=settings.PRICING_SHOW_PROVIDER_PRICES,
    )


@dataclass(frozen=True, slots=True)
class Card:
    """A summary card on the console home: a figure, lines under it, a link to the list behind it."""

    title: str
    figure: str
    lines: tuple[str, ...] = ()
    url_name: str = ""
    query: str = ""
    note: str = ""
    wide: bool = False


def summary_cards(summary: CatalogSummary) -> tuple[Card, ...]:
    rates = [(code.lower() if code == CREDITS else code, grouped(rate)) for code, rate in summary.rates]
    rates.sort(key=lambda r: r[0] != "credits")  # credits first: what a top-up buys
    rates_card = Card(
        "Rates per 1 USD",
        f"{rates[0][1]} {rates[0][0]}" if rates else "none",
        tuple(f"{rate} {code}" for code, rate in rates[1:]) if rates else ("no rate in force",),
        "admin:pricing_exchangerate_changelist",
    )
    cheapest = Card("Cheapest model per 1M tokens", "none", ("no active model has a token price",))
    if summary.cheapest is not None:
        c = summary.cheapest
        cheapest = Card(
            "Cheapest model per 1M tokens",
            c.model_id,
            (f"{usd_price(c.input_per_million)} in, {usd_price(c.output_per_million)} out",),
            "admin:pricing_aimodel_changelist",
            f"q={c.model_id}",
        )
    shown = summary.show_provider_prices
    return (
        Card(
            "Active models",
            str(summary.active_models),
            (f"of {summary.total_models} in the catalog",),
            "admin:pricing_aimodel_changelist",
            "is_active__exact=1",
        ),
        Card(
            "Billable features",
            str(summary.billable_features),
            (f"of {summary.active_features} active features",),
            "admin:pricing_feature_changelist",
        ),
        rates_card,
        cheapest,
        Card(
            "Accounts see",
            "Provider prices" if shown else "Credits only",
            ("USD per 1M tokens and their price in credits",) if shown else ("their own price in credits only",),
            note=f"PRICING_SHOW_PROVIDER_PRICES = {shown}",
            wide=True,
        ),
    )
