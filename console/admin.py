"""The console's pages join the default admin site: its URLs under /admin/console/ and its figures on the admin
home. The site is shared by every app, so its URL list and index view are wrapped, not replaced (pricing wraps the
index too; each wrapper adds its own context). The catalog forms' change previews are drawn here too."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path, reverse

from console import preview_drawing, views
from pricing.admin.previews import FEATURE_COST, MODEL_PRICE, PLAN_TERMS, change_preview_register


def _with_console_urls(get_urls: Callable[[], list[URLPattern | URLResolver]]) -> Callable[[], list[Any]]:
    @functools.wraps(get_urls)
    def urls() -> list[URLPattern | URLResolver]:
        view = admin.site.admin_view
        own = [
            path("console/", view(views.overview_view), name="console_overview"),
            path("console/customers/<int:account_id>/", view(views.customer_view), name="console_customer"),
        ]
        return own + get_urls()

    return urls


def _with_console_home(index: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The admin home with the console's headline, billing check and health above the app list."""

    @functools.wraps(index)
    def view(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {**views.home_context(), **(extra_context or {})}
        return index(request, extra_context=context)

    return view


def _with_console_section(get_app_list: Callable[..., list[dict[str, Any]]]) -> Callable[..., list[dict[str, Any]]]:
    """The app list (home and sidebar) opens with a Console section linking the overview, for staff."""

    @functools.wraps(get_app_list)
    def app_list(request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = get_app_list(request, app_label)
        if app_label is not None or not request.user.is_staff:
            return apps
        url = reverse("admin:console_overview")
        overview = {"model": None, "name": "Overview: revenue, margin, customers", "object_name": "Overview",
                    "perms": {"view": True}, "admin_url": url, "add_url": None, "view_only": True}  # fmt: skip
        section = {"name": "Console", "app_label": "console", "app_url": url, "has_module_perms": True,
                   "models": [overview]}  # fmt: skip
        return [section, *apps]

    return app_list


admin.site.get_app_list = _with_console_section(admin.site.get_app_list)  # type: ignore[method-assign]
admin.site.get_urls = _with_console_urls(admin.site.get_urls)  # type: ignore[method-assign]
admin.site.index = _with_console_home(admin.site.index)  # type: ignore[method-assign, assignment]

change_preview_register(MODEL_PRICE, preview_drawing.model_price)
change_preview_register(FEATURE_COST, preview_drawing.feature_cost)
change_preview_register(PLAN_TERMS, preview_drawing.plan_terms)
