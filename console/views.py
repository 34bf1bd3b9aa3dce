"""The console's pages inside the Django admin (staff only: every view is wrapped by the admin site's admin_view).

Views parse the query, call the console's selectors and hand Decimals to the templates, which round each shown
figure once with the `money` filter.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from billing.admin.account_pages import AccountPages
from billing.models import Account
from console import overview
from console.charts import figures_chart, revenue_chart
from console.customer import customer_360
from console.health import health_checks
from console.overview import Window

HOME_TOP = 5
RANGE_CHOICES = ", ".join(window.value for window in Window)


def _page(request: HttpRequest, template: str, *, title: str, status: int = 200, **context: Any) -> TemplateResponse:
    return TemplateResponse(
        request, template, {**admin.site.each_context(request), "title": title, **context}, status=status
    )


def _bad_request(request: HttpRequest, message: str) -> TemplateResponse:
    return _page(request, "console/bad_request.html", title="Bad request", status=400, message=message)


def home_context() -> dict[str, Any]:
    """What the console home (the admin index) shows above the app list: the headline, billing, health."""
    now = timezone.now()
    recent = overview.breakdown(Window.PERIOD, now=now)
    return {
        "console_headline": overview.headline(now=now),
        "console_billed": overview.billed(now=now),
        "console_health": health_checks(now=now),
        "console_chart": figures_chart(recent.by_day[-31:], title="This period by day: revenue, cost and margin"),
        "console_top": recent.by_customer[:HOME_TOP],
    }


def overview_view(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("range", Window.PERIOD.value)
    try:
        window = Window(raw)
    except ValueError:
        return _bad_request(request, f"Unknown range {raw[:40]!r}: choose one of {RANGE_CHOICES}.")
    now = timezone.now()
    board = overview.breakdown(window, now=now)
    unit = "month" if window is Window.YEAR else "day"
    return _page(
        request,
        "console/overview.html",
        title=f"Overview: {window.label.lower()}",
        window=window,
        windows=list(Window),
        board=board,
        top=overview.top_customers(board, now=now),
        year_start=overview.year_start(now),
        day_chart=figures_chart(board.by_day, title=f"Revenue, cost and margin by {unit}"),
        model_chart=revenue_chart(board.by_model, title="Revenue by model"),
        plan_chart=revenue_chart(board.by_plan, title="Revenue by plan"),
        customer_chart=revenue_chart(board.by_customer, title="Revenue by customer"),
    )


def customer_view(request: HttpRequest, account_id: int) -> HttpResponse:
    account = Account.objects.filter(pk=account_id).first()
    if account is None:
        raise Http404("No such account.")
    view = customer_360(account=account, now=timezone.now())
    accounts = admin.site.get_model_admin(Account)
    assert isinstance(accounts, AccountPages)  # billing's account admin: its buttons are the 360's actions
    return _page(
        request,
        "console/customer.html",
        title=f"Customer 360: {account.name}",
        customer=view,
        chart=figures_chart(view.daily, title="Last 30 days: revenue, cost and margin by day"),
        can_issue_key=accounts.has_issue_key_permission(request),
        can_add_member=accounts.has_add_member_permission(request),
        can_adjust_credits=accounts.has_adjust_credits_permission(request),
        can_change_plan=accounts.has_change_plan_permission(request),
        can_set_status=accounts.has_set_status_permission(request),
    )
