"""The billing part of the TokenLedger console.

Every write goes through billing.services, with the signed-in admin as actor and the request's IP, so the console
obeys the same rules as the API and the commands and leaves the same audit trail. The ledger, credit grants and the
audit log are read-only; accounts, wallets, subscriptions, periods and invoices are viewed here and changed only
through the actions and pages below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from billing.errors import BillingError
from billing.forms import (
    AccountCreateForm,
    ApiKeyIssueForm,
    ConfirmForm,
    CreditAdjustmentForm,
    MemberAddForm,
    PlanChangeForm,
)
from billing.models import (
    Account,
    ApiKey,
    AuditEntry,
    BillingPeriod,
    CreditGrant,
    Invoice,
    InvoiceOutbox,
    LedgerEntry,
    Membership,
    Subscription,
    Wallet,
)
from billing.services.accounts import account_create, account_set_status, member_add
from billing.services.api_keys import api_key_issue, api_key_revoke
from billing.services.overage import overage_invoice_send
from billing.services.periods import period_close, subscription_change_plan
from billing.services.wallet import wallet_adjust
from core.admin_base import ViewOnlyAdmin
from pricing.errors import PricingError, UnknownPlan
from pricing.money import Money, MoneyError

# The wallet page lists this many of the newest ledger entries and links to the full, filterable list.
LEDGER_INLINE_LIMIT = 50
OPERATION_TEMPLATE = "admin/billing/operation_form.html"
API_KEY_TEMPLATE = "admin/billing/api_key_issued.html"

Refusal = BillingError | PricingError


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def format_credits(value: Decimal | None, *, signed: bool = False) -> str:
    """Credits exactly as stored, without the trailing zeros of the 12 stored places: 1000, 12.5, -0.25."""
    if value is None:
        return "-"
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if signed and value > 0:
        text = f"+{text}"
    return text


def refusal_message(exc: Refusal) -> str:
    return exc.message or exc.code


def admin_link(obj: Model | None, text: object = None) -> str | SafeString:
    if obj is None:
        return "-"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def _related(obj: Model, name: str) -> Any:
    """A reverse one-to-one (an account's wallet or subscription), or None where it does not exist."""
    try:
        return getattr(obj, name)
    except ObjectDoesNotExist:
        return None


class ViewOnlyInline(admin.TabularInline):
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NewestOnlyFormSet(BaseInlineFormSet):
    """An inline that shows only the first `LEDGER_INLINE_LIMIT` rows of its (ordered) queryset."""

    def get_queryset(self) -> Any:
        if not hasattr(self, "_limited_queryset"):
            self._limited_queryset = super().get_queryset()[:LEDGER_INLINE_LIMIT]
        return self._limited_queryset


# --- accounts ----------------------------------------------------------------------------------------------------


class MembershipInline(ViewOnlyInline):
    model = Membership
    fields = readonly_fields = ("user", "user_email", "role", "created_at")
    show_change_link = False
    verbose_name_plural = "members (add one with the Add member button)"

    @admin.display(description="email")
    def user_email(self, membership: Membership) -> str:
        return membership.user.email


class ApiKeyInline(ViewOnlyInline):
    model = ApiKey
    fields = readonly_fields = ("key_prefix", "name", "created_at", "last_used_at", "revoked_at", "created_by")
    show_change_link = False
    verbose_name_plural = "API keys (revoke them from the API keys list)"

    @admin.display(description="key")
    def key_prefix(self, key: ApiKey) -> str:
        return f"tl_{key.prefix}_…"


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "status", "plan", "balance", "created_at"]
    list_display_links = ["name"]
    list_filter = ["status", "subscription__plan"]
    list_select_related = ["subscription__plan", "wallet"]
    search_fields = [
        "name",
        "id__exact",
        "memberships__user__email",
        "memberships__user__username",
        "stripe_customer_id",
        "external_id__exact",
    ]
    search_help_text = "Name, account id, member email or username, Stripe customer id, customer external id."
    ordering = ["name", "id"]
    fields = readonly_fields = (
        "name", "external_id", "status", "plan", "balance", "display_currency", "low_balance_threshold",
        "stripe_customer_id", "alert_webhook_url", "provider_project_ids", "metadata", "created_at",
    )  # fmt: skip
    inlines = [MembershipInline, ApiKeyInline]
    actions = ["suspend", "reactivate", "adjust_credits", "change_plan"]

    # Account settings have no service to change them yet, so the account page is a view with buttons for each
    # operation; nothing on it is saved directly.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

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

    @admin.display(description="plan", ordering="subscription__plan__code")
    def plan(self, account: Account) -> str:
        subscription = _related(account, "subscription")
        if subscription is None:
            return "-"
        if subscription.pending_plan_id:
            return f"{subscription.plan.code} (next period: {subscription.pending_plan.code})"
        return subscription.plan.code

    @admin.display(description="balance (credits)", ordering="wallet__balance")
    def balance(self, account: Account) -> str:
        wallet = _related(account, "wallet")
        return format_credits(wallet.balance) if wallet is not None else "-"

    # --- pages --------------------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        own = [
            path("adjust-credits/", view(self.adjust_credits_view), name="billing_account_adjust_credits"),
            path("change-plan/", view(self.change_plan_view), name="billing_account_change_plan"),
            path("set-status/", view(self.set_status_view), name="billing_account_set_status"),
            path("<int:account_id>/issue-key/", view(self.issue_key_view), name="billing_account_issue_key"),
            path("<int:account_id>/add-member/", view(self.add_member_view), name="billing_account_add_member"),
        ]
        return own + super().get_urls()

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[type[admin.options.InlineModelAdmin]]:
        return list(self.inlines) if obj is not None else []

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        tools = {
            "can_issue_key": self.has_issue_key_permission(request),
            "can_add_member": self.has_add_member_permission(request),
            "can_adjust_credits": self.has_adjust_credits_permission(request),
            "can_change_plan": self.has_change_plan_permission(request),
            "can_set_status": self.has_set_status_permission(request),
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **tools})

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
                f"{account}: adjusted by {format_credits(posting.entry.credits, signed=True)} credits; "
                f"new balance {format_credits(posting.balance)} credits."
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

    # --- actions ------------------------------------------------------------------------------------------------

    @admin.action(
        description="Suspend the selected accounts (balance readable, no spending)", permissions=["set_status"]
    )
    def suspend(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._set_status(request, queryset, Account.Status.SUSPENDED)

    @admin.action(description="Reactivate the selected accounts", permissions=["set_status"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._set_status(request, queryset, Account.Status.ACTIVE)

    @admin.action(description="Adjust credits of the selected accounts…", permissions=["adjust_credits"])
    def adjust_credits(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse:
        return _redirect_with_ids("admin:billing_account_adjust_credits", queryset.values_list("pk", flat=True))

    @admin.action(description="Change the plan of the selected accounts…", permissions=["change_plan"])
    def change_plan(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse:
        return _redirect_with_ids("admin:billing_account_change_plan", queryset.values_list("pk", flat=True))

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Account], status: str) -> None:
        changed = unchanged = 0
        with transaction.atomic():
            for account in queryset:
                if account.status == status:
                    unchanged += 1
                    continue
                account_set_status(account=account, status=status, actor=request.user, ip=client_ip(request))
                changed += 1
        verb = "Suspended" if status == Account.Status.SUSPENDED else "Reactivated"
        text = f"{verb} {changed} account{'s' if changed != 1 else ''}."
        if unchanged:
            text += f" {unchanged} already {status}."
        messages.success(request, text)

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
                "plan": self.plan(account),
                "balance": self.balance(account),
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


def _redirect_with_ids(url_name: str, ids: Iterable[int]) -> HttpResponseRedirect:
    """To an operation page for these accounts: the ids travel in the URL, so the page can be reloaded."""
    query = urlencode({"ids": ",".join(str(pk) for pk in ids)})
    return HttpResponseRedirect(f"{reverse(url_name)}?{query}")


# --- API keys ----------------------------------------------------------------------------------------------------


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "live"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "live":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(ViewOnlyAdmin):
    list_display = ["key_prefix", "name", "account_link", "created_at", "last_used_at", "revoked_at", "created_by"]
    list_filter = [KeyStateFilter, "created_at"]
    list_select_related = ["account", "created_by"]
    search_fields = ["prefix", "name", "account__name", "account__id__exact"]
    search_help_text = "Key prefix, key name, account name or id."
    fields = readonly_fields = (
        "key_prefix",
        "name",
        "account_link",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ["revoke_keys"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_apikey")

    @admin.display(description="key", ordering="prefix")
    def key_prefix(self, key: ApiKey) -> str:
        return f"tl_{key.prefix}_…"

    @admin.display(description="account", ordering="account__name")
    def account_link(self, key: ApiKey) -> str | SafeString:
        return admin_link(key.account)

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        with transaction.atomic():
            for key in queryset.select_related("account"):
                if key.is_revoked:
                    continue
                api_key_revoke(key=key, actor=request.user, ip=client_ip(request))
                revoked += 1
        skipped = queryset.count() - revoked
        text = f"Revoked {revoked} key{'s' if revoked != 1 else ''}; they get 401 from now on."
        if skipped:
            text += f" {skipped} already revoked."
        messages.success(request, text)


# --- wallets and the ledger --------------------------------------------------------------------------------------


class LedgerEntryInline(ViewOnlyInline):
    model = LedgerEntry
    formset = NewestOnlyFormSet
    fields = readonly_fields = (
        "created_at",
        "kind",
        "signed_credits",
        "balance_after_display",
        "reference",
        "reason",
        "actor",
    )
    verbose_name_plural = f"ledger (newest {LEDGER_INLINE_LIMIT} entries)"

    @admin.display(description="credits")
    def signed_credits(self, entry: LedgerEntry) -> str:
        return format_credits(entry.credits, signed=True)

    @admin.display(description="balance after")
    def balance_after_display(self, entry: LedgerEntry) -> str:
        return format_credits(entry.balance_after)


class CreditGrantInline(ViewOnlyInline):
    model = CreditGrant
    formset = NewestOnlyFormSet
    fields = readonly_fields = ("entry", "credits", "remaining", "expires_at", "expired_at")
    show_change_link = False
    verbose_name_plural = "expiring grants"


@admin.register(Wallet)
class WalletAdmin(ViewOnlyAdmin):
    list_display = ["account_link", "balance_display", "held_display", "available_display", "updated_at"]
    list_select_related = ["account"]
    search_fields = ["account__name", "account__id__exact"]
    search_help_text = "Account name or id."
    ordering = ["account__name", "account__id"]
    fields = readonly_fields = (
        "account_link",
        "balance_display",
        "held_display",
        "available_display",
        "updated_at",
        "all_entries",
    )
    inlines = [LedgerEntryInline, CreditGrantInline]

    @admin.display(description="account", ordering="account__name")
    def account_link(self, wallet: Wallet) -> str | SafeString:
        return admin_link(wallet.account)

    @admin.display(description="balance (credits)", ordering="balance")
    def balance_display(self, wallet: Wallet) -> str:
        return format_credits(wallet.balance)

    @admin.display(description="held", ordering="held")
    def held_display(self, wallet: Wallet) -> str:
        return format_credits(wallet.held)

    @admin.display(description="available")
    def available_display(self, wallet: Wallet) -> str:
        return format_credits(wallet.available)

    @admin.display(description="ledger")
    def all_entries(self, wallet: Wallet) -> SafeString:
        url = reverse("admin:billing_ledgerentry_changelist") + f"?wallet__id__exact={wallet.pk}"
        return format_html('<a href="{}">all {} entries, with filters and search</a>', url, wallet.entries.count())


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ViewOnlyAdmin):
    list_display = [
        "created_at", "account", "kind", "signed_credits", "balance_after_display", "usd_amount", "reference",
        "reason", "actor",
    ]  # fmt: skip
    list_filter = ["kind", "created_at"]
    list_select_related = ["wallet__account", "actor"]
    search_fields = ["reference", "wallet__account__name"]
    search_help_text = "Reference (e.g. adjustment:…, topup:…) or account name."
    show_full_result_count = False
    fields = readonly_fields = (
        "account", "kind", "signed_credits", "balance_after_display", "usd_amount", "rate", "reference", "reason",
        "actor", "created_at",
    )  # fmt: skip

    @admin.display(description="account", ordering="wallet__account__name")
    def account(self, entry: LedgerEntry) -> str | SafeString:
        return admin_link(entry.wallet.account)

    @admin.display(description="credits", ordering="credits")
    def signed_credits(self, entry: LedgerEntry) -> str:
        return format_credits(entry.credits, signed=True)

    @admin.display(description="balance after")
    def balance_after_display(self, entry: LedgerEntry) -> str:
        return format_credits(entry.balance_after)


# --- subscriptions, periods and invoices -------------------------------------------------------------------------


@admin.register(Subscription)
class SubscriptionAdmin(ViewOnlyAdmin):
    list_display = [
        "account_link", "plan", "pending_plan", "status", "current_period_start", "current_period_end",
        "stripe_subscription_id",
    ]  # fmt: skip
    list_filter = ["status", "plan"]
    list_select_related = ["account", "plan", "pending_plan"]
    search_fields = ["account__name", "account__id__exact", "stripe_subscription_id"]
    search_help_text = "Account name or id, Stripe subscription id."
    fields = readonly_fields = (
        "account_link", "plan", "pending_plan", "status", "interval", "period_anchor", "started_at",
        "current_period_start", "current_period_end", "cancel_at_period_end", "past_due_since",
        "stripe_subscription_id", "stripe_price_id",
    )  # fmt: skip
    actions = ["change_plan"]

    def has_change_plan_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_subscription")

    @admin.display(description="account", ordering="account__name")
    def account_link(self, subscription: Subscription) -> str | SafeString:
        return admin_link(subscription.account)

    @admin.action(description="Change the plan of the selected subscriptions…", permissions=["change_plan"])
    def change_plan(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> HttpResponse:
        return _redirect_with_ids("admin:billing_account_change_plan", queryset.values_list("account_id", flat=True))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "can_change_plan": self.has_change_plan_permission(request)}
        return super().change_view(request, object_id, form_url, extra)


class LateUsageFilter(admin.SimpleListFilter):
    title = "late usage"
    parameter_name = "late_usage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "has late usage"), ("unbilled", "late usage not billed yet")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(late_usage__isnull=False).distinct()
        if self.value() == "unbilled":
            return queryset.filter(late_usage__invoice__isnull=True, late_usage__isnull=False).distinct()
        return queryset


class InvoiceLateUsageFilter(admin.SimpleListFilter):
    title = "late usage"
    parameter_name = "late_usage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "bills late usage")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(late_usage__gt=0) if self.value() == "yes" else queryset


class OutboxPendingFilter(admin.SimpleListFilter):
    title = "outbox"
    parameter_name = "outbox"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("pending", "something still to send")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "pending":
            return queryset.filter(outbox__status=InvoiceOutbox.Status.PENDING).distinct()
        return queryset


@admin.register(BillingPeriod)
class BillingPeriodAdmin(ViewOnlyAdmin):
    list_display = [
        "account_link", "start", "end", "plan", "unit", "used", "included", "overage_usd", "status", "closed_at",
    ]  # fmt: skip
    list_filter = ["status", LateUsageFilter, "plan", "start"]
    list_select_related = ["account", "plan"]
    search_fields = ["account__name", "account__id__exact"]
    search_help_text = "Account name or id."
    fields = readonly_fields = (
        "account_link", "start", "end", "status", "closed_at", "plan", "terms", "unit", "included", "used",
        "input_tokens", "output_tokens", "messages", "provider_cost_usd", "charge_usd", "credits_used",
        "overage_units", "overage_usd", "invoice_link", "late_usage_shown",
    )  # fmt: skip
    actions = ["close_periods"]

    def has_close_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_billingperiod")

    @admin.display(description="account", ordering="account__name")
    def account_link(self, period: BillingPeriod) -> str | SafeString:
        return admin_link(period.account)

    @admin.display(description="used", ordering="units_used")
    def used(self, period: BillingPeriod) -> str:
        return format_credits(period.units_used)

    @admin.display(description="included")
    def included(self, period: BillingPeriod) -> str:
        return format_credits(period.included_units) if period.included_units is not None else "unlimited"

    @admin.display(description="invoice")
    def invoice_link(self, period: BillingPeriod) -> str | SafeString:
        return admin_link(_related(period, "invoice"))

    @admin.display(description="late usage (after it closed)")
    def late_usage_shown(self, period: BillingPeriod) -> str | SafeString:
        rows = list(period.late_usage.select_related("invoice"))
        if not rows:
            return "none"
        return format_html_join(
            ", ", "{} events, {} units: {}",
            ((r.messages, format_credits(r.units), admin_link(r.invoice) if r.invoice else "waits for the next close")
             for r in rows),
        )  # fmt: skip

    @admin.action(
        description="Close the selected periods that have ended (creates their invoices)", permissions=["close"]
    )
    def close_periods(self, request: HttpRequest, queryset: QuerySet[BillingPeriod]) -> None:
        now = timezone.now()
        closed: list[str] = []
        for period in queryset.select_related("account"):
            if period.status != BillingPeriod.Status.OPEN:
                messages.info(request, f"{period}: already {period.status}.")
                continue
            try:
                invoice = period_close(period=period, as_of=now)
            except (BillingError, PricingError) as exc:
                messages.warning(request, f"{period}: not closed: {refusal_message(exc)}")
            else:
                closed.append(f"{period.account}: invoice #{invoice.pk} {invoice_amount(invoice)}")
        if closed:
            messages.success(
                request, f"Closed {len(closed)} period{'s' if len(closed) != 1 else ''}: {'; '.join(closed)}."
            )


def invoice_amount(invoice: Invoice) -> str:
    """The total billed, from its minor units (cents)."""
    try:
        return str(Money.from_minor_units(invoice.amount_cents, invoice.currency))
    except MoneyError:
        return f"{invoice.amount_cents} (minor units of {invoice.currency})"


@admin.register(Invoice)
class InvoiceAdmin(ViewOnlyAdmin):
    list_display = [
        "id", "account_link", "period_dates", "plan_code", "amount", "status", "stripe_invoice_id", "paid_at",
        "created_at",
    ]  # fmt: skip
    list_filter = ["status", InvoiceLateUsageFilter, OutboxPendingFilter, "currency"]
    list_select_related = ["account", "period"]
    search_fields = ["account__name", "account__id__exact", "stripe_invoice_id"]
    search_help_text = "Account name or id, Stripe invoice id."
    fields = readonly_fields = (
        "account_link", "period_link", "plan_code", "unit", "units", "included_units", "overage_units",
        "input_tokens", "output_tokens", "messages", "api_cost_usd", "charge_usd", "base_charge", "overage",
        "cap_applied", "late_usage_lines", "total", "currency", "amount", "status", "stripe_invoice_id",
        "hosted_invoice_url", "paid_at", "created_at", "outbox_shown",
    )  # fmt: skip
    actions = ["send_overage"]

    def has_send_overage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_invoice")

    @admin.action(
        description="Send the overage of the selected invoices to Stripe (once; e.g. closed while Stripe was off)",
        permissions=["send_overage"],
    )
    def send_overage(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        # the same idempotent path as the period close: an invoice already sent is answered from its cursor, and a
        # step a crash interrupted is resumed with its key, so Stripe never bills an overage twice
        now = timezone.now()
        for invoice in queryset.order_by("pk"):
            outcome = overage_invoice_send(invoice=invoice, as_of=now)
            if outcome.status == "invoiced":
                messages.success(
                    request, f"{outcome.message} ({Money.from_minor_units(outcome.amount_cents, invoice.currency)})"
                )
            elif outcome.status in ("no_overage", "nothing_due"):
                messages.info(request, outcome.message)
            else:  # stripe_off, failed (the retry job resumes it), payment_failed
                messages.warning(request, outcome.message)

    @admin.display(description="account", ordering="account__name")
    def account_link(self, invoice: Invoice) -> str | SafeString:
        return admin_link(invoice.account)

    @admin.display(description="period", ordering="period__start")
    def period_dates(self, invoice: Invoice) -> str:
        return f"{invoice.period.start:%Y-%m-%d} to {invoice.period.end:%Y-%m-%d}"

    @admin.display(description="period")
    def period_link(self, invoice: Invoice) -> str | SafeString:
        return admin_link(invoice.period, self.period_dates(invoice))

    @admin.display(description="amount billed", ordering="amount_cents")
    def amount(self, invoice: Invoice) -> str:
        return invoice_amount(invoice)

    @admin.display(description="late usage")
    def late_usage_lines(self, invoice: Invoice) -> str | SafeString:
        rows = list(invoice.late_usage_adjustments.select_related("period"))
        if not rows:
            return "none"
        return format_html_join(
            "; ", "{} events of {} to {}: {} {}",
            ((r.messages, f"{r.period.start:%Y-%m-%d}", f"{r.period.end:%Y-%m-%d}", r.amount.normalize(), r.currency)
             for r in rows),
        )  # fmt: skip

    @admin.display(description="what follows the invoice (outbox)")
    def outbox_shown(self, invoice: Invoice) -> str | SafeString:
        rows = list(invoice.outbox.all())
        if not rows:
            return "none"
        return format_html_join(
            "; ", "{}: {}{}",
            ((r.get_kind_display(), r.status, f" ({r.last_error})" if r.last_error else "") for r in rows),
        )  # fmt: skip


# --- audit log ---------------------------------------------------------------------------------------------------


@admin.register(AuditEntry)
class AuditEntryAdmin(ViewOnlyAdmin):
    list_display = [
        "at",
        "action",
        "account_link",
        "actor",
        "via",
        "ip",
        "object_type",
        "object_key",
        "before",
        "after",
    ]
    list_filter = ["action", "at"]
    list_select_related = ["account", "actor"]
    search_fields = ["account__name", "object_key"]
    search_help_text = "Account name or object key (key prefix, wallet or subscription id)."
    show_full_result_count = False
    fields = readonly_fields = (
        "at",
        "action",
        "account_link",
        "actor",
        "via",
        "ip",
        "object_type",
        "object_key",
        "before",
        "after",
    )

    @admin.display(description="account", ordering="account__name")
    def account_link(self, entry: AuditEntry) -> str | SafeString:
        return admin_link(entry.account)
