"""Upstreams in the console: staff set a provider's base URL, key and models. The key is written once and never
shown again (the form has a password field that renders empty; left empty on an edit, the stored key stays)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from gateway.models import Upstream
from gateway.services import upstream_save


class UpstreamForm(forms.ModelForm):
    base_url = forms.URLField(
        max_length=500, assume_scheme="https", help_text=Upstream._meta.get_field("base_url").help_text
    )
    api_key = forms.CharField(
        label="Provider API key", required=False, strip=True, max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="stored encrypted and never shown again; leave empty to keep the stored key",
    )  # fmt: skip

    class Meta:
        model = Upstream
        fields = ["name", "kind", "base_url", "api_key", "model_patterns", "priority", "timeout_seconds",
                  "connect_retries", "is_active"]  # fmt: skip

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("api_key") and not self.instance.api_key_encrypted:
            self.add_error("api_key", "A new upstream needs its provider API key.")
        return cleaned


@admin.register(Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    form = UpstreamForm
    list_display = ["name", "kind", "base_url", "model_patterns", "priority", "key_hint", "is_active", "updated_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "base_url", "model_patterns"]
    readonly_fields = ["key_hint", "created_at", "updated_at"]

    @admin.display(description="key")
    def key_hint(self, obj: Upstream) -> str:
        return f"…{obj.api_key_hint}" if obj.api_key_hint else "set" if obj.api_key_encrypted else "—"

    def save_model(self, request: HttpRequest, obj: Upstream, form: Any, change: bool) -> None:
        upstream_save(upstream=obj, api_key=form.cleaned_data.get("api_key") or None)
