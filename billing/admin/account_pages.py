"""The account operation pages of the console: create an account, adjust credits, change plan, suspend or
reactivate, issue a key, add or remove a member; each for one account or the accounts selected in the list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from billing.admin.base import API_KEY_TEMPLATE, OPERATION_TEMPLATE, refusal_message, related_or_none
from billing.errors import BillingError
from billing.forms import (
    AccountCreateForm,
    ApiKeyIssueForm,
    ConfirmForm,
    CreditAdjustmentForm,
    MemberAddForm,
    PlanChangeForm,
)
from billing.models import Account, ApiKey, Membership
from billing.services.accounts import account_create, account_set_status, member_add, member_remove
from billing.services.api_keys import api_key_issue
from billing.services.periods import subscription_change_plan
from billing.services.wallet import wallet_adjust
from core.client_ip import client_ip
from pricing.display import plain
from pricing.errors import PricingError, UnknownPlan


def account_plan(account: Account) -> str:
    """The plan code, with the plan that takes over at the next period when one is pending."""
    subscription = related_or_none(account, "subscription")
    if subscription is None:
        return "-"
    if subscription.pending_plan_id:
        return f"{subscription.plan.code} (next period: {subscription.pending_plan.code})"
    return subscription.plan.code


def account_balance(account: Account) -> str:
    wallet = related_or_none(account, "wallet")
    return plain(wallet.balance) if wallet is not None else "-"


class AccountPages(admin.ModelAdmin):
    """The pages behind the account buttons and actions: each parses a form, calls one billing service with the
    signed-in admin as actor and shows a refusal on the form, never as an error page."""

    def has_set_status_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_account")

    def has_adjust_credits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_wallet")

    def has_change_plan_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_subscription")

    def has_issue_key_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_apikey")

    def has_add_member_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_membership")

    def has_remove_member_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.delete_membership")

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A new account through `account_create`: wallet, subscription, owner, opening credits and the first key."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = AccountCreateForm(request.POST) if request.method == "POST" else AccountCreateForm()
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                with transaction.atomic():
                    account, raw_key = account_create(
                        name=data["name"],
                        plan_code=data["plan"],
                        owner_email=data["owner_email"] or None,
                        owner_password=data["owner_password"] or None,
                        credits=data["credits"],
                        display_currency=data["display_currency"],
                        actor=request.user,
                    )
                    self.log_addition(request, account, [{"added": {}}])
            except UnknownPlan as exc:
                form.add_error("plan", refusal_message(exc))
            except (BillingError, PricingError) as exc:
                form.add_error(None, refusal_message(exc))
            else:
                key = account.api_keys.get()
                return self._api_key_page(request, account=account, key=key, raw_key=raw_key, created=True)
        return self._form_page(
            request,
            form=form,
            title="Add account",
            intro="Creates the account with its wallet, subscription, owner, opening credits and a first API key.",
            submit_label="Create account",
            accounts=[],
            cancel_url=reverse("admin:billing_account_changelist"),
        )

    def adjust_credits_view(self, request: HttpRequest) -> HttpResponse:
        def adjust(account: Account, data: dict[str, Any]) -> str:
            posting = wallet_adjust(
                account=account, credits=data["credits"], reason=data["reason"], actor=request.user,
                ip=client_ip(request),
            )  # fmt: skip
            return (
                f"{account}: adjusted by {plain(posting.entry.credits, signed=True)} credits; "
                f"new balance {plain(posting.balance)} credits."
            )

        return self._accounts_operation(
            request,
            allowed=self.has_adjust_credits_permission(request),
            form_class=CreditAdjustmentForm,
            title="Adjust credits",
            intro="Posts one adjustment ledger entry per account, with your name, IP and reason in the audit log.",
            submit_label="Adjust credits",
            perform=adjust,
        )

    def change_plan_view(self, request: HttpRequest) -> HttpResponse:
        def change(account: Account, data: dict[str, Any]) -> str:
            subscription = subscription_change_plan(
                account=account, plan=data["plan"], apply_now=data["apply_now"], actor=request.user,
                ip=client_ip(request),
            )  # fmt: skip
            if data["apply_now"]:
                return f"{account}: now on {subscription.plan.code}, from the open period on."
            if subscription.pending_plan is not None:
                return (
                    f"{account}: {subscription.pending_plan.code} from the next period "
                    f"({subscription.current_period_end:%Y-%m-%d}); {subscription.plan.code} until then."
                )
            return f"{account}: stays on {subscription.plan.code}; no plan change pending."

        return self._accounts_operation(
            request,
            allowed=self.has_change_plan_permission(request),
            form_class=PlanChangeForm,
            title="Change plan",
            intro="The plan change is recorded in the audit log with your name and IP.",
            submit_label="Change plan",
            perform=change,
        )

    def set_status_view(self, request: HttpRequest) -> HttpResponse:
        status = request.GET.get("status", "")
        if status not in Account.Status.values:
            messages.error(request, f"Unknown account status {status!r}.")
            return HttpResponseRedirect(reverse("admin:billing_account_changelist"))
        suspend = status == Account.Status.SUSPENDED

        def set_status(account: Account, data: dict[str, Any]) -> str:
            account_set_status(account=account, status=status, actor=request.user, ip=client_ip(request))
            return f"{account}: {status}."

        return self._accounts_operation(
            request,
            allowed=self.has_set_status_permission(request),
            form_class=ConfirmForm,
            title="Suspend" if suspend else "Reactivate",
            intro="A suspended account can still read its balance and invoices but cannot spend credits."
            if suspend
            else "The account can spend its credits again.",
            submit_label="Suspend" if suspend else "Reactivate",
            perform=set_status,
        )

    def issue_key_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        if not self.has_issue_key_permission(request):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=account_id)
        form = ApiKeyIssueForm(request.POST) if request.method == "POST" else ApiKeyIssueForm()
        if request.method == "POST" and form.is_valid():
            try:
                key, raw_key = api_key_issue(
                    account=account, name=form.cleaned_data["name"], actor=request.user, ip=client_ip(request)
                )
            except BillingError as exc:
                form.add_error(None, refusal_message(exc))
            else:
                return self._api_key_page(request, account=account, key=key, raw_key=raw_key, created=False)
        return self._form_page(
            request,
            form=form,
            title="Issue API key",
            intro="The key is shown once, on the next page; only its hash is kept.",
            submit_label="Issue key",
            accounts=[account],
            cancel_url=reverse("admin:billing_account_change", args=[account.pk]),
        )

    def add_member_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        if not self.has_add_member_permission(request):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=account_id)
        form = MemberAddForm(request.POST) if request.method == "POST" else MemberAddForm()
        if request.method == "POST" and form.is_valid():
            user, role = form.cleaned_data["user"], form.cleaned_data["role"]
            try:
                member_add(account=account, user=user, role=role, actor=request.user)
            except BillingError as exc:
                form.add_error("user", refusal_message(exc))
            else:
                messages.success(request, f"{user} is now {role} of {account}.")
                return HttpResponseRedirect(reverse("admin:billing_account_change", args=[account.pk]))
        return self._form_page(
            request,
            form=form,
            title="Add member",
            intro="",
            submit_label="Add member",
            accounts=[account],
            cancel_url=reverse("admin:billing_account_change", args=[account.pk]),
        )

    def remove_member_view(self, request: HttpRequest, account_id: int, membership_id: int) -> HttpResponse:
        """A member removed through `member_remove`, after a confirmation; its refusal (the account's last owner)
        comes back as a message on the account page, with nothing removed."""
        if not self.has_remove_member_permission(request):
            raise PermissionDenied
        memberships = Membership.objects.select_related("account", "user")
        membership = get_object_or_404(memberships, pk=membership_id, account_id=account_id)
        account_url = reverse("admin:billing_account_change", args=[account_id])
        form = ConfirmForm(request.POST) if request.method == "POST" else ConfirmForm()
        if request.method == "POST" and form.is_valid():
            try:
                member_remove(membership=membership, actor=request.user, ip=client_ip(request))
            except BillingError as exc:
                messages.error(request, refusal_message(exc))
            else:
                messages.success(request, f"{membership.user} is no longer {membership.role} of {membership.account}.")
            return HttpResponseRedirect(account_url)
        return self._form_page(
            request,
            form=form,
            title="Remove member",
            intro=f"{membership.user} ({membership.role}) loses access to the account. An account keeps at least "
            "one owner.",
            submit_label="Remove member",
            accounts=[membership.account],
            cancel_url=account_url,
        )

    # --- page helpers -------------------------------------------------------------------------------------------

    def _accounts_operation(
        self,
        request: HttpRequest,
        *,
        allowed: bool,
        form_class: type[forms.Form],
        title: str,
        intro: str,
        submit_label: str,
        perform: Callable[[Account, dict[str, Any]], str],
    ) -> HttpResponse:
        """A form applied to the accounts in `?ids=`: all of them or, when one is refused, none."""
        if not allowed:
            raise PermissionDenied
        ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.strip().isdigit()]
        accounts = list(Account.objects.filter(pk__in=ids).select_related("wallet", "subscription__plan"))
        changelist = reverse("admin:billing_account_changelist")
        if not accounts:
            messages.warning(request, "Select one or more accounts first.")
            return HttpResponseRedirect(changelist)
        form = form_class(request.POST) if request.method == "POST" else form_class()
        if request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic():
                    results = [perform(account, form.cleaned_data) for account in accounts]
            except (BillingError, PricingError) as exc:
                form.add_error(None, refusal_message(exc))
            else:
                for text in results:
                    messages.success(request, text)
                if len(accounts) == 1:
                    return HttpResponseRedirect(reverse("admin:billing_account_change", args=[accounts[0].pk]))
                return HttpResponseRedirect(changelist)
        cancel = reverse("admin:billing_account_change", args=[accounts[0].pk]) if len(accounts) == 1 else changelist
        return self._form_page(
            request, form=form, title=title, intro=intro, submit_label=submit_label, accounts=accounts,
            cancel_url=cancel,
        )  # fmt: skip

    def _form_page(
        self,
        request: HttpRequest,
        *,
        form: forms.Form,
        title: str,
        intro: str,
        submit_label: str,
        accounts: list[Account],
        cancel_url: str,
    ) -> TemplateResponse:
        rows = [
            {
                "account": account,
                "url": reverse("admin:billing_account_change", args=[account.pk]),
                "status": account.get_status_display(),
                "plan": account_plan(account),
                "balance": account_balance(account),
            }
            for account in accounts
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "intro": intro,
            "form": form,
            "rows": rows,
            "submit_label": submit_label,
            "cancel_url": cancel_url,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, OPERATION_TEMPLATE, context)

    def _api_key_page(
        self, request: HttpRequest, *, account: Account, key: ApiKey, raw_key: str, created: bool
    ) -> TemplateResponse:
        """The one time a key exists in clear. Rendered, never redirected to, so it is kept nowhere."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Account created" if created else "API key issued",
            "account": account,
            "account_url": reverse("admin:billing_account_change", args=[account.pk]),
            "key": key,
            "raw_key": raw_key,
            "created": created,
        }
        response = TemplateResponse(request, API_KEY_TEMPLATE, context)
        add_never_cache_headers(response)
        return response
