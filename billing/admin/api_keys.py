"""API keys in the console: read-only, with revocation as an action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from billing.admin.base import admin_link
from billing.models import ApiKey
from billing.services.api_keys import api_key_revoke
from core.admin_base import ViewOnlyAdmin
from core.client_ip import client_ip


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "live"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "live":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(ViewOnlyAdmin):
    list_display = ["key_prefix", "name", "account_link", "created_at", "last_used_at", "revoked_at", "created_by"]
    list_filter = [KeyStateFilter, "created_at"]
    list_select_related = ["account", "created_by"]
    search_fields = ["prefix", "name", "account__name", "account__id__exact"]
    search_help_text = "Key prefix, key name, account name or id."
    fields = readonly_fields = (
        "key_prefix",
        "name",
        "account_link",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ["revoke_keys"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_apikey")

    @admin.display(description="key", ordering="prefix")
    def key_prefix(self, key: ApiKey) -> str:
        return f"tl_{key.prefix}_…"

    @admin.display(description="account", ordering="account__name")
    def account_link(self, key: ApiKey) -> str | SafeString:
        return admin_link(key.account)

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        with transaction.atomic():
            for key in queryset.select_related("account"):
                if key.is_revoked:
                    continue
                api_key_revoke(key=key, actor=request.user, ip=client_ip(request))
                revoked += 1
        skipped = queryset.count() - revoked
        text = f"Revoked {revoked} key{'s' if revoked != 1 else ''}; they get 401 from now on."
        if skipped:
            text += f" {skipped} already revoked."
        messages.success(request, text)
