"""Members: who belongs to the account with which role; owners remove people (never the last owner)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.models import Membership
from billing.services.accounts import member_remove
from dashboard.selectors import account_members
from dashboard.views.access import (
    SERVICE_ERRORS,
    AccountContext,
    client_ip,
    dashboard_view,
    error_message,
    page_context,
)


def _members_page(request: HttpRequest, context: AccountContext, *, error: str = "", status: int = 200) -> HttpResponse:
    values = {"members": account_members(account=context.account), "error": error}
    return render(request, "dashboard/members.html", page_context(context, "members", **values), status=status)


@require_GET
@dashboard_view()
def members(request: HttpRequest, context: AccountContext) -> HttpResponse:
    return _members_page(request, context)


@require_POST
@dashboard_view(owner=True)
def member_remove_view(request: HttpRequest, context: AccountContext, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id,
                                   account_id=context.account.pk)  # fmt: skip
    try:
        member_remove(membership=membership, actor=request.user, ip=client_ip(request))
    except SERVICE_ERRORS as exc:
        return _members_page(request, context, error=error_message(exc), status=400)
    if membership.user_id == request.user.pk:
        messages.success(request, f"You left {context.account.name}.")
        return redirect("dashboard-balance")
    messages.success(request, f"{membership.user.get_username()} no longer has access to {context.account.name}.")
    return redirect("dashboard-members")
