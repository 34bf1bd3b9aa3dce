"""Alerts: what was sent and to whom, the alert settings, the owner's extra alert lines, a test alert."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.services.accounts import account_settings_update
from dashboard.forms import AlertSettingsForm, AlertThresholdForm
from dashboard.selectors import recent_alerts
from dashboard.views.access import (
    SERVICE_ERRORS,
    AccountContext,
    client_ip,
    dashboard_view,
    error_message,
    page_context,
)
from usage.models import AlertThreshold
from usage.services.alerts import (
    AlertThresholdRefused,
    alert_lines_changed,
    alert_recipients,
    alert_test_send,
    alert_threshold_add,
    alert_threshold_remove,
)


def _alerts_page(
    request: HttpRequest, context: AccountContext, *, form: AlertSettingsForm | None = None, error: str = "",
    line_form: AlertThresholdForm | None = None, status: int = 200,
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
        "lines": AlertThreshold.objects.filter(account=account),
        "line_form": line_form or AlertThresholdForm(),
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
    alert_lines_changed(account=context.account)
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


@require_POST
@dashboard_view(write=True)
def alert_line_add(request: HttpRequest, context: AccountContext) -> HttpResponse:
    form = AlertThresholdForm(request.POST)
    if not form.is_valid():
        return _alerts_page(request, context, line_form=form, status=400)
    try:
        added = alert_threshold_add(
            account=context.account, kind=form.cleaned_data["kind"], amount=form.cleaned_data["amount"]
        )
    except AlertThresholdRefused as exc:
        return _alerts_page(request, context, line_form=form, error=exc.message, status=400)
    messages.success(request, "Alert line added." if added else "That alert line was already set.")
    return redirect("dashboard-alerts")


@require_POST
@dashboard_view(write=True)
def alert_line_remove(request: HttpRequest, context: AccountContext, line_id: int) -> HttpResponse:
    if not alert_threshold_remove(account=context.account, threshold_id=line_id):
        raise Http404("no such alert line")
    messages.success(request, "Alert line removed.")
    return redirect("dashboard-alerts")
