"""The exchange-rate impact preview: what a top-up and a reference request cost before and after a new rate."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pricing.catalog import CatalogSnapshot, RateVersion
from pricing.display import grouped, money_text, plain
from pricing.errors import PricingError
from pricing.money import CREDITS, Money
from pricing.rating import UsageLine, rate_usage, usd_to

# The request the rate preview prices: a typical short chat turn on a cheap, popular model.
PREVIEW_MODEL_ID = "gpt-4o-mini"
PREVIEW_INPUT_TOKENS = 1_000
PREVIEW_OUTPUT_TOKENS = 500
# Always shown in the preview, whichever rate changes: what a person buys (credits) and the home currency.
PREVIEW_CURRENCIES = (CREDITS, "ZAR")
# Places shown for the preview request, whose amounts are fractions of a cent.
REQUEST_PLACES = Decimal("0.000001")


def request_money_text(amount: Money) -> str:
    """A per-request amount (fractions of a cent) to six places, without padding: 4.5, 0.008325."""
    return grouped(amount.amount.quantize(REQUEST_PLACES))


@dataclass(frozen=True, slots=True)
class ImpactCell:
    before: str
    after: str
    changed: bool


@dataclass(frozen=True, slots=True)
class ImpactLine:
    label: str
    cells: tuple[ImpactCell, ...]


@dataclass(frozen=True, slots=True)
class RateImpact:
    """What the top-up packs and a reference request come to in each shown currency, before and after a change."""

    currency: str
    rate_before: Decimal | None
    rate_after: Decimal
    currencies: tuple[str, ...]
    lines: tuple[ImpactLine, ...]
    request_note: str

    @property
    def change_text(self) -> str:
        after = f"{grouped(self.rate_after)} {self.currency} per USD"
        if self.rate_before is None:
            return f"new rate: {after} (no rate in force before)"
        pct = (self.rate_after - self.rate_before) / self.rate_before * 100
        return f"{grouped(self.rate_before)} → {after} ({pct:+.2f}%)"


def snapshot_with_rate(snapshot: CatalogSnapshot, *, currency: str, rate: Decimal, at: datetime) -> CatalogSnapshot:
    """The snapshot as it would be with `rate` in force for `currency` from `at` (versions after `at` dropped)."""
    kept = tuple(v for v in snapshot.rates.get(currency, ()) if v.effective_from <= at)
    proposed = RateVersion(id=0, effective_from=at, rate=rate)
    return dataclasses.replace(snapshot, rates={**snapshot.rates, currency: (*kept, proposed)})


def _convert(amount_usd: Decimal, currency: str, snapshot: CatalogSnapshot, at: datetime) -> Money | None:
    try:
        return usd_to(amount_usd, currency, snapshot, at)
    except PricingError:  # no rate in force for that currency
        return None


def _request_usd(snapshot: CatalogSnapshot, model_id: str, at: datetime) -> Decimal:
    """The list price (markup 1) of the preview request; raises PricingError when the model cannot be rated."""
    model = snapshot.active_model(model_id)
    tier = min(model.allowed_tiers, default="")
    line = UsageLine(
        model=model_id, occurred_at=at, input_tokens=PREVIEW_INPUT_TOKENS, output_tokens=PREVIEW_OUTPUT_TOKENS
    )
    return rate_usage(line, snapshot, tier=tier).charge_usd


def rate_change_impact(
    snapshot: CatalogSnapshot,
    *,
    currency: str,
    new_rate: Decimal,
    at: datetime,
    packs_usd: Sequence[Decimal],
    model_id: str = PREVIEW_MODEL_ID,
) -> RateImpact:
    """Before (the rates in force at `at`) and after (`new_rate` for `currency`) for each top-up pack and for a
    1,000-in / 500-out request on `model_id` at list price. Pure: reads only the snapshot."""
    after_snapshot = snapshot_with_rate(snapshot, currency=currency, rate=new_rate, at=at)
    currencies = PREVIEW_CURRENCIES + ((currency,) if currency not in PREVIEW_CURRENCIES else ())
    try:
        rate_before: Decimal | None = snapshot.rate_at(currency, at).rate
    except PricingError:
        rate_before = None

    def line(label: str, usd: Decimal, *, per_request: bool = False) -> ImpactLine:
        show = request_money_text if per_request else money_text
        cells = []
        for code in currencies:
            before = _convert(usd, code, snapshot, at)
            after = _convert(usd, code, after_snapshot, at)
            cells.append(
                ImpactCell(
                    before=show(before) if before is not None else "no rate",
                    after=show(after) if after is not None else "no rate",
                    changed=before != after,
                )
            )
        return ImpactLine(label=label, cells=tuple(cells))

    lines = [line(f"${grouped(pack)} top-up", pack) for pack in packs_usd]
    try:
        usd = _request_usd(snapshot, model_id, at)
    except PricingError as exc:
        note = f"The reference request is not shown: {exc}."
    else:
        label = f"{PREVIEW_INPUT_TOKENS:,} in / {PREVIEW_OUTPUT_TOKENS:,} out on {model_id} (${plain(usd)})"
        lines.append(line(label, usd, per_request=True))
        note = f"The request is priced at {model_id}'s list price (markup 1); a plan's markup scales it."
    return RateImpact(
        currency=currency,
        rate_before=rate_before,
        rate_after=new_rate,
        currencies=currencies,
        lines=tuple(lines),
        request_note=note,
    )
