"""Prices for the refused events an admin is about to replay: a model added (or first priced) after its events were
refused gets a price that starts now, so replaying them fails again with `no_price_in_force`, since each event is
rated at its own time. Here the waiting events are found per model, and the model's first price can be started at the
oldest of them: a back-dated price version with the same prices and its reason recorded (pricing's rule for a version
that starts in the past), after which the replay rates them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.services.audit import Actor
from pricing import services as pricing_services
from pricing.dimensions import OVERRIDABLE_PRICE_FIELDS, STRUCTURED_PRICE_FIELDS
from pricing.errors import UnknownModel
from pricing.models import AIModel, ModelPrice
from pricing.selectors import catalog_snapshot
from usage.models import RejectedEvent

# refusals a model or a price added to the catalog can cure
CURABLE_CODES = ("unknown_model", "no_price_in_force")


@dataclass(frozen=True)
class WaitingForPrice:
    """Refused events that wait for one model, and whether its prices start after the oldest of them."""

    model: AIModel
    events: int
    oldest: datetime
    first_price_from: datetime | None

    @property
    def price_starts_too_late(self) -> bool:
        return self.first_price_from is not None and self.first_price_from > self.oldest


def _occurred_at(row: RejectedEvent) -> datetime:
    """When the refused event happened: its own `occurred_at` when it gave a readable one, else its receipt."""
    payload: Any = row.payload
    raw = payload.get("occurred_at") if isinstance(payload, dict) else None
    parsed = parse_datetime(raw) if isinstance(raw, str) else None
    return parsed if parsed is not None and parsed.tzinfo is not None else row.received_at


def _model_name(row: RejectedEvent) -> str:
    payload: Any = row.payload
    name = payload.get("model") if isinstance(payload, dict) else None
    return name if isinstance(name, str) else ""


def rejected_events_waiting_for_prices() -> list[WaitingForPrice]:
    """Per catalog model, the pending refused events (unknown model, no price in force) that name it."""
    snapshot = catalog_snapshot()
    oldest: dict[str, datetime] = {}
    counts: dict[str, int] = {}
    pending = RejectedEvent.objects.filter(status=RejectedEvent.Status.PENDING, error_code__in=CURABLE_CODES)
    for row in pending.only("payload", "received_at").iterator(chunk_size=2000):
        try:
            model_id = snapshot.find_model(_model_name(row)).model_id
        except UnknownModel:
            continue  # still not in the catalog: nothing to offer yet
        at = _occurred_at(row)
        counts[model_id] = counts.get(model_id, 0) + 1
        oldest[model_id] = min(at, oldest.get(model_id, at))
    models = AIModel.objects.in_bulk(list(counts), field_name="model_id")
    waiting = []
    for model_id in sorted(counts):
        first = ModelPrice.objects.filter(model=models[model_id]).order_by("effective_from").first()
        waiting.append(
            WaitingForPrice(
                model=models[model_id],
                events=counts[model_id],
                oldest=oldest[model_id],
                first_price_from=first.effective_from if first else None,
            )
        )
    return waiting


@transaction.atomic
def model_price_start_at_oldest_waiting(
    *, model: AIModel, actor: Actor = None, now: datetime | None = None
) -> ModelPrice | None:
    """Start the model's prices at its oldest waiting refused event: a back-dated copy of its first price version.

    None when nothing waits for the model, or its prices already cover the oldest waiting event (running it twice
    adds one version)."""
    now = now or timezone.now()
    found = next((w for w in rejected_events_waiting_for_prices() if w.model.pk == model.pk), None)
    if found is None or not found.price_starts_too_late:
        return None
    first = ModelPrice.objects.filter(model=model).order_by("effective_from").first()
    assert first is not None  # price_starts_too_late means there is one
    prices = {name: getattr(first, name) for name in (*OVERRIDABLE_PRICE_FIELDS, *STRUCTURED_PRICE_FIELDS)}
    reason = (
        f"back-dated to the oldest of {found.events} refused event{'s' if found.events != 1 else ''} waiting for "
        f"{model.model_id} ({found.oldest.isoformat()}), so their replay rates them at the prices of "
        f"{first.effective_from.date().isoformat()}"
    )
    return pricing_services.model_price_set(
        model=model, **prices, effective_from=found.oldest, reason=reason, actor=actor, now=now
    )


def model_prices_start_for_rejected(
    *, rejected: Iterable[RejectedEvent], actor: Actor = None, now: datetime | None = None
) -> list[ModelPrice]:
    """For the models these refused events name: start each one's prices at its oldest waiting event (see above);
    the versions added."""
    snapshot = catalog_snapshot()
    model_ids = set()
    for row in rejected:
        try:
            model_ids.add(snapshot.find_model(_model_name(row)).model_id)
        except UnknownModel:
            continue
    added = []
    for model in AIModel.objects.filter(model_id__in=model_ids).order_by("model_id"):
        version = model_price_start_at_oldest_waiting(model=model, actor=actor, now=now)
        if version is not None:
            added.append(version)
    return added
