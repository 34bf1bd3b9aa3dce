"""The catalog CSV download: models, features, rates and plans in force, one section each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from pricing.console.versions import features_with_costs, first_or_none, models_with_prices, plans_with_terms
from pricing.display import plain
from pricing.models import AIModel, ExchangeRate, Feature, Plan


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
