"""Invoices, what must follow each one (the outbox), and usage that arrived after its period closed."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

from billing.models.accounts import Account
from billing.models.subscriptions import BillingPeriod
from pricing.fields import PreciseDecimalField


class Invoice(models.Model):
    """The billing record of one closed period; the total is rounded once to cents, half up."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        PAID = "paid"
        VOID = "void"
        UNCOLLECTIBLE = "uncollectible"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="invoices")
    period = models.OneToOneField(BillingPeriod, on_delete=models.PROTECT, related_name="invoice")
    plan_code = models.CharField(max_length=50)
    unit = models.CharField(max_length=20)
    units = PreciseDecimalField(default=Decimal(0))
    included_units = PreciseDecimalField(null=True, blank=True)
    overage_units = PreciseDecimalField(default=Decimal(0))
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    messages = models.BigIntegerField(default=0)
    api_cost_usd = PreciseDecimalField(default=Decimal(0))
    charge_usd = PreciseDecimalField(default=Decimal(0), help_text="customer charge of the period's events")
    base_charge = PreciseDecimalField(default=Decimal(0))
    overage = PreciseDecimalField(default=Decimal(0))
    cap_applied = models.BooleanField(default=False)
    late_usage = PreciseDecimalField(
        default=Decimal(0), help_text="late-usage adjustments billed on this invoice (usage of earlier, closed periods)"
    )
    total = PreciseDecimalField(default=Decimal(0), help_text="after the cap, plus late usage, unrounded")
    currency = models.CharField(max_length=10, default="USD")
    amount_cents = models.BigIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT, db_index=True)
    stripe_invoice_id = models.CharField(max_length=100, blank=True, db_index=True)
    hosted_invoice_url = models.URLField(blank=True, max_length=500)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["account", "period"], name="invoice_unique_period")]

    def __str__(self) -> str:
        return f"invoice #{self.pk} {self.account} {self.amount_cents} minor units of {self.currency}"


class InvoiceOutbox(models.Model):
    """What must follow an invoice, written in the same transaction as the invoice: one row per invoice and kind.

    A separate, idempotent step (`outbox_send_due`) sends every pending row, whichever run wrote it; a failed send
    keeps the row pending with its error and a later `next_attempt_at` (backoff). A sent row is never sent again.
    """

    class Kind(models.TextChoices):
        OVERAGE = "overage", "overage billing (Stripe)"
        MONTHLY_SUMMARY = "monthly_summary", "monthly summary email"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="outbox")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    outcome = models.CharField(max_length=500, blank=True, help_text="what the send did")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True, help_text="a sender is working on it until then")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = "invoice outbox row"
        constraints = [models.UniqueConstraint(fields=["invoice", "kind"], name="outbox_unique_invoice_kind")]
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="outbox_pending_due")]

    def __str__(self) -> str:
        return f"{self.kind} of invoice #{self.invoice_id} ({self.status})"


class LateUsageAdjustment(models.Model):
    """Usage that arrived after its period closed, billed on the account's next invoice.

    The counters move as late events are recorded (one unbilled row per closed period: a partial unique
    constraint); the next close of the account prices them with the closed period's own terms (what the plan
    charge of that period grows by) and links the row to its invoice, so it is billed exactly once.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="late_usage")
    period = models.ForeignKey(
        BillingPeriod, on_delete=models.PROTECT, related_name="late_usage", help_text="the closed period it belongs to"
    )
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="late_usage_adjustments",
        help_text="the invoice that billed it; empty until the next close",
    )  # fmt: skip
    units = PreciseDecimalField(default=Decimal(0))
    messages = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    provider_cost_usd = PreciseDecimalField(default=Decimal(0))
    charge_usd = PreciseDecimalField(default=Decimal(0))
    credits_used = PreciseDecimalField(default=Decimal(0))
    amount = PreciseDecimalField(default=Decimal(0), help_text="what the invoice charges for it, unrounded")
    currency = models.CharField(max_length=10, default="USD")
    created_at = models.DateTimeField()
    billed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["period"], condition=Q(invoice__isnull=True), name="late_usage_one_unbilled_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"late usage of period {self.period_id}: {self.messages} events"
