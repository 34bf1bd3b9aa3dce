"""Usage history: the account's events, filtered and paged by keyset, and their CSV download."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from billing.models import Membership
from billing.selectors import customer_api_keys
from dashboard.forms import (
    MAX_RANGE_DAYS,
    UsageFilterForm,
)
from dashboard.history import (
    Cursor,
    UsageFilter,
    spend_by_api_key,
    spend_by_user,
    usage_filter_choices,
    usage_history_csv,
    usage_history_page,
)
from dashboard.views.access import (
    AccountContext,
    dashboard_view,
    page_context,
)
from dashboard.views.balance import CHART_DAYS

HISTORY_PAGE_SIZE = 50


def _usage_filter_form(request: HttpRequest, context: AccountContext) -> UsageFilterForm:
    today = timezone.now().date()
    data = request.GET.copy()
    if "start" not in data and "end" not in data:  # first visit: the last 30 days; cleared fields stay cleared
        data["start"] = (today - timedelta(days=CHART_DAYS - 1)).isoformat()
        data["end"] = today.isoformat()
    choices = usage_filter_choices(account=context.account, since=today - timedelta(days=MAX_RANGE_DAYS))
    return UsageFilterForm(
        data, models=choices.models, operations=choices.operations, api_keys=list(_key_labels(context).items())
    )


def _key_labels(context: AccountContext) -> dict[str, str]:
    """The account's keys (revoked ones too: their usage stays) by prefix; owners and admins see their names."""
    named = context.role in (Membership.Role.OWNER, Membership.Role.ADMIN)
    return {
        key.prefix: f"{key.name} (tl_{key.prefix}…)" if named and key.name else f"tl_{key.prefix}…"
        for key in customer_api_keys(account=context.account)
    }


def _usage_filter(form: UsageFilterForm) -> UsageFilter:
    data = form.cleaned_data
    return UsageFilter(
        start=data.get("start"),
        end=data.get("end"),
        model=data.get("model") or "",
        operation=data.get("operation") or "",
        user=data.get("user") or "",
        api_key=data.get("api_key") or "",
    )


@require_GET
@dashboard_view()
def usage_history(request: HttpRequest, context: AccountContext) -> HttpResponse:
    form = _usage_filter_form(request, context)
    if not form.is_valid():
        values: dict[str, Any] = {"form": form, "page": None, "query": ""}
        return render(request, "dashboard/usage.html", page_context(context, "usage", **values), status=400)
    usage_filter = _usage_filter(form)
    page = usage_history_page(
        account=context.account,
        usage_filter=usage_filter,
        after=Cursor.decode(request.GET.get("after")),
        before=Cursor.decode(request.GET.get("before")),
        limit=HISTORY_PAGE_SIZE,
    )
    query = urlencode(
        {name: value for name, value in form.data.items() if name in form.fields}, doseq=False
    )  # the filters, for the page links and the CSV
    values = {"form": form, "page": page, "query": query, "page_size": HISTORY_PAGE_SIZE}
    return render(request, "dashboard/usage.html", page_context(context, "usage", **values))


@require_GET
@dashboard_view()
def usage_csv(request: HttpRequest, context: AccountContext) -> HttpResponseBase:
    form = _usage_filter_form(request, context)
    if not form.is_valid():
        return render(
            request, "dashboard/usage.html", page_context(context, "usage", form=form, page=None, query=""), status=400
        )
    usage_filter = _usage_filter(form)
    end = usage_filter.end or timezone.now().date()
    start = usage_filter.start or end - timedelta(days=MAX_RANGE_DAYS)  # a download covers at most a year
    usage_filter = replace(usage_filter, start=start, end=end)
    response = StreamingHttpResponse(
        usage_history_csv(account=context.account, usage_filter=usage_filter), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="usage-{context.account.pk}-{start}-{end}.csv"'
    return response


@require_GET
@dashboard_view()
def usage_by_user(request: HttpRequest, context: AccountContext) -> HttpResponse:
    """Spend per end user for the same filters as the history: a page of its own, because it reads every event of
    the range (the rollups have no user) where the history reads one page of them."""
    form = _usage_filter_form(request, context)
    if not form.is_valid():
        values: dict[str, Any] = {"form": form, "by_user": None, "query": ""}
        return render(request, "dashboard/usage_users.html", page_context(context, "usage", **values), status=400)
    usage_filter = _usage_filter(form)
    by_user = spend_by_user(account=context.account, usage_filter=replace(usage_filter, user=""))
    by_key = spend_by_api_key(account=context.account, usage_filter=replace(usage_filter, api_key=""))
    labels = _key_labels(context)
    values = {
        "form": form, "by_user": by_user, "query": _query_without(form, "user"),
        "by_key": [(row, labels.get(row.label, row.label)) for row in by_key], "key_query": _query_without(form, "api_key"),
    }  # fmt: skip
    return render(request, "dashboard/usage_users.html", page_context(context, "usage", **values))


def _query_without(form: UsageFilterForm, left_out: str) -> str:
    """The filters as a query string, but one: a breakdown's links set that one themselves."""
    return urlencode({name: value for name, value in form.data.items() if name in form.fields and name != left_out})
