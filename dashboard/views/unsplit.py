"""The dashboard's pages not yet in a module of their own (being split by subject)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.models import ApiKey
from billing.services.accounts import account_settings_update
from billing.services.api_keys import api_key_issue, api_key_revoke
from dashboard.forms import (
    MAX_RANGE_DAYS,
    AlertSettingsForm,
    ApiKeyForm,
    UsageFilterForm,
)
from dashboard.selectors import (
    Cursor,
    UsageFilter,
    account_api_keys,
    account_invoice_list,
    recent_alerts,
    usage_filter_choices,
    usage_history_csv,
    usage_history_page,
)
from dashboard.views.access import (
    SERVICE_ERRORS,
    AccountContext,
    client_ip,
    dashboard_view,
    error_message,
    page_context,
)
from dashboard.views.balance import CHART_DAYS
from pricing.money import Money
from usage.services.alerts import alert_recipients, alert_test_send

HISTORY_PAGE_SIZE = 50


# --- usage history -----------------------------------------------------------------------------------------------


def _usage_filter_form(request: HttpRequest, context: AccountContext) -> UsageFilterForm:
    today = timezone.now().date()
    data = request.GET.copy()
    if "start" not in data and "end" not in data:  # first visit: the last 30 days; cleared fields stay cleared
        data["start"] = (today - timedelta(days=CHART_DAYS - 1)).isoformat()
        data["end"] = today.isoformat()
    choices = usage_filter_choices(account=context.account, since=today - timedelta(days=MAX_RANGE_DAYS))
    return UsageFilterForm(data, models=choices.models, operations=choices.operations)


def _usage_filter(form: UsageFilterForm) -> UsageFilter:
    data = form.cleaned_data
    return UsageFilter(
        start=data.get("start"),
        end=data.get("end"),
        model=data.get("model") or "",
        operation=data.get("operation") or "",
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
    usage_filter = UsageFilter(start=start, end=end, model=usage_filter.model, operation=usage_filter.operation)
    response = StreamingHttpResponse(
        usage_history_csv(account=context.account, usage_filter=usage_filter), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="usage-{context.account.pk}-{start}-{end}.csv"'
    return response


# --- invoices ----------------------------------------------------------------------------------------------------


@require_GET
@dashboard_view()
def invoices(request: HttpRequest, context: AccountContext) -> HttpResponse:
    rows = [
        {"invoice": invoice, "amount": Money.from_minor_units(invoice.amount_cents, invoice.currency)}
        for invoice in account_invoice_list(account=context.account)
    ]
    return render(request, "dashboard/invoices.html", page_context(context, "invoices", rows=rows))


# --- API keys ----------------------------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
@dashboard_view(write=True)
def api_keys(request: HttpRequest, context: AccountContext) -> HttpResponse:
    form = ApiKeyForm(request.POST) if request.method == "POST" else ApiKeyForm()
    new_key: str = ""
    status = 200
    if request.method == "POST":
        if form.is_valid():
            _, new_key = api_key_issue(
                account=context.account, name=form.cleaned_data["name"], actor=request.user, ip=client_ip(request)
            )
            form = ApiKeyForm()
            status = 201
        else:
            status = 400
    values = {"keys": account_api_keys(account=context.account), "form": form, "new_key": new_key}
    # the new key is in this response only: never stored, never cached (never_cache), not in a redirect
    return render(request, "dashboard/keys.html", page_context(context, "keys", **values), status=status)


@require_POST
@dashboard_view(write=True)
def api_key_revoke_view(request: HttpRequest, context: AccountContext, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, account_id=context.account.pk)
    api_key_revoke(key=key, actor=request.user, ip=client_ip(request))
    messages.success(request, f"Key tl_{key.prefix}_… is revoked; requests with it are refused from now on.")
    return redirect("dashboard-keys")


# --- alerts and settings -----------------------------------------------------------------------------------------


def _alerts_page(
    request: HttpRequest, context: AccountContext, *, form: AlertSettingsForm | None = None, error: str = "",
    status: int = 200,
) -> HttpResponse:  # fmt: skip
    account = context.account
    if form is None:
        form = AlertSettingsForm(
            initial={
                "low_balance_threshold": account.low_balance_threshold.quantize(Decimal(1)),
                "alert_webhook_url": account.alert_webhook_url,
                "display_currency": account.display_currency,
            }
        )
    values = {
        "alerts": recent_alerts(account=account),
        "form": form,
        "recipients": alert_recipients(account),
        "error": error,
    }
    return render(request, "dashboard/alerts.html", page_context(context, "alerts", **values), status=status)


@require_GET
@dashboard_view()
def alerts(request: HttpRequest, context: AccountContext) -> HttpResponse:
    return _alerts_page(request, context)


@require_POST
@dashboard_view(write=True)
def alert_settings(request: HttpRequest, context: AccountContext) -> HttpResponse:
    form = AlertSettingsForm(request.POST)
    if not form.is_valid():
        return _alerts_page(request, context, form=form, status=400)
    data = form.cleaned_data
    try:
        account_settings_update(
            account=context.account, actor=request.user, ip=client_ip(request),
            rotate_webhook_secret=data["rotate_webhook_secret"], low_balance_threshold=data["low_balance_threshold"],
            alert_webhook_url=data["alert_webhook_url"], display_currency=data["display_currency"],
        )  # fmt: skip
    except SERVICE_ERRORS as exc:
        return _alerts_page(request, context, form=form, error=error_message(exc), status=400)
    messages.success(request, "Alert settings saved.")
    return redirect("dashboard-alerts")


@require_POST
@dashboard_view(write=True)
def alert_test(request: HttpRequest, context: AccountContext) -> HttpResponse:
    alert_test_send(account=context.account)
    account = context.account
    targets = [", ".join(alert_recipients(account)) or ""]
    if account.alert_webhook_url:
        targets.append(account.alert_webhook_url)
    sent_to = " and ".join(t for t in targets if t) or "nobody yet (no owner or admin email, no webhook URL)"
    messages.success(request, f"A test alert is on its way to {sent_to}.")
    return redirect("dashboard-alerts")
