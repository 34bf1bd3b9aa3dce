"""Turning the price a reconciliation implies into a new catalog price version, through the catalog's own service."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from pricing.models import ModelPrice
from pricing.services import model_price_set
from reconciliation.matching import per_million
from reconciliation.models import ReconciliationLine
from reconciliation.selectors import catalog_model, catalog_price_in_force

Actor = AbstractBaseUser | AnonymousUser | None
REASON_LIMIT = 500


@dataclass(frozen=True)
class ImpliedPriceOutcome:
    created: list[ModelPrice]
    skipped: list[str]  # why a selected line made no version


def _weight(line: ReconciliationLine) -> int:
    return line.input_tokens + line.output_tokens


@transaction.atomic
def implied_price_apply(
    *, lines: Iterable[ReconciliationLine], actor: Actor = None, now: datetime | None = None
) -> ImpliedPriceOutcome:
    """For each catalog model among the lines, add a price version (from now) at the implied prices of its line
    with the most tokens, keeping the current price of each token type the line implies nothing for. The version's
    reason cites the run and the line, so the console shows where the price came from."""
    now = now or timezone.now()
    best: dict[str, ReconciliationLine] = {}
    skipped: list[str] = []
    for line in lines:
        if not line.has_implied_price or not line.model_id:
            skipped.append(f"{line.key}: no implied price")
            continue
        held = best.get(line.model_id)
        if held is None or _weight(line) > _weight(held):
            best[line.model_id] = line
    created: list[ModelPrice] = []
    for model_id, line in sorted(best.items()):
        model = catalog_model(model_id=model_id)
        current = catalog_price_in_force(model=model, at=now) if model is not None else None
        if model is None or current is None:
            skipped.append(f"{line.key}: {model_id} has no price in force to start from")
            continue
        values = {
            "input_per_million": line.implied_input_per_million or current.input_per_million,
            "cached_input_per_million": line.implied_cached_input_per_million or current.cached_input_per_million,
            "output_per_million": line.implied_output_per_million or current.output_per_million,
        }
        changes = ", ".join(
            f"{name.removesuffix('_per_million').replace('_', ' ')} {per_million(value)}"
            for name, value in values.items()
            if value is not None and getattr(line, f"implied_{name}") is not None
        )
        reason = f"reconciliation run #{line.run_id}, line {line.key}: implied {changes}"
        created.append(
            model_price_set(
                model=model,
                input_per_million=_plain(values["input_per_million"]),
                output_per_million=_plain(values["output_per_million"]),
                cached_input_per_million=_plain(values["cached_input_per_million"]),
                image_price=current.image_price,
                reason=reason[:REASON_LIMIT],
                actor=actor,
                now=now,
            )
        )
    return ImpliedPriceOutcome(created=created, skipped=skipped)


def _plain(value: Decimal | None) -> Decimal | None:
    """Implied prices carry 12 places; a price list is written with at most 6."""
    if value is None:
        return None
    return value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
