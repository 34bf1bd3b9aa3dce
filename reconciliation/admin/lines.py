"""A run's lines in the console, filtered by run, status and reason, with the implied-price action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from core.admin_base import CappedCountPaginator, ViewOnlyAdmin
from pricing import display
from pricing.errors import CatalogValidationError
from reconciliation import selectors
from reconciliation.models import ReconciliationLine
from reconciliation.services.prices import implied_price_apply


class RunFilter(admin.SimpleListFilter):
    title = "run"
    parameter_name = "run"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(run.pk), str(run)) for run in selectors.runs_recent(limit=20)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(run_id=value) if value and value.isdigit() else queryset


@admin.register(ReconciliationLine)
class ReconciliationLineAdmin(ViewOnlyAdmin):
    list_display = ("key", "run_link", "status", "calculated", "actual", "difference", "reason_code", "short_reason")
    list_filter = (RunFilter, "status", "reason_code")
    search_fields = ("=key", "=request_id", "model_name")
    search_help_text = "An exact key or request id, or part of a provider model name."
    list_select_related = ("run",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ("price_version_from_implied",)
    fields = (
        "run", "key", "status", "line_number", "day", "model_name", "model_id", "project", "request_id",
        "usage_event_id", "calculated_usd", "actual_usd", "difference_usd", "currency", "events", "input_tokens",
        "cached_input_tokens", "output_tokens", "provider_input_tokens", "provider_cached_input_tokens",
        "provider_output_tokens", "reason_code", "reason", "implied_input_per_million",
        "implied_cached_input_per_million", "implied_output_per_million",
    )  # fmt: skip
    readonly_fields = fields

    def has_price_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pricing.add_modelprice")

    @admin.display(description="run", ordering="run")
    def run_link(self, line: ReconciliationLine) -> str:
        url = reverse("admin:reconciliation_reconciliationrun_change", args=[line.run_id])
        return format_html('<a href="{}">#{}</a>', url, line.run_id)

    @admin.display(description="calculated")
    def calculated(self, line: ReconciliationLine) -> str:
        return display.usd(line.calculated_usd, 6)

    @admin.display(description="actual")
    def actual(self, line: ReconciliationLine) -> str:
        return display.usd(line.actual_usd, 6)

    @admin.display(description="difference")
    def difference(self, line: ReconciliationLine) -> str:
        return display.usd(line.difference_usd, 6)

    @admin.display(description="reason")
    def short_reason(self, line: ReconciliationLine) -> str:
        return line.reason if len(line.reason) <= 120 else line.reason[:119] + "…"

    @admin.action(description="New price version from the implied price", permissions=["price"])
    def price_version_from_implied(self, request: HttpRequest, queryset: QuerySet[ReconciliationLine]) -> None:
        try:
            outcome = implied_price_apply(lines=queryset.select_related("run"), actor=request.user)
        except CatalogValidationError as exc:
            self.message_user(request, f"No price version was made: {exc}", messages.ERROR)
            return
        for version in outcome.created:
            self.message_user(
                request,
                f"New price version for {version.model.model_id} from {version.effective_from:%Y-%m-%d %H:%M} UTC: "
                f"input {version.input_per_million}, cached input {version.cached_input_per_million}, output "
                f"{version.output_per_million} per 1M ({version.reason}).",
                messages.SUCCESS,
            )
        if outcome.skipped:
            self.message_user(request, "Skipped: " + "; ".join(outcome.skipped[:10]), messages.WARNING)
