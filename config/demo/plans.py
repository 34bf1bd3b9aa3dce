"""The demo's plans: named for what they are, each with a markup over the provider's cost and per-unit prices in
line with the catalog (its models cost $0.10 to $4.00 per 1M tokens), beside the seed catalog's own plans."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pricing import services
from pricing.models import AIModel, Plan, PlanTerms
from pricing.seed import SEED_EFFECTIVE_FROM

REASON = "demo plans"
TOKENS_PER_MILLION = 1_000_000

# code, name, family, terms: the per-token overage rate is written per 1M tokens and divided once, here
DEMO_PLANS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("prepaid", "Prepaid", "prepaid", {"unit": "credits", "fee": "0", "included_units": None, "overage_rate": "0",
                                      "markup": "2.0", "requests_per_hour": 2000}),
    ("starter_tokens", "Starter", "tokens", {"unit": "tokens", "fee": "29", "included_units": "5000000",
                                             "overage_per_million": "3.00", "markup": "1.8", "max_overage_pct": "300"}),
    ("growth_tokens", "Growth", "tokens", {"unit": "tokens", "fee": "149", "included_units": "50000000",
                                           "overage_per_million": "2.50", "markup": "1.5"}),
    ("scale_tokens", "Scale", "tokens", {"unit": "tokens", "fee": "599", "included_units": "250000000",
                                         "overage_per_million": "2.00", "markup": "1.3"}),
]  # fmt: skip


def _terms(values: dict[str, Any]) -> dict[str, Any]:
    terms = dict(values)
    per_million = terms.pop("overage_per_million", None)
    if per_million is not None:
        terms["overage_rate"] = str(Decimal(per_million) / TOKENS_PER_MILLION)
    return terms


def demo_plans_seed() -> int:
    """Create the demo plans and their first terms where missing (by code and start): returns how many were new."""
    created = 0
    for code, name, family, terms in DEMO_PLANS:
        plan = Plan.objects.filter(code=code).first()
        if plan is None:
            plan = services.plan_create(code=code, name=name, family=family)
            created += 1
        if not PlanTerms.objects.filter(plan=plan, effective_from=SEED_EFFECTIVE_FROM).exists():
            services.plan_terms_set(plan=plan, **_terms(terms), effective_from=SEED_EFFECTIVE_FROM, reason=REASON)
    demo_plans_allow_models()
    return created


def demo_plans_allow_models() -> None:
    """Open the models that are limited to some plans (the seed's) to the demo plans as well."""
    codes = [code for code, _, _, _ in DEMO_PLANS]
    for model in AIModel.objects.exclude(allowed_tiers=[]).order_by("pk"):
        missing = [code for code in codes if code not in model.allowed_tiers]
        if missing:
            services.model_update(model=model, allowed_tiers=[*model.allowed_tiers, *missing])
