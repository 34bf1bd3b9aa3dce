"""Plans: the public plans side by side, subscribing and cancelling through Stripe."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from billing.models import Subscription
from billing.services.periods import plan_by_code
from billing.services.subscriptions_stripe import subscription_stripe_cancel, subscription_stripe_subscribe
from billing.stripe_conf import NOT_CONFIGURED_MESSAGE, stripe_settings
from dashboard.forms import (
    PlanCancelForm,
    PlanChangeForm,
)
from dashboard.selectors import (
    account_subscription,
    public_plan_terms,
)
from dashboard.views.access import (
    SERVICE_ERRORS,
    AccountContext,
    client_ip,
    dashboard_view,
    error_message,
    page_context,
)
from pricing.catalog import PlanTermsVersion
from pricing.errors import PricingError
from pricing.selectors import catalog_snapshot

FAMILY_ORDER = {"credits": 0, "messages": 1, "tokens": 2}


@dataclass(frozen=True)
class PlanRow:
    code: str
    name: str
    terms: PlanTermsVersion
    current: bool
    pending: bool
    sold_online: bool  # has a Stripe price
    yearly: bool

    def order(self) -> tuple[object, ...]:
        """Families in a fixed order; within one, the smallest allowance first and unlimited plans last."""
        t = self.terms
        return (FAMILY_ORDER.get(t.family, 9), t.family, t.included_units is None, t.included_units or 0,
                t.requests_per_hour or 0, t.fee, self.code)  # fmt: skip


def _plans_page(request: HttpRequest, context: AccountContext, *, error: str = "", status: int = 200) -> HttpResponse:
    now = timezone.now()
    snapshot = catalog_snapshot()
    subscription = account_subscription(account=context.account)
    live = bool(
        subscription and subscription.stripe_subscription_id and subscription.status != Subscription.Status.CANCELED
    )
    rows = []
    for code, name, terms in public_plan_terms(snapshot=snapshot, at=now):
        entry = snapshot.plan(code)
        rows.append(
            PlanRow(
                code=code,
                name=name,
                terms=terms,
                current=bool(subscription and subscription.plan.code == code),
                pending=bool(subscription and subscription.pending_plan and subscription.pending_plan.code == code),
                sold_online=bool(entry.stripe_price_monthly),
                yearly=bool(entry.stripe_price_yearly),
            )
        )
    rows.sort(key=PlanRow.order)
    values = {"plans": rows, "subscription": subscription, "live_subscription": live, "error": error}
    return render(request, "dashboard/plans.html", page_context(context, "plans", **values), status=status)


@require_GET
@dashboard_view()
def plans(request: HttpRequest, context: AccountContext) -> HttpResponse:
    return _plans_page(request, context)


@transaction.non_atomic_requests
@require_POST
@dashboard_view(write=True)
def plan_subscribe(request: HttpRequest, context: AccountContext) -> HttpResponse:
    if not stripe_settings().enabled:
        return _plans_page(request, context, error=NOT_CONFIGURED_MESSAGE, status=503)
    form = PlanChangeForm(request.POST)
    if not form.is_valid():
        return _plans_page(request, context, error="Choose a plan.", status=400)
    public = {code for code, _, _ in public_plan_terms(snapshot=catalog_snapshot(), at=timezone.now())}
    try:
        if form.cleaned_data["plan"] not in public:
            raise PricingError(f"unknown plan {form.cleaned_data['plan']!r}")
        plan = plan_by_code(form.cleaned_data["plan"])
        result = subscription_stripe_subscribe(
            account=context.account, plan=plan, interval=form.cleaned_data["interval"], actor=request.user,
            ip=client_ip(request),
        )  # fmt: skip
    except SERVICE_ERRORS as exc:
        return _plans_page(request, context, error=error_message(exc), status=400)
    if result.action == "checkout" and result.checkout_url:
        return HttpResponseRedirect(result.checkout_url)
    messages.success(request, f"Stripe is moving your subscription to {plan.name}; this page shows it once confirmed.")
    return redirect("dashboard-plans")


@transaction.non_atomic_requests
@require_POST
@dashboard_view(write=True)
def plan_cancel(request: HttpRequest, context: AccountContext) -> HttpResponse:
    if not stripe_settings().enabled:
        return _plans_page(request, context, error=NOT_CONFIGURED_MESSAGE, status=503)
    form = PlanCancelForm(request.POST)
    if not form.is_valid():
        return _plans_page(request, context, error="Choose when to cancel.", status=400)
    try:
        result = subscription_stripe_cancel(
            account=context.account, at_period_end=form.cleaned_data["at_period_end"], actor=request.user,
            ip=client_ip(request),
        )  # fmt: skip
    except SERVICE_ERRORS as exc:
        return _plans_page(request, context, error=error_message(exc), status=400)
    if result.action == "cancel_scheduled":
        messages.success(request, "Your subscription ends at the end of the current period.")
    else:
        messages.success(request, "Your subscription is canceled.")
    return redirect("dashboard-plans")
