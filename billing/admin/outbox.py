"""Console pages of what follows an invoice (the outbox) and of late usage: read-only, with a retry action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import InvoiceOutbox, LateUsageAdjustment
from billing.services.outbox import outbox_retry_now
from core.admin_base import ViewOnlyAdmin


@admin.register(InvoiceOutbox)
class InvoiceOutboxAdmin(ViewOnlyAdmin):
    list_display = ["invoice", "kind", "status", "attempts", "next_attempt_at", "last_error", "outcome", "sent_at",
                    "created_at"]  # fmt: skip
    list_filter = ["status", "kind", "created_at"]
    list_select_related = ["invoice__account"]
    search_fields = ["invoice__account__name", "invoice__id__exact"]
    search_help_text = "Account name or invoice id."
    fields = readonly_fields = ("invoice", "kind", "status", "attempts", "last_error", "outcome", "next_attempt_at",
                                "claimed_until", "created_at", "sent_at")  # fmt: skip
    actions = ["retry_now"]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_invoice")

    @admin.action(description="Send the selected pending rows at the next run of the send-outbox job",
                  permissions=["retry"])  # fmt: skip
    def retry_now(self, request: HttpRequest, queryset: QuerySet[InvoiceOutbox]) -> None:
        made_due = outbox_retry_now(row_ids=list(queryset.values_list("pk", flat=True)))
        messages.success(request, f"{made_due} pending row(s) will be sent at the next run (every 5 minutes).")


@admin.register(LateUsageAdjustment)
class LateUsageAdjustmentAdmin(ViewOnlyAdmin):
    list_display = ["account", "period", "messages", "units", "charge_usd", "amount", "currency", "invoice",
                    "billed_at", "created_at"]  # fmt: skip
    list_filter = [("invoice", admin.EmptyFieldListFilter), "created_at"]
    list_select_related = ["account", "period", "invoice"]
    search_fields = ["account__name", "account__id__exact"]
    search_help_text = "Account name or id."
    fields = readonly_fields = ("account", "period", "invoice", "messages", "units", "input_tokens", "output_tokens",
                                "provider_cost_usd", "charge_usd", "credits_used", "amount", "currency",
                                "created_at", "billed_at")  # fmt: skip
