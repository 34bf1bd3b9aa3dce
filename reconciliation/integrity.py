"""The integrity check: TokenLedger reconciled with itself. It reports problems; it never "fixes" them.

- each wallet's balance equals the sum of its ledger entries;
- each wallet's held credits equal the holds of its active reservations;
- each period's counters equal the sums of its events;
- each invoice's total equals its plan charge for the period's units, and its cents that total rounded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from billing.models import BillingPeriod, Invoice, LedgerEntry, Wallet
from pricing.money import Money
from pricing.rating import plan_charge
from pricing.selectors import plan_terms_version
from usage.models import Reservation, UsageEvent

ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=28, decimal_places=12))
# SQLite keeps decimals as floating point; a difference below this is storage noise there, not a problem.
TOLERANCE = Decimal("0.000001")


@dataclass(frozen=True)
class Problem:
    check: str
    object: str
    expected: str
    found: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "object": self.object, "expected": self.expected, "found": self.found}


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
        for row in UsageEvent.objects.values("period_id").annotate(
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

    for invoice in Invoice.objects.select_related("period__terms__plan").iterator(chunk_size=2000):
        charge = plan_charge(plan_terms_version(invoice.period.terms), invoice.units)
        if _differs(invoice.total, charge.total.amount):
            problems.append(Problem("invoice_total_equals_plan_charge", f"invoice {invoice.pk}",
                                    str(charge.total.amount), str(invoice.total)))  # fmt: skip
        cents = Money(Decimal(invoice.total), invoice.currency).to_minor_units()
        if invoice.amount_cents != cents:
            problems.append(
                Problem("invoice_cents_equal_total", f"invoice {invoice.pk}", str(cents), str(invoice.amount_cents))
            )
        if _differs(invoice.units, invoice.period.units_used):
            problems.append(Problem("invoice_units_equal_period", f"invoice {invoice.pk}",
                                    str(invoice.period.units_used), str(invoice.units)))  # fmt: skip
    return problems
