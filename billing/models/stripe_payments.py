"""Stripe: top-ups, auto-recharge, the webhook inbox and overage billing."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models.accounts import Account
from billing.models.invoices import Invoice
from billing.models.subscriptions import BillingPeriod
from billing.models.wallets import LedgerEntry
from pricing.fields import PreciseDecimalField


class TopUp(models.Model):
    """Credits bought with a card: by Checkout, or off-session by auto-recharge. The credits and the rate are fixed
    when the top-up is created; the wallet is credited once, from a verified webhook or a confirmed payment."""

    class Source(models.TextChoices):
        CHECKOUT = "checkout"
        AUTO_RECHARGE = "auto_recharge"

    class Status(models.TextChoices):
        PENDING = "pending"
        PAID = "paid"
        FAILED = "failed"
        CANCELED = "canceled"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="topups")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.CHECKOUT)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    amount_usd = PreciseDecimalField()
    currency = models.CharField(max_length=10, default="USD")
    amount_cents = models.BigIntegerField(help_text="what the card is charged, in minor units")
    credits = PreciseDecimalField(help_text="credits granted when paid, fixed at creation")
    rate = PreciseDecimalField(help_text="credits per USD at creation")
    save_payment_method = models.BooleanField(default=False, help_text="keep the card for auto-recharge")
    stripe_checkout_session_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    checkout_url = models.URLField(max_length=2000, blank=True)
    ledger_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="topup"
    )
    failure_message = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "top-up"
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0) & Q(credits__gt=0), name="topup_positive"),
        ]

    def __str__(self) -> str:
        return f"top-up #{self.pk} {self.amount_usd} USD for {self.account_id} ({self.status})"


class AutoRecharge(models.Model):
    """An account's standing order: when its credits fall below `threshold_credits`, charge `amount_usd` to the
    saved card. Stops itself after `AUTO_RECHARGE_MAX_FAILURES` failures in a row."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="auto_recharge")
    enabled = models.BooleanField(default=False)
    threshold_credits = PreciseDecimalField(default=Decimal(0))
    amount_usd = PreciseDecimalField(default=Decimal(0))
    stripe_payment_method_id = models.CharField(max_length=255, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.CharField(max_length=500, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold_credits__gte=0) & Q(amount_usd__gte=0), name="auto_recharge_not_negative"
            )
        ]

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"auto-recharge {state} for {self.account_id}: {self.amount_usd} USD below {self.threshold_credits}"


class StripeEvent(models.Model):
    """The webhook inbox: each Stripe event once (unique event id), stored before it is processed."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSING = "processing"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        IGNORED = "ignored"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    api_version = models.CharField(max_length=50, blank=True)
    livemode = models.BooleanField(default=False)
    object_id = models.CharField(max_length=255, blank=True, db_index=True, help_text="data.object.id")
    stripe_created_at = models.DateTimeField(help_text="when Stripe created the event")
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    outcome = models.CharField(max_length=500, blank=True, help_text="what processing did")
    received_at = models.DateTimeField(db_index=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "Stripe event"

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class OverageBilling(models.Model):
    """The cursor of one period's overage through Stripe, so a retried job or a crash between steps never bills
    twice: each step is keyed (`overage-item:<invoice id>`, ...) and recorded here before the next one starts.

    `renewal_cents` is overage already put on a subscription's renewal invoice by `invoice.upcoming`; the close
    bills only what is left.
    """

    class Step(models.TextChoices):
        PENDING = "pending"
        ITEM_CREATED = "item_created"
        INVOICE_CREATED = "invoice_created"
        FINALIZED = "finalized"
        PAID = "paid"
        PAYMENT_FAILED = "payment_failed"
        NOTHING_DUE = "nothing_due"

    period = models.OneToOneField(BillingPeriod, on_delete=models.PROTECT, related_name="overage_billing")
    invoice = models.OneToOneField(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="overage_billing"
    )
    step = models.CharField(max_length=20, choices=Step.choices, default=Step.PENDING, db_index=True)
    renewal_cents = models.BigIntegerField(default=0)
    renewal_item_id = models.CharField(max_length=255, blank=True)
    amount_cents = models.BigIntegerField(default=0, help_text="billed at the close, after any renewal part")
    description = models.CharField(max_length=500, blank=True)
    stripe_invoice_item_id = models.CharField(max_length=255, blank=True)
    stripe_invoice_id = models.CharField(max_length=255, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"overage of period {self.period_id}: {self.step}"
