"""API keys: issuing (the secret shown once, in this response only) and revoking."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from billing.models import ApiKey
from billing.services.api_keys import api_key_issue, api_key_revoke
from dashboard.forms import ApiKeyForm
from dashboard.selectors import account_api_keys
from dashboard.views.access import (
    AccountContext,
    client_ip,
    dashboard_view,
    page_context,
)


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
