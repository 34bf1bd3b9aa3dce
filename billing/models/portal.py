"""One-time links that sign a customer's owner into the dashboard."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from billing.models.accounts import Account
from billing.models.keys import ServerKey


class PortalSession(models.Model):
    """A one-time link that signs a customer's owner into the dashboard: single use, short-lived, kept hashed."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="portal_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    return_url = models.URLField(max_length=2000, blank=True)
    created_by_key = models.ForeignKey(
        ServerKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="portal_sessions"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"portal session #{self.pk} for {self.account_id} (until {self.expires_at:%H:%M})"
