"""What the billing console pages share: the refusal message, the actor's IP, links between pages, the
read-only inlines and the redirect to an operation page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from billing.errors import BillingError
from pricing.errors import PricingError

# The wallet page lists this many of the newest ledger entries and links to the full, filterable list.
LEDGER_INLINE_LIMIT = 50
OPERATION_TEMPLATE = "admin/billing/operation_form.html"
API_KEY_TEMPLATE = "admin/billing/api_key_issued.html"

Refusal = BillingError | PricingError


def refusal_message(exc: Refusal) -> str:
    return exc.message or exc.code


def admin_link(obj: Model | None, text: object = None) -> str | SafeString:
    if obj is None:
        return "-"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def related_or_none(obj: Model, name: str) -> Any:
    """A reverse one-to-one (an account's wallet or subscription), or None where it does not exist."""
    try:
        return getattr(obj, name)
    except ObjectDoesNotExist:
        return None


class NewestOnlyFormSet(BaseInlineFormSet):
    """An inline that shows only the first `LEDGER_INLINE_LIMIT` rows of its (ordered) queryset."""

    def get_queryset(self) -> Any:
        if not hasattr(self, "_limited_queryset"):
            self._limited_queryset = super().get_queryset()[:LEDGER_INLINE_LIMIT]
        return self._limited_queryset


def redirect_with_ids(url_name: str, ids: Iterable[int]) -> HttpResponseRedirect:
    """To an operation page for these accounts: the ids travel in the URL, so the page can be reloaded."""
    query = urlencode({"ids": ",".join(str(pk) for pk in ids)})
    return HttpResponseRedirect(f"{reverse(url_name)}?{query}")
