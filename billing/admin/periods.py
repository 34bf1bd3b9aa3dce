"""Billing periods in the console: read-only, with closing a period as an action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from billing.admin.base import admin_link, refusal_message, related_or_none
from billing.admin.invoices import invoice_amount
from billing.errors import BillingError
from billing.models import BillingPeriod
from billing.services.periods import period_close
from core.admin_base import ViewOnlyAdmin
from pricing.display import plain
from pricing.errors import PricingError


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
        return plain(period.units_used)

    @admin.display(description="included")
    def included(self, period: BillingPeriod) -> str:
        return plain(period.included_units) if period.included_units is not None else "unlimited"

    @admin.display(description="invoice")
    def invoice_link(self, period: BillingPeriod) -> str | SafeString:
        return admin_link(related_or_none(period, "invoice"))

    @admin.display(description="late usage (after it closed)")
    def late_usage_shown(self, period: BillingPeriod) -> str | SafeString:
        rows = list(period.late_usage.select_related("invoice"))
        if not rows:
            return "none"
        return format_html_join(
            ", ", "{} events, {} units: {}",
            ((r.messages, plain(r.units), admin_link(r.invoice) if r.invoice else "waits for the next close")
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
