"""The dashboard's pages not yet in a module of their own (being split by subject)."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.models import ApiKey
from billing.services.accounts import account_settings_update
from billing.services.api_keys import api_key_issue, api_key_revoke
from dashboard.forms import (
    AlertSettingsForm,
    ApiKeyForm,
)
from dashboard.selectors import (
    account_api_keys,
    recent_alerts,
)
from dashboard.views.access import (
    SERVICE_ERRORS,
    AccountContext,
    client_ip,
    dashboard_view,
    error_message,
    page_context,
)
from usage.services.alerts import alert_recipients, alert_test_send

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
