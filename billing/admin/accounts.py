"""Accounts in the console: the list, the account page with its members and keys, and the actions on the
selected accounts; the operation pages behind them are in account_pages."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from billing.admin.account_pages import AccountPages, account_balance, account_plan
from billing.admin.base import redirect_with_ids
from billing.models import Account, ApiKey, Membership
from billing.services.accounts import account_set_status
from core.admin_base import ViewOnlyInline
from core.client_ip import client_ip


class MembershipInline(ViewOnlyInline):
    model = Membership
    fields = ("user", "user_email", "role", "created_at")
    readonly_fields = (*fields, "remove")
    show_change_link = False
    verbose_name_plural = "members (add one with the Add member button)"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        """The remove link only for those who may remove members."""
        removable = request.user.has_perm("billing.delete_membership")
        return (*self.fields, "remove") if removable else tuple(self.fields)

    @admin.display(description="email")
    def user_email(self, membership: Membership) -> str:
        return membership.user.email

    @admin.display(description="")
    def remove(self, membership: Membership) -> str:
        url = reverse("admin:billing_account_remove_member", args=[membership.account_id, membership.pk])
        return format_html('<a href="{}">Remove…</a>', url)


class ApiKeyInline(ViewOnlyInline):
    model = ApiKey
    fields = readonly_fields = ("key_prefix", "name", "created_at", "last_used_at", "revoked_at", "created_by")
    show_change_link = False
    verbose_name_plural = "API keys (revoke them from the API keys list)"

    @admin.display(description="key")
    def key_prefix(self, key: ApiKey) -> str:
        return f"tl_{key.prefix}_…"


@admin.register(Account)
class AccountAdmin(AccountPages):
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

    @admin.display(description="plan", ordering="subscription__plan__code")
    def plan(self, account: Account) -> str:
        return account_plan(account)

    @admin.display(description="balance (credits)", ordering="wallet__balance")
    def balance(self, account: Account) -> str:
        return account_balance(account)

    # --- pages --------------------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        own = [
            path("adjust-credits/", view(self.adjust_credits_view), name="billing_account_adjust_credits"),
            path("change-plan/", view(self.change_plan_view), name="billing_account_change_plan"),
            path("set-status/", view(self.set_status_view), name="billing_account_set_status"),
            path("<int:account_id>/issue-key/", view(self.issue_key_view), name="billing_account_issue_key"),
            path("<int:account_id>/add-member/", view(self.add_member_view), name="billing_account_add_member"),
            path(
                "<int:account_id>/members/<int:membership_id>/remove/",
                view(self.remove_member_view),
                name="billing_account_remove_member",
            ),
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
        return redirect_with_ids("admin:billing_account_adjust_credits", queryset.values_list("pk", flat=True))

    @admin.action(description="Change the plan of the selected accounts…", permissions=["change_plan"])
    def change_plan(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse:
        return redirect_with_ids("admin:billing_account_change_plan", queryset.values_list("pk", flat=True))

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
