"""The catalog audit log in the console: read-only, the record of every catalog write."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.utils.html import format_html

from core.admin_base import ViewOnlyAdmin
from pricing.models import CatalogAudit


@admin.register(CatalogAudit)
class CatalogAuditAdmin(ViewOnlyAdmin):
    """Read-only: the record of every catalog write."""

    list_display = ("at", "actor", "action", "object_type", "object_key", "reason")
    list_filter = ("action", "object_type")
    search_fields = ("object_key", "reason")
    date_hierarchy = "at"
    fields = ("at", "actor", "action", "object_type", "object_key", "reason", "before_values", "after_values")
    readonly_fields = fields
    list_select_related = ("actor",)

    @admin.display(description="Before")
    def before_values(self, entry: CatalogAudit) -> str:
        return self._json(entry.before)

    @admin.display(description="After")
    def after_values(self, entry: CatalogAudit) -> str:
        return self._json(entry.after)

    def _json(self, value: Any) -> str:
        if value is None:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))
