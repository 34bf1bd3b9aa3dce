"""Top-ups: buying credits through Stripe Checkout, the auto-recharge standing order, Checkout's return pages."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.models import TopUp
from billing.services.local_checkout import local_checkout_available, local_topup_pay
from billing.services.topups import auto_recharge_configure, topup_create
from billing.stripe_conf import NOT_CONFIGURED_MESSAGE, stripe_settings
from dashboard.forms import (
    AutoRechargeForm,
    TopUpForm,
)
from dashboard.selectors import (
    account_auto_recharge,
    account_topups,
    topup_for_session,
)
from dashboard.views.access import (
    SERVICE_ERRORS,
    AccountContext,
    dashboard_view,
    error_message,
    page_context,
)
from pricing.errors import PricingError
from pricing.money import CREDITS
from pricing.selectors import catalog_snapshot


def _topup_page(
    request: HttpRequest, context: AccountContext, *, form: TopUpForm | None = None,
    recharge_form: AutoRechargeForm | None = None, error: str = "", status: int = 200,
) -> HttpResponse:  # fmt: skip
    account = context.account
    now = timezone.now()
    conf = stripe_settings()
    try:
        rate: Decimal | None = catalog_snapshot().rate_at(CREDITS, now).rate
    except PricingError:
        rate = None
    packs = [(amount, amount * rate if rate else None) for amount in conf.topup_packs_usd]
    recharge = account_auto_recharge(account=account)
    if recharge_form is None:
        threshold = recharge.threshold_credits if recharge else account.low_balance_threshold
        # a new standing order suggests the first pack (or the minimum) as the amount to charge
        amount = recharge.amount_usd if recharge and recharge.amount_usd else min(conf.topup_packs_usd, default=None)
        recharge_form = AutoRechargeForm(
            initial={
                "enabled": recharge.enabled if recharge else False,
                "threshold_credits": threshold.quantize(Decimal(1)),
                "amount_usd": amount or conf.topup_min_usd,
            }
        )
    topups = account_topups(account=account)
    values = {
        "packs": packs,
        "rate": rate,
        "form": form or TopUpForm(),
        "recharge_form": recharge_form,
        "recharge": recharge,
        "pending": [t for t in topups if t.status == TopUp.Status.PENDING],
        "topups": topups,
        "topup_min": conf.topup_min_usd,
        "topup_max": conf.topup_max_usd,
        "error": error,
        "local_checkout": local_checkout_available(),
    }
    return render(request, "dashboard/topup.html", page_context(context, "topup", **values), status=status)


@transaction.non_atomic_requests
@require_http_methods(["GET", "POST"])
@dashboard_view(write=True)
def topup(request: HttpRequest, context: AccountContext) -> HttpResponse:
    if request.method != "POST":
        return _topup_page(request, context)
    form = TopUpForm(request.POST)
    if not stripe_settings().enabled:
        return _topup_page(request, context, form=form, error=NOT_CONFIGURED_MESSAGE, status=503)
    if not form.is_valid():
        return _topup_page(request, context, form=form, status=400)
    try:
        started = topup_create(
            account=context.account,
            amount_usd=form.cleaned_data["amount_usd"],
            save_payment_method=form.cleaned_data["save_payment_method"],
            actor=request.user,
        )
    except SERVICE_ERRORS as exc:
        return _topup_page(request, context, form=form, error=error_message(exc), status=400)
    if started.checkout_url:
        return HttpResponseRedirect(started.checkout_url)
    messages.warning(request, "The top-up was created but Stripe gave no payment page; try again later.")
    return redirect("dashboard-topup")


@transaction.non_atomic_requests
@require_POST
@dashboard_view(write=True)
def topup_test_checkout(request: HttpRequest, context: AccountContext) -> HttpResponse:
    """The demo's TEST checkout (billing/services/local_checkout.py): DEBUG on and no Stripe, else not found."""
    if not local_checkout_available():
        raise Http404("no TEST checkout here")
    form = TopUpForm(request.POST)
    if not form.is_valid():
        return _topup_page(request, context, form=form, status=400)
    try:
        topup = local_topup_pay(account=context.account, amount_usd=form.cleaned_data["amount_usd"], actor=request.user)
    except SERVICE_ERRORS as exc:
        return _topup_page(request, context, form=form, error=error_message(exc), status=400)
    return redirect(f"{reverse('dashboard-topup-success')}?session_id={topup.stripe_checkout_session_id}")


@transaction.non_atomic_requests
@require_POST
@dashboard_view(write=True)
def auto_recharge(request: HttpRequest, context: AccountContext) -> HttpResponse:
    form = AutoRechargeForm(request.POST)
    if not form.is_valid():
        return _topup_page(request, context, recharge_form=form, status=400)
    try:
        auto_recharge_configure(
            account=context.account,
            enabled=form.cleaned_data["enabled"],
            threshold_credits=form.cleaned_data["threshold_credits"],
            amount_usd=form.cleaned_data["amount_usd"],
            actor=request.user,
        )
    except SERVICE_ERRORS as exc:
        return _topup_page(request, context, recharge_form=form, error=error_message(exc), status=400)
    messages.success(request, "Auto-recharge saved.")
    return redirect("dashboard-topup")


@require_GET
@dashboard_view()
def topup_success(request: HttpRequest, context: AccountContext) -> HttpResponse:
    found = topup_for_session(account=context.account, session_id=request.GET.get("session_id", "")[:255])
    return render(request, "dashboard/topup_done.html", page_context(context, "topup", outcome="success", topup=found))


@require_GET
@dashboard_view()
def topup_canceled(request: HttpRequest, context: AccountContext) -> HttpResponse:
    return render(request, "dashboard/topup_done.html", page_context(context, "topup", outcome="canceled", topup=None))
