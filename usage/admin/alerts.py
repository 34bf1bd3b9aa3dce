"""Alerts and their deliveries in the console: read-only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin_base import ViewOnlyAdmin, ViewOnlyInline
from usage.models import Alert, AlertDelivery

DELIVERY_FIELDS: tuple[str, ...] = (
    "channel",
    "target",
    "status",
    "attempts",
    "response_status",
    "last_error",
    "created_at",
    "delivered_at",
)


class AlertDeliveryInline(ViewOnlyInline):
    model = AlertDelivery
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS


@admin.register(Alert)
class AlertAdmin(ViewOnlyAdmin):
    list_display = ["created_at", "account", "kind", "threshold", "period_key", "subject", "sent_at", "channels"]
    list_filter = ["kind", ("sent_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["account__name", "subject", "period_key"]
    list_select_related = ["account"]
    date_hierarchy = "created_at"
    inlines = [AlertDeliveryInline]
    actions = ["resend"]

    @admin.action(description="Send again on the channels that failed")
    def resend(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        from usage.tasks import alert_deliver_task

        ids = list(queryset.values_list("pk", flat=True))
        for alert_id in ids:
            alert_deliver_task.delay(alert_id)
        self.message_user(request, f"Queued {len(ids)} alert(s) for delivery.", messages.SUCCESS)


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ViewOnlyAdmin):
    list_display = ["created_at", "alert", "channel", "target", "status", "attempts", "response_status"]
    list_filter = ["channel", "status", "created_at"]
    search_fields = ["target", "alert__account__name"]
    list_select_related = ["alert__account"]
