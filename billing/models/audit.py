"""The billing audit log: who did what to which account, from where."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from billing.models.accounts import Account


class AuditEntry(models.Model):
    """Who did what to an account: key issued or revoked, manual adjustment, plan change, suspension."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries")
    action = models.CharField(max_length=100, db_index=True)
    via = models.CharField(max_length=200, blank=True, help_text="the credential behind the change, e.g. a server key")
    object_type = models.CharField(max_length=100)
    object_key = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_key}"
