"""The Stripe part of the console: the webhook inbox (with "process again"), top-ups, auto-recharge settings and
the overage billing cursors. All read-only: these rows are written by the Stripe services and webhooks only.

Registered from `BillingConfig.ready()`.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from billing.models import AutoRecharge, OverageBilling, StripeEvent, TopUp
from billing.services.webhooks import HANDLED_EVENT_TYPES, stripe_event_reprocess
from billing.stripe_conf import stripe_settings
from core.admin_base import ViewOnlyAdmin


@admin.register(StripeEvent)
class StripeEventAdmin(ViewOnlyAdmin):
    list_display = ["event_id", "type", "status", "attempts", "api_version_shown", "received_at", "processed_at",
                    "error_short"]  # fmt: skip
    list_filter = ["status", "type", "api_version"]
    search_fields = ["event_id__exact", "object_id__exact", "type"]
    search_help_text = "Event id, object id (cs_..., sub_..., in_..., pi_...) or type."
    date_hierarchy = "received_at"
    actions = ["process_again"]
    readonly_fields = ["event_id", "type", "api_version", "livemode", "object_id", "stripe_created_at", "status",
                       "attempts", "outcome", "last_error", "received_at", "processing_started_at", "processed_at",
                       "next_attempt_at", "payload_pretty"]  # fmt: skip
    exclude = ["payload"]

    @admin.display(description="API version")
    def api_version_shown(self, event: StripeEvent) -> str:
        pinned = stripe_settings().api_version
        return event.api_version if event.api_version == pinned else f"{event.api_version} (pinned {pinned})"

    @admin.display(description="last error")
    def error_short(self, event: StripeEvent) -> str:
        return (event.last_error[:120] + "…") if len(event.last_error) > 120 else event.last_error

    @admin.display(description="payload")
    def payload_pretty(self, event: StripeEvent) -> SafeString:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(event.payload, indent=2))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        extra_context = {**(extra_context or {}), "subtitle": "Handled: " + ", ".join(HANDLED_EVENT_TYPES)}
        return super().changelist_view(request, extra_context)

    @admin.action(description="Process the selected events again (failed, stuck or not yet processed)")
    def process_again(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        outcomes: dict[str, int] = {}
        for event in queryset.order_by("stripe_created_at", "pk"):
            result = stripe_event_reprocess(event=event, actor=request.user)
            outcomes[result.status] = outcomes.get(result.status, 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
        level = messages.WARNING if outcomes.get(StripeEvent.Status.FAILED) else messages.SUCCESS
        self.message_user(request, f"Processed again: {summary or 'nothing selected'}.", level)


@admin.register(TopUp)
class TopUpAdmin(ViewOnlyAdmin):
    list_display = ["id", "account", "source", "status", "amount_usd", "credits", "created_at", "paid_at"]
    list_filter = ["status", "source"]
    list_select_related = ["account"]
    search_fields = ["account__name", "account__id__exact", "stripe_checkout_session_id__exact",
                     "stripe_payment_intent_id__exact"]  # fmt: skip
    search_help_text = "Account name or id, Checkout session id, PaymentIntent id."
    date_hierarchy = "created_at"


@admin.register(AutoRecharge)
class AutoRechargeAdmin(ViewOnlyAdmin):
    list_display = ["account", "enabled", "threshold_credits", "amount_usd", "consecutive_failures",
                    "last_attempt_at", "disabled_reason"]  # fmt: skip
    list_filter = ["enabled"]
    list_select_related = ["account"]
    search_fields = ["account__name", "account__id__exact"]


@admin.register(OverageBilling)
class OverageBillingAdmin(ViewOnlyAdmin):
    list_display = ["period", "invoice", "step", "amount_cents", "renewal_cents", "stripe_invoice_id", "attempts",
                    "next_attempt_at", "updated_at"]  # fmt: skip
    list_filter = ["step"]
    list_select_related = ["period__account", "invoice"]
    search_fields = ["stripe_invoice_id__exact", "period__account__name", "period__account__id__exact"]
