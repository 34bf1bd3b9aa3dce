"""The billing audit log in the console: read-only."""

from __future__ import annotations

from django.contrib import admin
from django.utils.safestring import SafeString

from billing.admin.base import admin_link
from billing.models import AuditEntry
from core.admin_base import ViewOnlyAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(ViewOnlyAdmin):
    list_display = fields = readonly_fields = (
        "at", "action", "account_link", "actor", "via", "ip", "object_type", "object_key", "before", "after",
    )  # fmt: skip
    list_filter = ["action", "at"]
    list_select_related = ["account", "actor"]
    search_fields = ["account__name", "object_key"]
    search_help_text = "Account name or object key (key prefix, wallet or subscription id)."
    show_full_result_count = False

    @admin.display(description="account", ordering="account__name")
    def account_link(self, entry: AuditEntry) -> str | SafeString:
        return admin_link(entry.account)
