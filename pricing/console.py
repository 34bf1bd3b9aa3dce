"""Reads and calculations for the pricing console (the Django admin): version histories, the exchange-rate impact
preview, the summary cards and the catalog CSV. Nothing here writes; every console write goes through services.

Amounts stay Decimal and are turned into display strings here, once, so templates never do arithmetic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from django.conf import settings
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.utils import timezone

from pricing.catalog import CatalogSnapshot, RateVersion
from pricing.dimensions import OVERRIDABLE_PRICE_FIELDS
from pricing.display import grouped, money_text, plain, usd_price
from pricing.errors import NoPriceInForce, PricingError
from pricing.models import (
    AIModel,
    CatalogAudit,
    ExchangeRate,
    Feature,
    FeatureCost,
    ModelPrice,
    OperationLimit,
    Plan,
    PlanTerms,
)
from pricing.money import CREDITS, Money
from pricing.rating import UsageLine, rate_usage, usd_to
from pricing.selectors import catalog_snapshot

# The request the rate preview prices: a typical short chat turn on a cheap, popular model.
PREVIEW_MODEL_ID = "gpt-4o-mini"
PREVIEW_INPUT_TOKENS = 1_000
PREVIEW_OUTPUT_TOKENS = 500
# Always shown in the preview, whichever rate changes: what a person buys (credits) and the home currency.
PREVIEW_CURRENCIES = (CREDITS, "ZAR")
# Places shown for the preview request, whose amounts are fractions of a cent.
REQUEST_PLACES = Decimal("0.000001")

IN_FORCE, SCHEDULED, SUPERSEDED = "in force", "scheduled", "superseded"


def request_money_text(amount: Money) -> str:
    """A per-request amount (fractions of a cent) to six places, without padding: 4.5, 0.008325."""
    return grouped(amount.amount.quantize(REQUEST_PLACES))


def when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else ""


# --- versions --------------------------------------------------------------------------------------------------


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


# --- history tables --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    cells: tuple[str, ...]
    status: str = ""  # a version's: in force, scheduled or superseded


@dataclass(frozen=True, slots=True)
class Table:
    """A read-only table on a console page, in display strings."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[Row, ...]
    empty: str = "None yet."


VERSION_HEADERS = ("Effective from", "Status", "Set by", "Reason")


def _version_row(version: ModelPrice | FeatureCost | ExchangeRate | PlanTerms, status: str, *cells: str) -> Row:
    set_by = version.set_by.get_username() if version.set_by is not None else "system"
    flags = status + (", backdated" if version.backdated else "")
    return Row((*cells, when(version.effective_from), flags, set_by, version.reason), status)


def model_price_table(model: AIModel, *, at: datetime) -> Table:
    rows = []
    for p, status in versions_with_status(model.prices.select_related("set_by"), at):
        row = _version_row(
            p,
            status,
            plain(p.input_per_million),
            plain(p.cached_input_per_million) or "= input",
            plain(p.output_per_million),
            plain(p.image_price),
        )
        rows.append(Row((*row.cells, price_dimensions_text(p)), row.status))
    return Table(
        "Price versions (USD)",
        ("Input per 1M", "Cached input per 1M", "Output per 1M", "Per image", *VERSION_HEADERS, "Other dimensions"),
        tuple(rows),
        empty="No price yet: this model cannot be rated until it has one.",
    )


def price_dimensions_text(price: ModelPrice) -> str:
    """The dimensions of a version beyond the four classic prices, one `name: value` per dimension."""
    parts = [
        f"{name}: {plain(getattr(price, name))}"
        for name in OVERRIDABLE_PRICE_FIELDS
        if name not in ("input_per_million", "cached_input_per_million", "output_per_million", "image_price")
        and getattr(price, name) is not None
    ]
    if price.image_prices:
        parts.append("image_prices: " + ", ".join(f"{k} {v}" for k, v in price.image_prices.items()))
    for tier in price.tiers or []:
        prices = ", ".join(f"{k} {v}" for k, v in tier.items() if k != "above_input_tokens")
        parts.append(f"above {tier['above_input_tokens']:,} input tokens: {prices}")
    for name, prices in (price.service_tiers or {}).items():
        parts.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in prices.items()))
    for window in price.off_peak or []:
        prices = ", ".join(f"{k} {v}" for k, v in window.items() if k not in ("start", "end"))
        parts.append(f"off-peak {window['start']}-{window['end']} UTC: {prices}")
    return "; ".join(parts) or "none"


def model_alias_table(model: AIModel) -> Table:
    aliases = model.aliases.values_list("alias", flat=True)
    return Table("Aliases (provider snapshot names rated as this model)", ("Alias",), tuple(Row((a,)) for a in aliases))


def feature_cost_table(feature: Feature, *, at: datetime) -> Table:
    costs = feature.costs.select_related("set_by").prefetch_related("tier_multipliers")
    return Table(
        "Cost versions",
        ("Cost type", "Cost (USD or factor)", "Tier multipliers", "CePO", "Billable", *VERSION_HEADERS),
        tuple(
            _version_row(
                c,
                status,
                c.get_cost_type_display(),
                plain(c.cost_usd),
                tier_multipliers_text({t.tier: t.multiplier for t in c.tier_multipliers.all()}) or "none",
                plain(c.cepo_multiplier),
                "yes" if c.is_billable else "no",
            )
            for c, status in versions_with_status(costs, at)
        ),
        empty="No cost yet: requests using this feature cannot be rated until it has one.",
    )


def plan_terms_table(plan: Plan, *, at: datetime) -> Table:
    return Table(
        "Terms versions (a new version applies from each account's next period)",
        ("Fee", "Unit", "Included", "Overage rate", "Cap", "Markup", "Requests/hour", *VERSION_HEADERS),
        tuple(
            _version_row(
                t,
                status,
                f"{plain(t.fee)} {t.currency} / {t.interval}",
                t.unit,
                plain(t.included_units) or "unlimited",
                plain(t.overage_rate),
                plain(t.monthly_spend_cap) or "none",
                plain(t.markup),
                str(t.requests_per_hour or "no limit"),
            )
            for t, status in versions_with_status(plan.terms.select_related("set_by"), at)
        ),
    )


def plan_limits_table(plan: Plan) -> Table:
    return Table(
        "Operation limits of this plan",
        ("Operation", "Max input", "Max output", "Max total", "Daily USD", "Monthly USD", "Alert at"),
        tuple(
            Row(
                (
                    limit.operation_type,
                    str(limit.max_input_tokens or ""),
                    str(limit.max_output_tokens or ""),
                    str(limit.max_total_tokens or ""),
                    plain(limit.max_daily_cost_usd),
                    plain(limit.max_monthly_cost_usd),
                    f"{limit.alert_threshold_pct}%",
                )
            )
            for limit in plan.operation_limits.all()
        ),
        empty="None: the limits for all plans apply.",
    )


def exchange_rate_table(currency: str, *, at: datetime) -> Table:
    rates = ExchangeRate.objects.filter(currency=currency).select_related("set_by")
    return Table(
        f"USD → {currency} history",
        (f"{currency} per USD", *VERSION_HEADERS),
        tuple(_version_row(r, status, grouped(r.rate)) for r, status in versions_with_status(rates, at)),
    )


def audit_table(*, object_keys: Iterable[str], limit: int = 10) -> Table:
    """The latest catalog writes to these keys (a model's id and its aliases, a feature's key, a plan's code)."""
    entries = CatalogAudit.objects.filter(object_key__in=list(object_keys)).select_related("actor")[:limit]
    return Table(
        f"Latest changes (the last {limit}; the audit log has all)",
        ("At", "Who", "Action", "What", "Reason"),
        tuple(
            Row(
                (
                    when(e.at),
                    e.actor.get_username() if e.actor is not None else "system",
                    e.action,
                    f"{e.object_type} {e.object_key}",
                    e.reason,
                )
            )
            for e in entries
        ),
    )


# --- the exchange-rate impact preview --------------------------------------------------------------------------


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


# --- the console home ------------------------------------------------------------------------------------------


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


# --- the catalog CSV -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsvSection:
    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


MODEL_CSV_HEADER = (
    "model_id", "display_name", "provider", "active", "input_usd_per_1m", "cached_input_usd_per_1m",
    "output_usd_per_1m", "image_usd", "allowed_tiers", "aliases", "price_effective_from",
)  # fmt: skip
FEATURE_CSV_HEADER = (
    "feature_key", "display_name", "active", "cost_type", "cost_usd", "tier_multipliers", "cepo_multiplier",
    "billable", "cost_effective_from",
)  # fmt: skip
RATE_CSV_HEADER = ("currency", "units_per_usd", "effective_from")
PLAN_CSV_HEADER = (
    "code", "name", "family", "public", "active", "interval", "fee", "currency", "unit", "included_units",
    "overage_rate", "monthly_spend_cap", "overage_allowed", "max_overage_pct", "hard_limit", "markup",
    "requests_per_hour", "alert_thresholds", "terms_effective_from", "stripe_price_monthly", "stripe_price_yearly",
)  # fmt: skip


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _model_csv_row(m: AIModel) -> tuple[str, ...]:
    p = first_or_none(getattr(m, "prices_in_force", None))
    head = (m.model_id, m.display_name, m.provider, _yes(m.is_active))
    tiers, aliases = ";".join(m.allowed_tiers or []), ";".join(a.alias for a in m.aliases.all())
    if p is None:
        return (*head, "", "", "", "", tiers, aliases, "")
    cached = p.cached_input_per_million if p.cached_input_per_million is not None else p.input_per_million
    prices = (p.input_per_million, cached, p.output_per_million, p.image_price)
    return (*head, *map(plain, prices), tiers, aliases, p.effective_from.isoformat())


def _feature_csv_row(f: Feature) -> tuple[str, ...]:
    c = first_or_none(getattr(f, "costs_in_force", None))
    head = (f.feature_key, f.display_name, _yes(f.is_active))
    if c is None:
        return (*head, "", "", "", "", "", "")
    multipliers = ";".join(f"{t.tier}={plain(t.multiplier)}" for t in c.tier_multipliers.all())
    return (*head, c.cost_type, plain(c.cost_usd), multipliers, plain(c.cepo_multiplier),
            _yes(c.is_billable), c.effective_from.isoformat())  # fmt: skip


def _plan_csv_row(plan: Plan) -> tuple[str, ...]:
    t = first_or_none(getattr(plan, "terms_in_force", None))
    head = (plan.code, plan.name, plan.family, _yes(plan.is_public), _yes(plan.is_active))
    stripe = (plan.stripe_price_monthly, plan.stripe_price_yearly)
    if t is None:
        return (*head, *([""] * 14), *stripe)
    terms = (
        t.interval, plain(t.fee), t.currency, t.unit, plain(t.included_units),
        plain(t.overage_rate), plain(t.monthly_spend_cap), _yes(t.overage_allowed),
        plain(t.max_overage_pct), _yes(t.hard_limit), plain(t.markup), str(t.requests_per_hour or ""),
        ";".join(str(x) for x in t.alert_thresholds or []), t.effective_from.isoformat(),
    )  # fmt: skip
    return (*head, *terms, *stripe)


def catalog_csv_sections(*, at: datetime) -> tuple[CsvSection, ...]:
    """The catalog as it stands at `at`: models with their prices in force, features with their costs, the rates
    in force and plans with their terms. Amounts are plain decimals (no padding), times ISO 8601 UTC."""
    current: dict[str, ExchangeRate] = {}
    for r in ExchangeRate.objects.filter(effective_from__lte=at).order_by("currency", "effective_from"):
        current[r.currency] = r  # ascending, so the last one kept is the one in force
    return (
        CsvSection("models", MODEL_CSV_HEADER, tuple(map(_model_csv_row, models_with_prices(at=at)))),
        CsvSection("features", FEATURE_CSV_HEADER, tuple(map(_feature_csv_row, features_with_costs(at=at)))),
        CsvSection(
            "exchange_rates",
            RATE_CSV_HEADER,
            tuple((code, plain(r.rate), r.effective_from.isoformat()) for code, r in current.items()),
        ),
        CsvSection("plans", PLAN_CSV_HEADER, tuple(map(_plan_csv_row, plans_with_terms(at=at)))),
    )


def catalog_csv_rows(sections: Sequence[CsvSection]) -> Iterator[Sequence[str]]:
    """The rows of the catalog file: one section alone is a plain table; several are each headed `# name` and
    separated by an empty row."""
    for index, section in enumerate(sections):
        if len(sections) > 1:
            if index:
                yield ()
            yield (f"# {section.name}",)
        yield section.header
        yield from section.rows
