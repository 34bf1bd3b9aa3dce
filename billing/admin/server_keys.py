"""Server keys in the console: staff issue one (the whole key is shown once, on the page that answers the form),
see when each was last used, and revoke them. Every write goes through billing.services.server_keys."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from billing.errors import BillingError
from billing.models import ServerKey
from billing.services.server_keys import server_key_issue, server_key_revoke
from core.admin_base import ViewOnlyAdmin
from core.client_ip import client_ip

SERVER_KEY_FORM_TEMPLATE = "admin/billing/server_key_form.html"
SERVER_KEY_ISSUED_TEMPLATE = "admin/billing/server_key_issued.html"


class ServerKeyIssueForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="what the key is for, e.g. “production backend”")
    scopes = forms.MultipleChoiceField(
        choices=ServerKey.Scope.choices, widget=forms.CheckboxSelectMultiple, help_text="grant only what it needs"
    )


class ServerKeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "live"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ServerKey]) -> QuerySet[ServerKey]:
        if self.value() == "live":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ServerKey)
class ServerKeyAdmin(ViewOnlyAdmin):
    list_display = ["key_prefix", "name", "scope_list", "created_by", "created_at", "last_used_at", "revoked_at"]
    list_filter = [ServerKeyStateFilter, "created_at"]
    list_select_related = ["created_by"]
    search_fields = ["prefix", "name"]
    search_help_text = "Key prefix or name."
    fields = readonly_fields = (
        "key_prefix", "name", "scope_list", "created_by", "created_at", "last_used_at", "revoked_at",
    )  # fmt: skip
    actions = ["revoke_keys"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("billing.add_serverkey")

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_serverkey")

    @admin.display(description="key", ordering="prefix")
    def key_prefix(self, key: ServerKey) -> str:
        return f"tls_{key.prefix}_…"

    @admin.display(description="scopes")
    def scope_list(self, key: ServerKey) -> str:
        return ", ".join(key.scopes)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ServerKeyIssueForm(request.POST) if request.method == "POST" else ServerKeyIssueForm()
        if request.method == "POST" and form.is_valid():
            try:
                key, raw_key = server_key_issue(
                    name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], actor=request.user,
                    ip=client_ip(request),
                )  # fmt: skip
            except BillingError as exc:
                form.add_error(None, str(exc))
            else:
                self.log_addition(request, key, [{"added": {}}])
                context = {**self.admin_site.each_context(request), "opts": self.model._meta, "key": key,
                           "raw_key": raw_key, "title": "Server key issued",
                           "changelist_url": reverse("admin:billing_serverkey_changelist")}  # fmt: skip
                response = TemplateResponse(request, SERVER_KEY_ISSUED_TEMPLATE, context)
                add_never_cache_headers(response)  # the key in clear must not be kept by any cache
                return response
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": "Issue a server key"}  # fmt: skip
        return TemplateResponse(request, SERVER_KEY_FORM_TEMPLATE, context)

    @admin.action(description="Revoke selected server keys", permissions=["revoke"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ServerKey]) -> None:
        revoked = 0
        for key in queryset:
            if key.is_revoked:
                continue
            server_key_revoke(key=key, actor=request.user, ip=client_ip(request))
            revoked += 1
        messages.success(
            request, f"Revoked {revoked} server key{'s' if revoked != 1 else ''}; they get 401 from now on."
        )
