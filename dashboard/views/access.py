"""The account dashboard: server-rendered pages for an account's people.

Every view finds the account through the signed-in user's membership (the current one is kept in the session and
chosen with the account switcher); owners and admins may write, viewers read. Writes go through the billing and
usage services with the user as actor and their IP; a refusal's message is shown next to the form. Views that call
Stripe run outside the request transaction, because the services commit the local row that keys the Stripe call
before making it.

This module: the account a request is about, the decorator every page uses, the account switcher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, Concatenate, ParamSpec

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from billing import stripe_gateway as gateway
from billing.errors import BillingError
from billing.models import Account, Membership
from billing.stripe_conf import NOT_CONFIGURED_MESSAGE, stripe_settings
from dashboard.forms import AccountSwitchForm
from dashboard.selectors import (
    WRITE_ROLES,
    user_memberships,
)
from pricing.errors import PricingError

SESSION_ACCOUNT = "dashboard_account_id"
# the errors a write may meet, each carrying a message meant for the person who asked
SERVICE_ERRORS = (BillingError, PricingError, gateway.StripeGatewayError)

P = ParamSpec("P")


@dataclass(frozen=True)
class AccountContext:
    """The account the request is about, through the user's membership of it."""

    membership: Membership
    memberships: list[Membership]

    @property
    def account(self) -> Account:
        return self.membership.account

    @property
    def role(self) -> str:
        return self.membership.role

    @property
    def can_write(self) -> bool:
        return self.membership.role in WRITE_ROLES

    @property
    def is_owner(self) -> bool:
        return self.membership.role == Membership.Role.OWNER


View = Callable[Concatenate[HttpRequest, AccountContext, P], HttpResponseBase]


def account_context(request: HttpRequest) -> AccountContext | None:
    memberships = user_memberships(user=request.user)  # type: ignore[arg-type]
    if not memberships:
        return None
    wanted = request.session.get(SESSION_ACCOUNT)
    # a membership removed since it was chosen falls back to the first account the user still belongs to
    chosen = next((m for m in memberships if m.account_id == wanted), memberships[0])
    return AccountContext(membership=chosen, memberships=memberships)


def dashboard_view(*, write: bool = False, owner: bool = False) -> Callable[[View[P]], Callable[..., HttpResponseBase]]:
    """Sign-in required; the view gets the account context. `write`: a POST needs an owner or admin (403 else).
    `owner`: every request needs an owner of the account (403 else): members and what the account's charges are
    made of are the owner's business."""

    def decorate(view: View[P]) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
            context = account_context(request)
            if context is None:
                return render(request, "dashboard/no_account.html", status=403)
            if write and request.method == "POST" and not context.can_write:
                return forbidden(request, context)
            if owner and not context.is_owner:
                return forbidden(request, context, owners_only=True)
            return view(request, context, *args, **kwargs)

        return login_required(wrapper)

    return decorate


def forbidden(request: HttpRequest, context: AccountContext, *, owners_only: bool = False) -> HttpResponse:
    values = page_context(context, "forbidden", role=context.role, owners_only=owners_only)
    return render(request, "dashboard/forbidden.html", values, status=403)


def page_context(context: AccountContext, section: str, **values: Any) -> dict[str, Any]:
    conf = stripe_settings()
    return {
        "account": context.account,
        "membership": context.membership,
        "memberships": context.memberships,
        "can_write": context.can_write,
        "is_owner": context.is_owner,
        "section": section,
        "stripe_enabled": conf.enabled,
        "stripe_message": NOT_CONFIGURED_MESSAGE,
        **values,
    }


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def error_message(exc: Exception) -> str:
    if isinstance(exc, gateway.StripeNotConfigured):
        return NOT_CONFIGURED_MESSAGE
    if isinstance(exc, gateway.CardDeclined):
        return f"The card was declined: {exc}"
    if isinstance(exc, gateway.StripeTransientError):
        return f"Stripe did not answer; try again in a moment. ({exc})"
    if isinstance(exc, gateway.StripeGatewayError):
        return f"Stripe refused the request: {exc}"
    return str(getattr(exc, "message", exc))


@require_POST
@dashboard_view()
def account_switch(request: HttpRequest, context: AccountContext) -> HttpResponse:
    form = AccountSwitchForm(request.POST)
    if not form.is_valid():
        raise Http404("no such account")
    chosen = next((m for m in context.memberships if m.account_id == form.cleaned_data["account"]), None)
    if chosen is None:
        raise Http404("no such account")  # not a member: the account is not there for this user
    request.session[SESSION_ACCOUNT] = chosen.account_id
    target = request.POST.get("next") or reverse("dashboard-balance")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        target = reverse("dashboard-balance")
    return HttpResponseRedirect(target)
