"""Plan rules beside plan_charge: what an event counts against a plan, and how far a quota plan may go.

Authorization (the worst case, before the call) and recording (the actual usage) apply the same rules, so they
live here, once.
"""

from __future__ import annotations

from decimal import Decimal

from pricing.catalog import PlanTermsVersion
from pricing.models import PlanUnit


def event_units(*, unit: str, line_input: int, line_output: int, credits: Decimal) -> Decimal:
    """What one event counts against a plan: tokens = input + output, messages = 1, credits = its credits."""
    if unit == PlanUnit.TOKENS:
        return Decimal(line_input + line_output)
    if unit == PlanUnit.MESSAGES:
        return Decimal(1)
    return credits


def debits_wallet(terms: PlanTermsVersion) -> bool:
    """Credit plans spend from the wallet beyond their included credits (all of it when none are included)."""
    return terms.unit == PlanUnit.CREDITS


def quota_allowed_units(terms: PlanTermsVersion, included: Decimal) -> Decimal:
    """Units a quota plan may use before an event is over its limit: the included units, plus the allowed
    overage (unbounded when overage is allowed without a maximum)."""
    if terms.hard_limit or not terms.overage_allowed:
        return included
    if terms.max_overage_pct is None:
        return Decimal("Infinity")
    return included * (1 + terms.max_overage_pct / 100)


def quota_enforced(terms: PlanTermsVersion, included: Decimal | None) -> bool:
    """Whether authorize refuses past the quota: a quota plan, unless it spends credits with open overage."""
    return included is not None and not (debits_wallet(terms) and terms.overage_allowed and not terms.hard_limit)


def spend_cap_enforced(terms: PlanTermsVersion) -> bool:
    """A monthly spend cap is checked at authorize for plans billed in arrears (credit plans are prepaid)."""
    return terms.monthly_spend_cap is not None and not debits_wallet(terms)
