"""The integrity check: TokenLedger reconciled with itself. It reports problems; it never "fixes" them.

- each wallet's balance equals the sum of its ledger entries;
- each wallet's held credits equal the holds of its active reservations;
- each period's counters equal the sums of its events;
- each invoice's total equals its plan charge for the period's units plus the late usage billed on it, and its
  cents that total rounded once;
- each invoice that bills overage has exactly one overage billing record (an outbox row: sent, or pending with its
  error), and no outbox row sits pending without ever being tried;
- no event's time falls in a closed period unless a late-usage adjustment covers it: a closed period's on-time
  events are the ones its invoice billed, its late events are the ones its adjustments count, and no on-time event
  sits in another period while its own has closed.

(That no job record is `running` without a live process is checked by core.jobs, which owns job records.)
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, Exists, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import (
    BillingPeriod,
    Invoice,
    InvoiceOutbox,
    LateUsageAdjustment,
    LedgerEntry,
    OverageBilling,
    Wallet,
)
from core.integrity import Problem
from pricing.money import Money
from pricing.rating import plan_charge
from pricing.selectors import plan_terms_version
from usage.models import Reservation, UsageEvent

ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=28, decimal_places=12))
# SQLite keeps decimals as floating point; a difference below this is storage noise there, not a problem.
TOLERANCE = Decimal("0.000001")
# an outbox row the send job has not tried for this long means the job is not running
OUTBOX_STALE = timedelta(hours=1)


def _differs(a: Decimal, b: Decimal) -> bool:
    return abs(Decimal(a) - Decimal(b)) > TOLERANCE


def integrity_check() -> list[Problem]:
    problems: list[Problem] = []
    wallets = Wallet.objects.annotate(
        ledger=Coalesce(
            Subquery(
                LedgerEntry.objects.filter(wallet=OuterRef("pk"))
                .order_by().values("wallet").annotate(total=Sum("credits")).values("total")[:1]
            ),
            ZERO,
        ),
        holds=Coalesce(
            Subquery(
                Reservation.objects.filter(account=OuterRef("account_id"), status=Reservation.Status.ACTIVE)
                .order_by().values("account").annotate(total=Sum("held_credits")).values("total")[:1]
            ),
            ZERO,
        ),
    ).select_related("account")  # fmt: skip
    for wallet in wallets.iterator(chunk_size=2000):
        if _differs(wallet.balance, wallet.ledger):
            problems.append(Problem("wallet_balance_equals_ledger", f"wallet of account {wallet.account_id}",
                                    str(wallet.ledger), str(wallet.balance)))  # fmt: skip
        if _differs(wallet.held, wallet.holds):
            problems.append(Problem("held_equals_active_reservations", f"wallet of account {wallet.account_id}",
                                    str(wallet.holds), str(wallet.held)))  # fmt: skip

    sums: dict[int, dict[str, Any]] = {
        row["period_id"]: dict(row)
        for row in UsageEvent.objects.filter(late=False)
        .values("period_id")
        .annotate(
            events=Count("id"),
            units=Sum("units"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost_usd"),
            charge=Sum("charge_usd"),
        )
    }
    empty = {
        "events": 0,
        "units": Decimal(0),
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": Decimal(0),
        "charge": Decimal(0),
    }
    for period in BillingPeriod.objects.all().iterator(chunk_size=2000):
        found: dict[str, Any] = sums.get(period.pk, empty)
        pairs = (
            ("messages", period.messages, found["events"]),
            ("input_tokens", period.input_tokens, found["input_tokens"]),
            ("output_tokens", period.output_tokens, found["output_tokens"]),
            ("provider_cost_usd", period.provider_cost_usd, found["cost"]),
            ("charge_usd", period.charge_usd, found["charge"]),
        )
        for name, counter, total in pairs:
            if _differs(Decimal(counter), Decimal(total or 0)):
                problems.append(Problem(f"period_{name}_equals_events", f"period {period.pk} of account {period.account_id}",
                                        str(total or 0), str(counter)))  # fmt: skip
        if _differs(period.units_used, Decimal(found["units"] or 0)):
            problems.append(Problem("period_units_equal_events", f"period {period.pk} of account {period.account_id}",
                                    str(found["units"] or 0), str(period.units_used)))  # fmt: skip

    late_billed: dict[int, Decimal] = {
        row["invoice_id"]: Decimal(row["amount"] or 0)
        for row in LateUsageAdjustment.objects.filter(invoice__isnull=False)
        .values("invoice_id").annotate(amount=Sum("amount"))
    }  # fmt: skip
    for invoice in Invoice.objects.select_related("period__terms__plan").iterator(chunk_size=2000):
        charge = plan_charge(plan_terms_version(invoice.period.terms), invoice.units)
        expected_total = charge.total.amount + late_billed.get(invoice.pk, Decimal(0))
        if _differs(invoice.total, expected_total):
            problems.append(Problem("invoice_total_equals_plan_charge", f"invoice {invoice.pk}",
                                    str(expected_total), str(invoice.total)))  # fmt: skip
        if _differs(invoice.late_usage, late_billed.get(invoice.pk, Decimal(0))):
            problems.append(Problem("invoice_late_usage_equals_adjustments", f"invoice {invoice.pk}",
                                    str(late_billed.get(invoice.pk, Decimal(0))), str(invoice.late_usage)))  # fmt: skip
        cents = Money(Decimal(invoice.total), invoice.currency).to_minor_units()
        if invoice.amount_cents != cents:
            problems.append(
                Problem("invoice_cents_equal_total", f"invoice {invoice.pk}", str(cents), str(invoice.amount_cents))
            )
        if _differs(invoice.units, invoice.period.units_used):
            problems.append(Problem("invoice_units_equal_period", f"invoice {invoice.pk}",
                                    str(invoice.period.units_used), str(invoice.units)))  # fmt: skip
    problems.extend(_overage_records())
    problems.extend(_events_of_closed_periods())
    return problems


def _overage_records() -> list[Problem]:
    """Each invoice billing overage has one overage record; a pending one has been tried (or is recent)."""
    problems: list[Problem] = []
    overage_rows = InvoiceOutbox.objects.filter(invoice=OuterRef("pk"), kind=InvoiceOutbox.Kind.OVERAGE)
    # invoices closed before the outbox existed count as covered when their Stripe cursor has finished
    legacy = OverageBilling.objects.filter(invoice=OuterRef("pk")).exclude(step=OverageBilling.Step.PENDING)
    missing = (
        Invoice.objects.filter(total__gt=F("base_charge"))
        .annotate(has_row=Exists(overage_rows), has_cursor=Exists(legacy))
        .filter(has_row=False, has_cursor=False)
    )
    for invoice in missing.only("pk", "account_id", "total", "base_charge").iterator(chunk_size=2000):
        if Money(Decimal(invoice.total - invoice.base_charge), invoice.currency).to_minor_units() <= 0:
            continue  # below a cent: nothing to bill
        problems.append(Problem("overage_has_one_billing_record", f"invoice {invoice.pk} of account {invoice.account_id}",
                                "1 overage billing record (sent, or pending with its error)", "0"))  # fmt: skip
    stale = InvoiceOutbox.objects.filter(
        status=InvoiceOutbox.Status.PENDING, attempts=0, created_at__lt=timezone.now() - OUTBOX_STALE
    )
    for row in stale.iterator(chunk_size=2000):
        problems.append(Problem("outbox_row_tried", f"{row.kind} of invoice {row.invoice_id}",
                                "sent, or pending with its error", "pending, never tried since "
                                f"{row.created_at.isoformat()}"))  # fmt: skip
    return problems


def _events_of_closed_periods() -> list[Problem]:
    """No event's time falls in a closed period unless a late-usage adjustment covers it."""
    problems: list[Problem] = []
    on_time: dict[int, int] = dict(
        UsageEvent.objects.filter(late=False).exclude(period__status=BillingPeriod.Status.OPEN)
        .values("period_id").annotate(n=Count("id")).values_list("period_id", "n")
    )  # fmt: skip
    for invoice in Invoice.objects.only("pk", "period_id", "messages").iterator(chunk_size=2000):
        found = on_time.get(invoice.period_id, 0)
        if found != invoice.messages:
            problems.append(Problem("closed_period_events_billed", f"period {invoice.period_id}",
                                    f"{invoice.messages} events billed on invoice {invoice.pk}, later ones late usage",
                                    f"{found} events counted in the period"))  # fmt: skip
    late: dict[int, dict[str, Any]] = {
        row["period_id"]: dict(row)
        for row in UsageEvent.objects.filter(late=True).values("period_id").annotate(n=Count("id"), units=Sum("units"))
    }
    covered: dict[int, dict[str, Any]] = {
        row["period_id"]: dict(row)
        for row in LateUsageAdjustment.objects.values("period_id").annotate(n=Sum("messages"), units=Sum("units"))
    }
    for period_id in sorted(set(late) | set(covered)):
        events: dict[str, Any] = late.get(period_id, {})
        adjusted: dict[str, Any] = covered.get(period_id, {})
        units, covered_units = Decimal(events.get("units") or 0), Decimal(adjusted.get("units") or 0)
        if events.get("n", 0) != adjusted.get("n", 0) or _differs(units, covered_units):
            problems.append(Problem("late_events_covered_by_adjustment", f"period {period_id}",
                                    f"{events.get('n', 0)} late events, {units.normalize():f} units",
                                    f"adjustments of {adjusted.get('n', 0)} events, {covered_units.normalize():f} units"))  # fmt: skip
    closed_at_time = BillingPeriod.objects.filter(
        account_id=OuterRef("account_id"), start__lte=OuterRef("occurred_at"), end__gt=OuterRef("occurred_at"),
    ).exclude(status=BillingPeriod.Status.OPEN)  # fmt: skip
    elsewhere = (
        UsageEvent.objects.filter(late=False)
        .filter(Q(occurred_at__lt=F("period__start")) | Q(occurred_at__gte=F("period__end")))
        .filter(Exists(closed_at_time))
    )
    for event in elsewhere.only("pk", "request_id", "account_id", "occurred_at").iterator(chunk_size=2000):
        problems.append(Problem("event_in_closed_period", f"event {event.request_id!r} of account {event.account_id}",
                                "billed as late usage of the closed period its time falls in",
                                f"counted in another period (occurred {event.occurred_at.isoformat()})"))  # fmt: skip
    return problems
