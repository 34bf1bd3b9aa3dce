"""The console home: the usage reports as rows of the usage section."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

from usage.models import DailyUsage


def report_links() -> list[dict[str, str]]:
    return [
        {"name": "Report: monthly billing", "object_name": "BillingReport",
         "url": reverse("admin:usage_report_billing")},
        {"name": "Report: high-cost accounts today", "object_name": "HighCostReport",
         "url": reverse("admin:usage_report_high_cost")},
        {"name": "Report: projected month-end", "object_name": "ProjectedReport",
         "url": reverse("admin:usage_report_projected")},
    ]  # fmt: skip


def _with_report_links(get_app_list: Callable[..., list[dict[str, Any]]]) -> Callable[..., list[dict[str, Any]]]:
    """The app list with the usage reports as rows of the usage section (home page, usage page and sidebar)."""

    @functools.wraps(get_app_list)
    def wrapped(request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        app_list = get_app_list(request, app_label)
        if not admin.site.get_model_admin(DailyUsage).has_view_permission(request):
            return app_list
        for app in app_list:
            if app.get("app_label") == "usage":
                app["models"].extend(
                    {"model": None, "name": link["name"], "object_name": link["object_name"], "perms": {"view": True},
                     "admin_url": link["url"], "add_url": None, "view_only": True}
                    for link in report_links()
                )  # fmt: skip
        return app_list

    return wrapped


# The default site is shared by every app; only its app list is wrapped (pricing wraps its index view).
admin.site.get_app_list = _with_report_links(admin.site.get_app_list)  # type: ignore[method-assign]
