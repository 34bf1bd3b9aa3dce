"""Model prices that come in whole: the staff API's model upsert and the LiteLLM price import.

Both create a model when the catalog lacks it and add price versions through pricing.services, so every write is
validated, versioned, audited and refreshes the cached catalog on commit; nothing is edited in place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from pricing import services
from pricing.dimensions import OVERRIDABLE_PRICE_FIELDS, STRUCTURED_PRICE_FIELDS
from pricing.errors import CatalogValidationError
from pricing.litellm_import import SCALAR_DIMENSIONS, ImportedPrice, ImportProblem, PriceMap
from pricing.models import AIModel, CatalogAudit, ModelAlias, ModelPrice
from pricing.selectors import catalog_cache_invalidate, model_alias_owner, model_by_id, model_price_in_force
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


# What a bundled import writes as the reason of its versions; a version in force with another reason (the seed, an
# operator's edit, a file import) is a price someone set, and a bundled import never changes it.
BUNDLED_REASON_PREFIX = "bundled list prices"
_NULLABLE_DIMENSIONS = tuple(d for d in SCALAR_DIMENSIONS if d not in ("input_per_million", "output_per_million",
                                                                        "image_price"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class UnusedReport:
    """A field of an imported model that is not in the catalog, and why."""

    model: str
    field: str
    code: str
    reason: str


@dataclass
class PriceImportResult:
    entries: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: list[str] = field(default_factory=list)
    aliases_added: int = 0
    imported_by_mode: dict[str, int] = field(default_factory=dict)
    problems: list[ImportProblem] = field(default_factory=list)
    unused: list[UnusedReport] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.problems)

    def reasons(self) -> dict[str, int]:
        """How many entries were refused, and fields left unused, per reason code."""
        counts = Counter(p.code for p in self.problems) + Counter(u.code for u in self.unused)
        return dict(sorted(counts.items()))

    def summary(self) -> dict[str, object]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "kept": len(self.kept),
            "aliases_added": self.aliases_added,
            "entries": self.entries,
            "imported_by_mode": self.imported_by_mode,
            "reasons": self.reasons(),
            "problems": [{"key": p.key, "code": p.code, "reason": p.reason} for p in self.problems],
            "unused_fields": [
                {"model": u.model, "field": u.field, "code": u.code, "reason": u.reason} for u in self.unused
            ],
            "kept_models": self.kept,
        }


def _text(amount: Decimal) -> str:
    return str(amount)


def _version_values(price: ImportedPrice, *, off_peak: list[Any]) -> dict[str, Any]:
    """The ModelPrice field values an imported price becomes (JSON prices as decimal strings)."""
    values: dict[str, Any] = {
        "input_per_million": price.prices.get("input_per_million", Decimal(0)),
        "output_per_million": price.prices.get("output_per_million", Decimal(0)),
        "image_price": price.prices.get("image_price", Decimal(0)),
    }
    for dimension in _NULLABLE_DIMENSIONS:
        values[dimension] = price.prices.get(dimension)
    values["image_prices"] = {key: _text(amount) for key, amount in sorted(price.image_prices.items())}
    values["tiers"] = [
        {k: (v if k == "above_input_tokens" else _text(v)) for k, v in tier.items()} for tier in price.tiers
    ]
    values["service_tiers"] = {
        tier: {dimension: _text(amount) for dimension, amount in prices.items()}
        for tier, prices in sorted(price.service_tiers.items())
    }
    values["off_peak"] = off_peak  # LiteLLM has no off-peak prices: a window set in the catalog stays
    return values


def _comparable(value: Any) -> Any:
    """JSON prices compared as numbers: "0.15" and "0.150000000000" are one price."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return value
    return value


def _same_version(version: ModelPrice, values: Mapping[str, Any]) -> bool:
    return all(_comparable(getattr(version, name)) == _comparable(value) for name, value in values.items())


def _audit_json(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal | datetime) else v) for k, v in values.items()}


class PriceImportRolledBack(Exception):
    """A dry run, or a strict import with something to report: `result` says what it found; nothing was written."""

    def __init__(self, result: PriceImportResult, *, strict_failed: bool) -> None:
        super().__init__("price import rolled back")
        self.result = result
        self.strict_failed = strict_failed


def litellm_prices_import(
    *,
    price_map: PriceMap,
    effective_from: datetime | None = None,
    reason: str,
    keep_catalog_prices: bool = False,
    strict: bool = False,
    dry_run: bool = False,
    actor: Actor = None,
    now: datetime | None = None,
) -> PriceImportResult:
    """Bring a LiteLLM price map into the catalog: create the models it lacks, add a price version only where a
    price differs from the version in force at `effective_from` (default now), and add its aliases.

    Entries match catalog models by model_id or alias; when several name one model, the one named by its model_id
    (else the first) is used and the others are reported. An entry the catalog refuses is reported, not fatal.
    With `keep_catalog_prices` (the bundled snapshot) a model whose price in force was set by anyone but a bundled
    import keeps it: the seed's and operators' prices are never overwritten. `strict` writes nothing if any entry
    or field is reported, `dry_run` writes nothing at all: both raise PriceImportRolledBack with the report.

    The unique model ids, aliases and (model, effective_from) versions are the idempotency guard: an import that
    loses a race with another writing the same rows starts over once, and then finds them in place.
    """
    for attempt in (1, 2):
        try:
            return _import(
                price_map=price_map, effective_from=effective_from, reason=reason,
                keep_catalog_prices=keep_catalog_prices, strict=strict, dry_run=dry_run, actor=actor, now=now,
            )  # fmt: skip
        except IntegrityError:
            if attempt == 2:
                raise CatalogValidationError(
                    "the catalog changed under the import twice (another import running?); nothing was written, "
                    "run it again",
                    fields={},
                ) from None
    raise AssertionError("unreachable")


@transaction.atomic
def _import(
    *,
    price_map: PriceMap,
    effective_from: datetime | None,
    reason: str,
    keep_catalog_prices: bool,
    strict: bool,
    dry_run: bool,
    actor: Actor,
    now: datetime | None,
) -> PriceImportResult:
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
    result = PriceImportResult(entries=price_map.entries, problems=list(price_map.problems))

    models = {m.model_id: m for m in AIModel.objects.all()}
    aliases = dict(ModelAlias.objects.values_list("alias", "model__model_id"))
    in_force: dict[int, ModelPrice] = {}
    for version in ModelPrice.objects.filter(effective_from__lte=start).order_by("effective_from", "id"):
        in_force[version.model_id] = version  # ascending, so the last one seen is the one in force

    def catalog_name(name: str) -> str:
        return name if name in models else aliases.get(name, name)

    chosen: dict[str, ImportedPrice] = {}
    for price in price_map.prices:
        target = catalog_name(price.name)
        previous = chosen.get(target)
        if previous is None:
            chosen[target] = price
            continue
        keep, drop = (price, previous) if price.name == target else (previous, price)
        chosen[target] = keep
        result.problems.append(
            ImportProblem(
                key=drop.name,
                reason=f"names the catalog model {target!r}, imported from {keep.name!r}",
                code="duplicate",
            )
        )
    # a provider-prefixed name with the same prices that is a model of its own in the catalog stays one
    new_aliases: list[tuple[str, str, str]] = []  # (alias, target name, why)
    for alias in price_map.aliases:
        if alias.why == "same_prices" and alias.alias in models and alias.price is not None:
            chosen.setdefault(alias.alias, alias.price)
        else:
            new_aliases.append((alias.alias, alias.target, alias.why))

    fresh: list[tuple[str, ImportedPrice]] = []
    modes: Counter[str] = Counter()
    for target, price in chosen.items():
        model = models.get(target)
        if model is None:
            fresh.append((target, price))
            modes[price.mode] += 1
            continue
        current = in_force.get(model.pk)
        values = _version_values(price, off_peak=list(current.off_peak) if current is not None else [])
        result.unused.extend(UnusedReport(price.name, u.field, u.code, u.reason) for u in price.unused)
        if model.mode != price.mode:
            result.unused.append(
                UnusedReport(price.name, "mode", "mode_differs",
                             f"the map says {price.mode}; the catalog's {model.mode} is kept")
            )  # fmt: skip
        if current is not None and _same_version(current, values):
            result.unchanged += 1
            modes[price.mode] += 1
            continue
        if keep_catalog_prices and current is not None and not current.reason.startswith(BUNDLED_REASON_PREFIX):
            result.kept.append(target)
            continue
        try:
            with transaction.atomic():  # a refused entry rolls back alone
                services.model_price_set(model=model, **values, effective_from=start, reason=reason, actor=actor,
                                         now=now)  # fmt: skip
                _limits_fill(model=model, price=price, actor=actor)
        except CatalogValidationError as exc:
            result.problems.append(ImportProblem(key=price.name, reason=exc.message))
            continue
        result.updated += 1
        modes[price.mode] += 1

    created = _models_bulk_create(fresh=fresh, start=start, now=now, reason=reason, actor=actor)
    for target, price in fresh:
        models[target] = created[target]
        result.unused.extend(UnusedReport(price.name, u.field, u.code, u.reason) for u in price.unused)
    result.created = len(created)
    result.aliases_added = _aliases_add(
        new_aliases=new_aliases, models=models, aliases=aliases, result=result, actor=actor
    )
    result.imported_by_mode = dict(sorted(modes.items()))
    strict_failed = strict and bool(result.problems or result.unused)
    if strict_failed or dry_run:
        raise PriceImportRolledBack(result, strict_failed=strict_failed)  # leaving the atomic block undoes it all
    return result


def _limits_fill(*, model: AIModel, price: ImportedPrice, actor: Actor) -> None:
    """Limits the catalog does not know yet are taken from the map; one it knows is someone's choice and stays."""
    max_input = model.max_input_tokens if model.max_input_tokens is not None else price.max_input_tokens
    max_output = model.max_output_tokens if model.max_output_tokens is not None else price.max_output_tokens
    if (max_input, max_output) != (model.max_input_tokens, model.max_output_tokens):
        services.model_update(model=model, max_input_tokens=max_input, max_output_tokens=max_output, actor=actor)


def _set_by(actor: Actor) -> Any:
    """The user a version and its audit row name: an authenticated one, else nobody (a command, a job)."""
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _models_bulk_create(
    *, fresh: list[tuple[str, ImportedPrice]], start: datetime, now: datetime, reason: str, actor: Actor
) -> dict[str, AIModel]:
    """New models with their first price version, in a few statements: the rows and audit entries model_create and
    model_price_set write, for prices the parser has already checked (finite, >= 0, at the stored precision)."""
    if not fresh:
        return {}
    set_by = _set_by(actor)
    backdated = start < now - BACKDATE_TOLERANCE
    rows = [
        AIModel(
            model_id=target,
            display_name=price.name,
            provider=price.provider,
            allowed_tiers=[],
            mode=price.mode,
            max_input_tokens=price.max_input_tokens,
            max_output_tokens=price.max_output_tokens,
        )
        for target, price in fresh
    ]
    AIModel.objects.bulk_create(rows, batch_size=500)
    created = {row.model_id: row for row in AIModel.objects.filter(model_id__in=[t for t, _ in fresh])}
    versions = []
    audits = []
    for target, price in fresh:
        model = created[target]
        values = _version_values(price, off_peak=[])
        versions.append(
            ModelPrice(model=model, effective_from=start, backdated=backdated, reason=reason, set_by=set_by, **values)
        )
        audits.append(
            CatalogAudit(
                actor=set_by, action="create", object_type="AIModel", object_key=target, before=None,
                after={"display_name": model.display_name, "provider": model.provider, "allowed_tiers": [],
                       "mode": model.mode, "max_input_tokens": model.max_input_tokens,
                       "max_output_tokens": model.max_output_tokens},
            )
        )  # fmt: skip
        audited = {k: v for k, v in values.items() if v not in (None, {}, [])}
        audits.append(
            CatalogAudit(
                actor=set_by, action="price_version", object_type="ModelPrice", object_key=target, before=None,
                after=_audit_json({**audited, "effective_from": start, "backdated": backdated}), reason=reason[:500],
            )
        )  # fmt: skip
    ModelPrice.objects.bulk_create(versions, batch_size=500)
    CatalogAudit.objects.bulk_create(audits, batch_size=500)
    transaction.on_commit(catalog_cache_invalidate)
    return created


def _aliases_add(
    *,
    new_aliases: list[tuple[str, str, str]],
    models: dict[str, AIModel],
    aliases: dict[str, str],
    result: PriceImportResult,
    actor: Actor,
) -> int:
    """The map's aliases become catalog aliases; one that names nothing, or already names another model, is
    reported. An alias the model already has is left as it is."""
    rows: list[ModelAlias] = []
    audits: list[CatalogAudit] = []
    set_by = _set_by(actor)
    for alias, target_name, why in new_aliases:
        target = target_name if target_name in models else aliases.get(target_name)
        if target is None or target not in models:
            result.problems.append(
                ImportProblem(
                    key=alias,
                    reason=f"alias_of names {target_name!r}, which is neither in the map nor in the catalog",
                    code="alias_target_missing",
                )
            )
            continue
        owner = aliases.get(alias)
        if owner == target:
            continue
        if owner is not None or alias in models:
            result.problems.append(
                ImportProblem(
                    key=alias,
                    reason=f"would alias {target}, but {alias!r} already names {owner or 'a model of its own'}",
                    code="alias_taken",
                )
            )
            continue
        aliases[alias] = target
        rows.append(ModelAlias(alias=alias, model=models[target]))
        audits.append(
            CatalogAudit(actor=set_by, action="alias_add", object_type="ModelAlias", object_key=alias, before=None,
                         after={"model": target, "why": why})
        )  # fmt: skip
    if rows:
        ModelAlias.objects.bulk_create(rows, batch_size=500)
        CatalogAudit.objects.bulk_create(audits, batch_size=500)
        transaction.on_commit(catalog_cache_invalidate)
    return len(rows)
