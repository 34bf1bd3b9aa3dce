"""Accounts (the tenant that is billed) and their members."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from pricing.fields import PreciseDecimalField


class Account(models.Model):
    """The tenant that is billed: a shop, a team."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    name = models.CharField(max_length=200)
    external_id = models.CharField(
        max_length=128, null=True, blank=True, unique=True, help_text="the reseller's own id of this customer"
    )
    metadata = models.JSONField(default=dict, blank=True, help_text="the reseller's own data (an object, <= 4 KB)")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    display_currency = models.CharField(max_length=10, default="USD")
    low_balance_threshold = PreciseDecimalField(default=Decimal(0), help_text="credits; 0 turns the warning off")
    alert_webhook_url = models.URLField(blank=True)
    alert_webhook_secret = models.CharField(max_length=100, blank=True)
    stripe_customer_id = models.CharField(max_length=100, blank=True, db_index=True)
    provider_project_ids = models.JSONField(
        default=list, blank=True, help_text="provider project ids, for reconciliation"
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="billing_accounts")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        VIEWER = "viewer"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.account}"
