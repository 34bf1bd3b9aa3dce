"""The version history tables on the console's change pages, and the audit entries beside them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pricing.console.versions import tier_multipliers_text, versions_with_status, when
from pricing.dimensions import OVERRIDABLE_PRICE_FIELDS
from pricing.display import grouped, plain
from pricing.models import AIModel, CatalogAudit, ExchangeRate, Feature, FeatureCost, ModelPrice, Plan, PlanTerms


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
