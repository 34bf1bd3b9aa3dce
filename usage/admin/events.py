"""Usage events in the console: read-only, filterable by model and operation, counted up to a cap."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from core.admin_base import COUNT_CAP, CappedCountPaginator, ViewOnlyAdmin
from pricing import display
from pricing.models import AIModel
from usage.admin.base import _pretty_json
from usage.models import DailyUsage, UsageEvent


class ModelFilter(admin.SimpleListFilter):
    """Choices from the catalog, not a DISTINCT over the events table."""

    title = "model"
    parameter_name = "model_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (model_id, model_id) for model_id in AIModel.objects.order_by("model_id").values_list("model_id", flat=True)
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(model_id=self.value()) if self.value() else queryset


class OperationTypeFilter(admin.SimpleListFilter):
    """Choices from the daily rollups (far smaller than the events), not a DISTINCT over the events table."""

    title = "operation type"
    parameter_name = "operation_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = DailyUsage.objects.order_by("operation_type").values_list("operation_type", flat=True).distinct()
        return [(value, value) for value in values if value]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(operation_type=self.value()) if self.value() else queryset


@admin.register(UsageEvent)
class UsageEventAdmin(ViewOnlyAdmin):
    list_display = ("request_id", "account", "model_id", "operation_type", "tokens", "charge", "credits_used",
                    "over_limit", "late", "occurred_at")  # fmt: skip
    list_filter = (
        ModelFilter,
        OperationTypeFilter,
        "over_limit",
        "late",
        "over_reservation",
        "reconciliation_status",
        ("occurred_at", admin.DateFieldListFilter),
    )
    search_fields = ("=request_id", "account__name")
    search_help_text = "An exact request id, or part of an account name."
    list_select_related = ("account",)
    sortable_by = ("occurred_at",)  # the indexed column; sorting a huge table by anything else is a full sort
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    change_list_template = "admin/usage/usageevent/change_list.html"
    fields = (
        "account", "period", "request_id", "batch_id", "model_id", "model_requested", "operation_type", "user",
        "conversation_id", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "images",
        "features", "multiplier", "cost_usd", "charge_usd", "credits", "units", "plan_code", "over_limit",
        "occurred_at", "received_at", "price_version_id", "credits_rate", "breakdown_pretty", "metadata_pretty",
        "ip", "user_agent", "reconciliation_status", "actual_cost_usd", "reconciled_at",
    )  # fmt: skip
    readonly_fields = fields

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "count_cap": COUNT_CAP})

    @admin.display(description="tokens")
    def tokens(self, event: UsageEvent) -> str:
        return f"{event.input_tokens + event.output_tokens:,}"

    @admin.display(description="charge")
    def charge(self, event: UsageEvent) -> str:
        return display.usd(event.charge_usd, 4)

    @admin.display(description="credits")
    def credits_used(self, event: UsageEvent) -> str:
        return display.credits(event.credits, 2)

    @admin.display(description="breakdown")
    def breakdown_pretty(self, event: UsageEvent) -> str:
        return _pretty_json(event.breakdown)

    @admin.display(description="metadata")
    def metadata_pretty(self, event: UsageEvent) -> str:
        return _pretty_json(event.metadata)
