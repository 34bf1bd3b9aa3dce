"""The keys that call the API: an account's API keys and the reseller's server keys, kept hashed."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from billing.models.accounts import Account


class SecretKeyFields(models.Model):
    """What every key TokenLedger issues keeps: the prefix it is found by, the SHA-256 of the whole key (shown
    once), who made it, when it was last used and when it was revoked."""

    prefix = models.CharField(max_length=32, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ApiKey(SecretKeyFields):
    """`tl_<prefix>_<secret>`: the whole key is shown once; only its SHA-256 is kept, found by the prefix."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"tl_{self.prefix}_… ({self.account})"


class ServerKey(SecretKeyFields):
    """`tls_<prefix>_<secret>`: the reseller's backend acting for any of its customers, within its scopes.

    Shown once, kept as a SHA-256 hash, found by the prefix, revocable. Not tied to an account.
    """

    class Scope(models.TextChoices):
        CUSTOMERS = "customers", "customers: manage customers, their keys, credits, plans and portal sessions"
        USAGE = "usage", "usage: authorize, record, release and estimate for any customer"
        READ = "read", "read: balances, usage, stats and invoices of any customer"

    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=list, help_text="a list of customers, usage, read")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "server key"

    def __str__(self) -> str:
        return f"tls_{self.prefix}_… ({self.name})"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes
