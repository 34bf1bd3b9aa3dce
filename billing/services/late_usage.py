"""Late usage: events whose time falls in a period that had already closed when they were recorded.

Such an event never moves the closed period's counters (its invoice is written); it moves the period's unbilled
LateUsageAdjustment instead. The account's next close prices each adjustment with the closed period's own terms,
as what that period's plan charge grows by with the late units on top of all usage billed for it so far, adds it
to the new invoice as its own line (`Invoice.late_usage`) and links the adjustment to that invoice: billed once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from billing.models import BillingPeriod, Invoice, LateUsageAdjustment
from pricing.money import Money
from pricing.rating import plan_charge
from pricing.selectors import plan_terms_version


@dataclass(frozen=True)
class LateCounters:
    units: Decimal
    messages: int
    input_tokens: int
    output_tokens: int
    provider_cost_usd: Decimal
    charge_usd: Decimal
    credits_used: Decimal


@dataclass(frozen=True)
class LateUnits:
    """A closed period's units before and after this late usage (its own and every late unit so far)."""

    before: Decimal
    after: Decimal
    included: Decimal | None


def _late_units_so_far(period_id: int) -> Decimal:
    total = LateUsageAdjustment.objects.filter(period_id=period_id).aggregate(total=Sum("units"))["total"]
    return Decimal(total or 0)


def late_usage_add(*, period: BillingPeriod, counters: LateCounters, at: datetime) -> LateUnits:
    """Add late usage to the closed period's unbilled adjustment (created on first use). The caller holds the
    account's lock (recording does), so the close cannot bill the adjustment while it grows."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("late usage is added in the recording's transaction")
    before = period.units_used + _late_units_so_far(period.pk)
    changes = {
        "units": F("units") + counters.units,
        "messages": F("messages") + counters.messages,
        "input_tokens": F("input_tokens") + counters.input_tokens,
        "output_tokens": F("output_tokens") + counters.output_tokens,
        "provider_cost_usd": F("provider_cost_usd") + counters.provider_cost_usd,
        "charge_usd": F("charge_usd") + counters.charge_usd,
        "credits_used": F("credits_used") + counters.credits_used,
    }
    unbilled = LateUsageAdjustment.objects.filter(period_id=period.pk, invoice__isnull=True)
    if not unbilled.update(**changes):
        try:
            with transaction.atomic():  # the partial unique constraint keeps one unbilled row per period
                LateUsageAdjustment.objects.create(
                    account_id=period.account_id, period=period, units=counters.units, messages=counters.messages,
                    input_tokens=counters.input_tokens, output_tokens=counters.output_tokens,
                    provider_cost_usd=counters.provider_cost_usd, charge_usd=counters.charge_usd,
                    credits_used=counters.credits_used, currency=period.terms.currency, created_at=at,
                )  # fmt: skip
        except IntegrityError:
            unbilled.update(**changes)
    return LateUnits(before=before, after=before + counters.units, included=period.included_units)


def late_usage_price(*, invoices: list[Invoice], at: datetime) -> list[LateUsageAdjustment]:
    """Put the unbilled late usage of these (unsaved) invoices' accounts on them and return the adjustments to
    link once the invoices are saved. Each adjustment goes on the account's first invoice of a period that starts
    at or after the end of the period the usage belongs to; its amount is what that period's plan charge grows by.
    The caller holds the accounts' locks (the close does)."""
    if not invoices:
        return []
    by_account: dict[int, list[Invoice]] = defaultdict(list)
    for invoice in sorted(invoices, key=lambda i: i.period.start):
        by_account[invoice.account_id].append(invoice)
    pending = list(
        LateUsageAdjustment.objects.select_for_update(of=("self",))
        .select_related("period__terms__plan")
        .filter(account_id__in=list(by_account), invoice__isnull=True)
        .order_by("period__start", "pk")
    )
    if not pending:
        return []
    billed_before: dict[int, Decimal] = defaultdict(Decimal)
    for row in (
        LateUsageAdjustment.objects.filter(period_id__in={a.period_id for a in pending}, invoice__isnull=False)
        .values("period_id")
        .annotate(units=Sum("units"))
    ):
        billed_before[row["period_id"]] = Decimal(row["units"] or 0)
    billed: list[LateUsageAdjustment] = []
    for adjustment in pending:
        following = (i for i in by_account[adjustment.account_id] if i.period.start >= adjustment.period.end)
        invoice_or_none = next(following, None)
        if invoice_or_none is None:
            continue  # its account's next period is not closing yet
        invoice = invoice_or_none
        period = adjustment.period
        terms = plan_terms_version(period.terms)
        already = period.units_used + billed_before[period.pk]
        grows_by = plan_charge(terms, already + adjustment.units).total - plan_charge(terms, already).total
        if grows_by.currency != invoice.currency:
            continue  # a plan change across currencies: left for staff, reported by the integrity check
        adjustment.amount, adjustment.invoice, adjustment.billed_at = grows_by.amount, invoice, at
        invoice.late_usage += grows_by.amount
        billed.append(adjustment)
    for invoice in {id(i): i for i in invoices if i.late_usage}.values():
        total = Money(invoice.total + invoice.late_usage, invoice.currency)
        invoice.total = total.amount
        invoice.amount_cents = total.to_minor_units()
        if invoice.amount_cents > 0:
            invoice.status, invoice.paid_at = Invoice.Status.OPEN, None
    return billed


def late_usage_link(*, adjustments: list[LateUsageAdjustment]) -> None:
    """Link priced adjustments to their invoices, now saved (same transaction as the invoices)."""
    for adjustment in adjustments:
        adjustment.invoice_id = adjustment.invoice.pk  # type: ignore[union-attr]
    LateUsageAdjustment.objects.bulk_update(adjustments, ["invoice", "amount", "billed_at"])
