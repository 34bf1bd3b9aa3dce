"""Credit wallets, their ledger and the credit grants behind it."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models.accounts import Account
from pricing.fields import PreciseDecimalField


class Wallet(models.Model):
    """An account's credits. `balance` is the sum of the ledger; `held` is what open reservations hold."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="wallet")
    balance = PreciseDecimalField(default=Decimal(0))
    held = PreciseDecimalField(default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(held__gte=0), name="wallet_held_not_negative")]

    def __str__(self) -> str:
        return f"wallet of {self.account}: {self.balance} credits"

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


class LedgerEntry(models.Model):
    """One movement of credits. Append-only; the same (wallet, kind, reference) can never post twice."""

    class Kind(models.TextChoices):
        TOPUP = "topup"
        GRANT = "grant"
        USAGE = "usage"
        REFUND = "refund"
        EXPIRY = "expiry"
        ADJUSTMENT = "adjustment"

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    credits = PreciseDecimalField(help_text="signed: positive adds credits, negative takes them")
    usd_amount = PreciseDecimalField(default=Decimal(0))
    rate = PreciseDecimalField(null=True, blank=True, help_text="credits per USD used for this entry")
    reference = models.CharField(max_length=200)
    balance_after = PreciseDecimalField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["wallet", "kind", "reference"], name="ledger_reference_unique_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.credits:+} ({self.reference})"


class CreditGrant(models.Model):
    """Credits that expire. Spending uses the soonest-expiring grants first; the unspent rest leaves by expiry."""

    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="grants")
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="grant")
    credits = PreciseDecimalField()
    remaining = PreciseDecimalField()
    expires_at = models.DateTimeField(db_index=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["expires_at", "id"]
        constraints = [models.CheckConstraint(condition=Q(remaining__gte=0), name="grant_remaining_not_negative")]

    def __str__(self) -> str:
        return f"{self.remaining}/{self.credits} credits until {self.expires_at:%Y-%m-%d}"
