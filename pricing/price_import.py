"""Model prices that come in whole: the staff API's model upsert and the LiteLLM price import.

Both create a model when the catalog lacks it and add price versions through pricing.services, so every write is
validated, versioned, audited and refreshes the cached catalog on commit; nothing is edited in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from pricing import services
from pricing.dimensions import OVERRIDABLE_PRICE_FIELDS, STRUCTURED_PRICE_FIELDS
from pricing.errors import CatalogValidationError
from pricing.litellm_import import ImportedPrice, ImportProblem, PriceMap
from pricing.models import AIModel, ModelAlias, ModelPrice
from pricing.selectors import model_alias_owner, model_by_id, model_price_in_force
from pricing.services import Actor

PRICE_FIELDS = (*OVERRIDABLE_PRICE_FIELDS, *STRUCTURED_PRICE_FIELDS)
_PRICE_DEFAULTS: dict[str, object] = {
    **{name: None for name in OVERRIDABLE_PRICE_FIELDS},
    "input_per_million": Decimal(0),
    "output_per_million": Decimal(0),
    "image_price": Decimal(0),
    "image_prices": {},
    "tiers": [],
    "service_tiers": {},
    "off_peak": [],
}
# services.model_price_set's own rule: a version starting more than this before now is back-dated
BACKDATE_TOLERANCE = timedelta(seconds=60)


def _refuse(fields: dict[str, str]) -> None:
    if fields:
        name, message = next(iter(fields.items()))
        raise CatalogValidationError(f"{name}: {message}", fields=fields)


def _model_id_problem(model_id: str) -> str | None:
    if not model_id or len(model_id) > 200:
        return "must be 1 to 200 characters"
    if any(c.isspace() or not c.isprintable() for c in model_id):
        return "must not contain spaces or control characters"
    if model_id.startswith("/") or model_id.endswith("/") or "//" in model_id:
        return "must not start or end with '/' or contain '//'"
    return None


@dataclass(frozen=True)
class ModelUpsert:
    model: AIModel
    created: bool
    price_version: ModelPrice | None


@transaction.atomic
def model_upsert(
    *,
    model_id: str,
    display_name: str | None = None,
    provider: str | None = None,
    allowed_tiers: list[str] | None = None,
    prices: Mapping[str, object] | None = None,
    effective_from: datetime | None = None,
    reason: str = "",
    actor: Actor = None,
    now: datetime | None = None,
    limits: Mapping[str, Any] | None = None,
) -> ModelUpsert:
    """Create the model if missing (a provider is then required), change the descriptive fields given, and add a
    price version when any price is given; prices not given keep their value in force at `effective_from`.
    `limits` may set `mode`, `max_input_tokens` and `max_output_tokens`."""
    now = now or timezone.now()
    fields: dict[str, str] = {}
    problem = _model_id_problem(model_id)
    if problem:
        fields["model_id"] = problem
    if effective_from is not None and timezone.is_naive(effective_from):
        fields["effective_from"] = "must carry a time zone"
    unknown = sorted(set(prices or {}) - set(PRICE_FIELDS))
    fields.update({name: "not a model price" for name in unknown})
    _refuse(fields)

    model = model_by_id(model_id=model_id)
    created = model is None
    if model is None:
        owner = model_alias_owner(alias=model_id)
        if owner is not None:
            fields["model_id"] = f"is an alias of {owner}; use that model's id"
        if not (provider or "").strip():
            fields["provider"] = "required to create a model"
        _refuse(fields)
        model = services.model_create(
            model_id=model_id,
            display_name=display_name or model_id,
            provider=(provider or "").strip(),
            allowed_tiers=allowed_tiers,
            actor=actor,
            **(limits or {}),
        )
    elif display_name is not None or provider is not None or allowed_tiers is not None or limits:
        model = services.model_update(
            model=model, display_name=display_name, provider=provider, allowed_tiers=allowed_tiers, actor=actor,
            **(limits or {}),
        )  # fmt: skip

    version = None
    if prices:
        current = model_price_in_force(model=model, at=effective_from or now)
        values: dict[str, object] = {
            name: (getattr(current, name) if current is not None else default)
            for name, default in _PRICE_DEFAULTS.items()
        }
        values.update(prices)
        version = services.model_price_set(
            model=model, **values, effective_from=effective_from, reason=reason, actor=actor, now=now
        )
    return ModelUpsert(model=model, created=created, price_version=version)


@dataclass
class PriceImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.problems)


def _same_price(version: ModelPrice, price: ImportedPrice) -> bool:
    def cached(value: Decimal | None, uncached: Decimal) -> Decimal:
        return uncached if value is None else value

    return (
        version.input_per_million == price.input_per_million
        and version.output_per_million == price.output_per_million
        and version.image_price == price.image_price
        and cached(version.cached_input_per_million, version.input_per_million)
        == cached(price.cached_input_per_million, price.input_per_million)
    )


@transaction.atomic
def litellm_prices_import(
    *,
    price_map: PriceMap,
    effective_from: datetime | None = None,
    reason: str,
    actor: Actor = None,
    now: datetime | None = None,
) -> PriceImportResult:
    """Bring a LiteLLM price map into the catalog: create the models it lacks and add a price version only where a
    price differs from the version in force at `effective_from` (default now).

    Entries match catalog models by model_id or alias; when several name one model, the one named by its model_id
    (else the first) is used and the others are reported. An entry the catalog refuses is reported, not fatal.
    """
    now = now or timezone.now()
    start = effective_from or now
    if timezone.is_naive(start):
        raise CatalogValidationError(
            "effective_from: must carry a time zone", fields={"effective_from": "must carry a time zone"}
        )
    if start < now - BACKDATE_TOLERANCE and not reason.strip():
        raise CatalogValidationError(
            "reason: a version that starts in the past needs a reason",
            fields={"reason": "a version that starts in the past needs a reason"},
        )
    result = PriceImportResult(problems=list(price_map.problems))

    models = {m.model_id: m for m in AIModel.objects.all()}
    aliases = dict(ModelAlias.objects.values_list("alias", "model__model_id"))
    in_force: dict[int, ModelPrice] = {}
    for version in ModelPrice.objects.filter(effective_from__lte=start).order_by("effective_from", "id"):
        in_force[version.model_id] = version  # ascending, so the last one seen is the one in force

    chosen: dict[str, ImportedPrice] = {}
    for price in price_map.prices:
        target = price.name if price.name in models else aliases.get(price.name, price.name)
        previous = chosen.get(target)
        if previous is None:
            chosen[target] = price
            continue
        keep, drop = (price, previous) if price.name == target else (previous, price)
        chosen[target] = keep
        result.problems.append(
            ImportProblem(key=drop.name, reason=f"names the catalog model {target!r}, imported from {keep.name!r}")
        )

    for target, price in chosen.items():
        model = models.get(target)
        current = in_force.get(model.pk) if model is not None else None
        if current is not None and _same_price(current, price):
            result.unchanged += 1
            continue
        try:
            with transaction.atomic():  # a refused entry rolls back alone
                if model is None:
                    model = services.model_create(
                        model_id=target, display_name=price.name, provider=price.provider, actor=actor
                    )
                services.model_price_set(
                    model=model,
                    input_per_million=price.input_per_million,
                    cached_input_per_million=price.cached_input_per_million,
                    output_per_million=price.output_per_million,
                    image_price=price.image_price,
                    effective_from=start,
                    reason=reason,
                    actor=actor,
                    now=now,
                )
        except CatalogValidationError as exc:
            result.problems.append(ImportProblem(key=price.name, reason=exc.message))
            continue
        if target in models:
            result.updated += 1
        else:
            result.created += 1
    return result
