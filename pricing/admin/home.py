"""The console home: the stock admin index with the pricing summary cards."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from pricing import console
from pricing.models import AIModel


def _with_pricing_summary(index: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The admin home with the pricing cards: the stock index view with the catalog summary in its context."""

    @functools.wraps(index)
    def view(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = dict(extra_context or {})
        models = admin.site.get_model_admin(AIModel)
        if models.has_view_permission(request):
            context["pricing_cards"] = console.summary_cards(console.catalog_summary())
            context["pricing_can_flush"] = models.has_change_permission(request)
        return index(request, extra_context=context)

    return view


# The default site is shared by every app; only its index view is wrapped, before its URLs are built.
admin.site.index = _with_pricing_summary(admin.site.index)  # type: ignore[method-assign, assignment]
