"""Subscriptions to a plan and the billing periods they run in."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

from billing.models.accounts import Account
from pricing.fields import PreciseDecimalField
from pricing.models import Plan, PlanTerms


class Subscription(models.Model):
    """The plan in force for an account. A plan change waits for the next period unless applied now."""

    class Status(models.TextChoices):
        TRIALING = "trialing"
        ACTIVE = "active"
        PAST_DUE = "past_due"
        CANCELED = "canceled"

    class Anchor(models.TextChoices):
        CALENDAR = "calendar", "calendar month"
        ANNIVERSARY = "anniversary", "anniversary of the start"

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    pending_plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    interval = models.CharField(max_length=10, default="month")
    period_anchor = models.CharField(max_length=20, choices=Anchor.choices, default=Anchor.CALENDAR)
    started_at = models.DateTimeField()
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True)
    stripe_subscription_id = models.CharField(max_length=100, blank=True, db_index=True)
    stripe_price_id = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return f"{self.account} on {self.plan.code} ({self.status})"


class BillingPeriod(models.Model):
    """One account's counters for one period, with the plan terms it opened with."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"
        INVOICED = "invoiced"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="periods")
    start = models.DateTimeField()
    end = models.DateTimeField(db_index=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    terms = models.ForeignKey(PlanTerms, on_delete=models.PROTECT, related_name="+")
    unit = models.CharField(max_length=20)
    included_units = PreciseDecimalField(null=True, blank=True)
    units_used = PreciseDecimalField(default=Decimal(0))
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    messages = models.BigIntegerField(default=0)
    provider_cost_usd = PreciseDecimalField(default=Decimal(0))
    charge_usd = PreciseDecimalField(default=Decimal(0))
    credits_used = PreciseDecimalField(default=Decimal(0))
    overage_units = PreciseDecimalField(default=Decimal(0))
    overage_usd = PreciseDecimalField(default=Decimal(0), help_text="accrued overage, cap applied")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.UniqueConstraint(fields=["account", "start"], name="period_unique_start"),
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="period_ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d} ({self.status})"
