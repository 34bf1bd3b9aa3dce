"""Subscriptions in the console: read-only, with the plan change as an action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.safestring import SafeString

from billing.admin.base import admin_link, redirect_with_ids
from billing.models import Subscription
from core.admin_base import ViewOnlyAdmin


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
        return redirect_with_ids("admin:billing_account_change_plan", queryset.values_list("account_id", flat=True))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "can_change_plan": self.has_change_plan_permission(request)}
        return super().change_view(request, object_id, form_url, extra)
