"""Writes to AI models: create, update, (de)activate, aliases, and new price versions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from pricing.dimensions import MODES, OVERRIDABLE_PRICE_FIELDS, SERVICE_TIERS, STRUCTURED_PRICE_FIELDS
from pricing.errors import CatalogValidationError
from pricing.models import AIModel, ModelAlias, ModelPrice
from pricing.services.audit import Actor, _actor, _amount, _audit, _effective, _raise


@transaction.atomic
def model_create(
    *,
    model_id: str,
    display_name: str,
    provider: str,
    allowed_tiers: list[str] | None = None,
    aliases: list[str] | None = None,
    is_active: bool = True,
    mode: str = "chat",
    max_input_tokens: int | None = None,
    max_output_tokens: int | None = None,
    actor: Actor = None,
) -> AIModel:
    if not model_id.strip():
        raise CatalogValidationError("model_id: required", fields={"model_id": "required"})
    _raise(_model_limits(mode=mode, max_input_tokens=max_input_tokens, max_output_tokens=max_output_tokens))
    # a model id that is another model's alias would silently take that alias's events (ids win over aliases)
    alias_owner = ModelAlias.objects.filter(alias=model_id.strip()).values_list("model__model_id", flat=True).first()
    if alias_owner is not None:
        raise CatalogValidationError(
            f"model_id: {model_id!r} is already an alias of {alias_owner}",
            fields={"model_id": f"already an alias of {alias_owner}"},
        )
    try:
        with transaction.atomic():
            model = AIModel.objects.create(
                model_id=model_id.strip(),
                display_name=display_name or model_id,
                provider=provider,
                allowed_tiers=sorted(set(allowed_tiers or [])),
                is_active=is_active,
                mode=mode,
                max_input_tokens=max_input_tokens,
                max_output_tokens=max_output_tokens,
            )
    except IntegrityError:
        raise CatalogValidationError(
            f"model_id: {model_id!r} already exists", fields={"model_id": "already exists"}
        ) from None
    for alias in aliases or []:
        model_alias_add(model=model, alias=alias, actor=actor)
    _audit(
        actor=actor,
        action="create",
        obj=model,
        key=model.model_id,
        before=None,
        after={"display_name": model.display_name, "provider": provider, "allowed_tiers": model.allowed_tiers,
               "mode": mode, "max_input_tokens": max_input_tokens, "max_output_tokens": max_output_tokens},
    )  # fmt: skip
    return model


_UNSET: Any = object()


def _model_limits(*, mode: Any, max_input_tokens: Any, max_output_tokens: Any) -> dict[str, str]:
    fields: dict[str, str] = {}
    if mode is not _UNSET and mode not in MODES:
        fields["mode"] = f"must be one of {', '.join(MODES)}"
    for name, value in (("max_input_tokens", max_input_tokens), ("max_output_tokens", max_output_tokens)):
        if value is _UNSET or value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            fields[name] = "must be a whole number >= 1, or empty"
    return fields


@transaction.atomic
def model_update(
    *,
    model: AIModel,
    display_name: str | None = None,
    provider: str | None = None,
    allowed_tiers: list[str] | None = None,
    mode: str | None = None,
    max_input_tokens: int | None = _UNSET,
    max_output_tokens: int | None = _UNSET,
    actor: Actor = None,
) -> AIModel:
    """Change a model's descriptive fields (not its prices: those are versions, see model_price_set).

    `max_input_tokens` and `max_output_tokens` may be set to None (unknown); left out, they stay as they are.
    """
    _raise(
        _model_limits(
            mode=_UNSET if mode is None else mode,
            max_input_tokens=max_input_tokens,
            max_output_tokens=max_output_tokens,
        )
    )
    described = ("display_name", "provider", "allowed_tiers", "mode", "max_input_tokens", "max_output_tokens")
    before = {name: getattr(model, name) for name in described}
    if display_name is not None:
        model.display_name = display_name
    if provider is not None:
        model.provider = provider
    if allowed_tiers is not None:
        model.allowed_tiers = sorted(set(allowed_tiers))
    if mode is not None:
        model.mode = mode
    if max_input_tokens is not _UNSET:
        model.max_input_tokens = max_input_tokens
    if max_output_tokens is not _UNSET:
        model.max_output_tokens = max_output_tokens
    model.save()
    after = {name: getattr(model, name) for name in described}
    if before != after:
        _audit(actor=actor, action="update", obj=model, key=model.model_id, before=before, after=after)
    return model


@transaction.atomic
def model_set_active(*, model: AIModel, is_active: bool, actor: Actor = None) -> AIModel:
    if model.is_active != is_active:
        model.is_active = is_active
        model.save(update_fields=["is_active"])
        _audit(actor=actor, action="activate" if is_active else "deactivate", obj=model, key=model.model_id,
               before={"is_active": not is_active}, after={"is_active": is_active})  # fmt: skip
    return model


@transaction.atomic
def model_alias_add(*, model: AIModel, alias: str, actor: Actor = None) -> ModelAlias:
    alias = alias.strip()
    if not alias:
        raise CatalogValidationError("alias: required", fields={"alias": "required"})
    if AIModel.objects.filter(model_id=alias).exclude(pk=model.pk).exists():
        raise CatalogValidationError(
            f"alias: {alias!r} is another model's id", fields={"alias": "is another model's id"}
        )
    try:
        with transaction.atomic():
            row = ModelAlias.objects.create(model=model, alias=alias)
    except IntegrityError:
        owner = ModelAlias.objects.filter(alias=alias).values_list("model__model_id", flat=True).first()
        if owner == model.model_id:
            return ModelAlias.objects.get(alias=alias)
        raise CatalogValidationError(
            f"alias: {alias!r} is already taken by {owner}", fields={"alias": f"already taken by {owner}"}
        ) from None
    _audit(actor=actor, action="alias_add", obj=row, key=alias, before=None, after={"model": model.model_id})
    return row


@transaction.atomic
def model_alias_remove(*, model: AIModel, alias: str, actor: Actor = None) -> bool:
    """Stop rating `alias` as this model: events that name it are refused as unknown from now on (kept, replayable
    once the alias is back). Events already rated keep their model. False when the model had no such alias."""
    removed, _ = ModelAlias.objects.filter(model=model, alias=alias).delete()
    if removed:
        _audit(actor=actor, action="alias_remove", obj=model, key=alias, before={"model": model.model_id}, after=None)
    return bool(removed)


_NULLABLE_PRICES = (
    "cached_input_per_million",
    "cache_write_per_million",
    "cache_write_1h_per_million",
    "reasoning_per_million",
    "image_input_per_million",
    "image_output_per_million",
    "audio_input_per_million",
    "audio_output_per_million",
    "price_per_second",
    "price_per_character",
    "price_per_request",
)


def _overrides(fields: dict[str, str], name: str, value: object, *, allowed: tuple[str, ...]) -> dict[str, str]:
    """A {price field: price} object as stored JSON (decimal strings); unknown fields and bad amounts are refused."""
    if not isinstance(value, Mapping):
        fields[name] = "must be an object of {price field: price}"
        return {}
    out: dict[str, str] = {}
    for key, amount in value.items():
        if key not in OVERRIDABLE_PRICE_FIELDS:
            if key not in allowed:
                fields[f"{name}.{key}"] = f"unknown price field (one of {', '.join(OVERRIDABLE_PRICE_FIELDS)})"
            continue
        out[key] = str(_amount(fields, f"{name}.{key}", amount))
    return out


def _clock(fields: dict[str, str], name: str, value: object) -> str:
    if isinstance(value, str) and len(value) == 5 and value[2] == ":":
        hours, minutes = value[:2], value[3:]
        if hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60:
            return value
    fields[name] = "must be a UTC time HH:MM"
    return "00:00"


def _structured_prices(fields: dict[str, str], values: Mapping[str, object]) -> dict[str, Any]:
    """Validate and normalise image_prices, tiers, service_tiers and off_peak (docs/pricing-dimensions.md)."""
    out: dict[str, Any] = {}
    image_prices = values.get("image_prices") or {}
    if not isinstance(image_prices, Mapping):
        fields["image_prices"] = 'must be an object {"<size>/<quality>": price}'
        image_prices = {}
    out["image_prices"] = {
        str(key): str(_amount(fields, f"image_prices.{key}", amount)) for key, amount in image_prices.items()
    }
    tiers = values.get("tiers") or []
    out["tiers"] = []
    if not isinstance(tiers, list):
        fields["tiers"] = 'must be a list [{"above_input_tokens": N, "<price field>": price}]'
        tiers = []
    last = -1
    for index, tier in enumerate(tiers):
        threshold = tier.get("above_input_tokens") if isinstance(tier, Mapping) else None
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
            fields[f"tiers.{index}.above_input_tokens"] = "must be a whole number >= 0"
            continue
        if threshold <= last:
            fields[f"tiers.{index}.above_input_tokens"] = "tiers must be in ascending order of their thresholds"
        last = threshold
        prices = _overrides(fields, f"tiers.{index}", tier, allowed=("above_input_tokens",))
        if not prices:
            fields.setdefault(f"tiers.{index}", "a tier names at least one price")
        out["tiers"].append({"above_input_tokens": threshold, **prices})
    service_tiers = values.get("service_tiers") or {}
    out["service_tiers"] = {}
    if not isinstance(service_tiers, Mapping):
        fields["service_tiers"] = 'must be an object {"batch"|"flex"|"priority": {"<price field>": price}}'
        service_tiers = {}
    for name, prices in service_tiers.items():
        if name not in SERVICE_TIERS or name == "default":
            fields[f"service_tiers.{name}"] = "must be batch, flex or priority"
            continue
        out["service_tiers"][name] = _overrides(fields, f"service_tiers.{name}", prices, allowed=())
    off_peak = values.get("off_peak") or []
    out["off_peak"] = []
    if not isinstance(off_peak, list):
        fields["off_peak"] = 'must be a list [{"start": "HH:MM", "end": "HH:MM", "<price field>": price}]'
        off_peak = []
    for index, window in enumerate(off_peak):
        if not isinstance(window, Mapping):
            fields[f"off_peak.{index}"] = "must be an object"
            continue
        start = _clock(fields, f"off_peak.{index}.start", window.get("start"))
        end = _clock(fields, f"off_peak.{index}.end", window.get("end"))
        if start == end:
            fields.setdefault(f"off_peak.{index}.end", "a window ends after it starts")
        prices = _overrides(fields, f"off_peak.{index}", window, allowed=("start", "end"))
        out["off_peak"].append({"start": start, "end": end, **prices})
    return out


@transaction.atomic
def model_price_set(
    *,
    model: AIModel,
    input_per_million: object = "0",
    output_per_million: object = "0",
    cached_input_per_million: object | None = None,
    image_price: object = "0",
    effective_from: datetime | None = None,
    reason: str = "",
    actor: Actor = None,
    now: datetime | None = None,
    **dimensions: object,
) -> ModelPrice:
    """Add a price version for a model from `effective_from` (default now). Prices are USD, finite and >= 0.

    `dimensions` are the other price fields of docs/pricing-dimensions.md (None or "" leaves one not priced) and the
    structured ones (`image_prices`, `tiers`, `service_tiers`, `off_peak`); an unknown name is refused.
    """
    fields: dict[str, str] = {}
    now = now or timezone.now()
    for name in dimensions:
        if name not in _NULLABLE_PRICES and name not in STRUCTURED_PRICE_FIELDS:
            fields[name] = "unknown price field"
    given = {"cached_input_per_million": cached_input_per_million, **dimensions}
    values: dict[str, Any] = {
        "input_per_million": _amount(fields, "input_per_million", input_per_million),
        "output_per_million": _amount(fields, "output_per_million", output_per_million),
        "image_price": _amount(fields, "image_price", image_price),
    }
    for name in _NULLABLE_PRICES:
        value = given.get(name)
        values[name] = None if value in (None, "") else _amount(fields, name, value)
    values.update(_structured_prices(fields, dimensions))
    start, backdated = _effective(fields, effective_from, reason, now)
    _raise(fields)
    try:
        with transaction.atomic():
            version = ModelPrice.objects.create(
                model=model, effective_from=start, backdated=backdated, reason=reason, set_by=_actor(actor), **values
            )
    except IntegrityError:
        raise CatalogValidationError(
            "effective_from: a version already starts at that time",
            fields={"effective_from": "a version already starts at that time"},
        ) from None
    original = ("input_per_million", "output_per_million", "image_price", "cached_input_per_million")
    audited = {k: v for k, v in values.items() if k in original or v not in (None, {}, [])}
    _audit(actor=actor, action="price_version", obj=version, key=model.model_id, before=None,
           after={**audited, "effective_from": start, "backdated": backdated}, reason=reason)  # fmt: skip
    return version
