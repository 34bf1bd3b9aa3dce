"""The reconciliation console: runs with their match rate, a run's lines by status, an upload form, the lines as CSV,
the implied-price action, and the reports (margin per period; provider actual against our calculation by month).

Runs and lines are written by the reconciliation services only, so they are read-only here; the upload form and the
action call the services. Amounts on pages are rounded for display; the CSV carries them unrounded.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from core.admin_base import CappedCountPaginator
from pricing.errors import CatalogValidationError
from reconciliation import selectors
from reconciliation.charts import Series, bar_chart, line_chart
from reconciliation.models import ReconciliationLine, ReconciliationRun
from reconciliation.parsers import SOURCES, UnreadableFile
from reconciliation.services.prices import implied_price_apply
from reconciliation.services.runs import reconciliation_run

REPORT_MONTHS = 12
MARGIN_CHART_ROWS = 15


def usd_display(value: Decimal | None, places: str = "0.0001") -> str:
    if value is None:
        return "-"
    rounded = value.quantize(Decimal(places), rounding=ROUND_HALF_UP)
    return f"-${abs(rounded):,}" if rounded < 0 else f"${rounded:,}"


def rate_display(rate: Decimal | None) -> str:
    return "-" if rate is None else f"{(rate * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} %"


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    text = str(value)
    # a cell a spreadsheet would run as a formula is kept as text
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _numeric(text) else text


def _numeric(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


class ReconciliationUploadForm(forms.Form):
    file = forms.FileField(help_text="a provider's CSV export or API JSON page, or a gateway's per-request CSV")
    source = forms.ChoiceField(choices=[("", "tell from the header"), *((s, s) for s in SOURCES)], required=False)
    tolerance_pct = forms.DecimalField(
        required=False, min_value=0, max_value=100, decimal_places=4, label="Tolerance (%)", help_text="default 5"
    )
    tolerance_usd = forms.DecimalField(
        required=False,
        min_value=0,
        decimal_places=12,
        label="Tolerance (USD)",
        help_text="default 0.05; 0.000001 for requests",
    )
    dry_run = forms.BooleanField(required=False, help_text="match and report, write nothing")


# --- runs ---------------------------------------------------------------------------------------------------------


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(admin.ModelAdmin):
    list_display = ("__str__", "started_at", "source", "status", "rows", "matched", "discrepancy", "not_found",
                    "not_in_export", "errors", "rate", "difference", "same_file", "actor")  # fmt: skip
    list_filter = ("source", "status", "trigger")
    search_fields = ("file_name", "=sha256")
    list_select_related = ("actor", "same_file_as")
    change_list_template = "admin/reconciliation/reconciliationrun/change_list.html"
    fields = (
        "lines_links", "source", "file_name", "file_format", "sha256", "size_bytes", "same_file_as", "trigger",
        "actor", "status", "failure", "as_of", "started_at", "finished_at", "duration_ms", "period_start",
        "period_end", "rows", "empty_buckets", "matched", "discrepancy", "not_found", "not_in_export", "errors",
        "rate", "events_updated", "total_calculated_usd", "total_actual_usd", "difference_usd", "reasons", "options",
    )  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_upload_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reconciliation.add_reconciliationrun")

    @admin.display(description="match rate", ordering="match_rate")
    def rate(self, run: ReconciliationRun) -> str:
        return rate_display(run.match_rate)

    @admin.display(description="actual - calculated", ordering="difference_usd")
    def difference(self, run: ReconciliationRun) -> str:
        return usd_display(run.difference_usd)

    @admin.display(description="same file as")
    def same_file(self, run: ReconciliationRun) -> str:
        if run.same_file_as_id is None:
            return "-"
        url = reverse("admin:reconciliation_reconciliationrun_change", args=[run.same_file_as_id])
        return format_html('<a href="{}">run #{}</a>', url, run.same_file_as_id)

    @admin.display(description="lines")
    def lines_links(self, run: ReconciliationRun) -> str:
        base = reverse("admin:reconciliation_reconciliationline_changelist")
        Status = ReconciliationLine.Status
        count = {Status.MATCHED: run.matched, Status.DISCREPANCY: run.discrepancy, Status.NOT_FOUND: run.not_found,
                 Status.NOT_IN_EXPORT: run.not_in_export, Status.ERROR: run.errors}  # fmt: skip
        links = [("all", "", sum(count.values()))]
        links += [(label, value, count[Status(value)]) for value, label in Status.choices]
        items = format_html_join(
            " · ",
            '<a href="{}?{}">{} ({})</a>',
            (
                (base, urlencode({"run": str(run.pk), **({"status__exact": value} if value else {})}), label, count)
                for label, value, count in links
            ),
        )
        csv_url = reverse("admin:reconciliation_run_lines_csv", args=[run.pk])
        return format_html('{} · <a href="{}">download CSV</a>', items, csv_url)

    @admin.display(description="discrepancy reasons")
    def reasons(self, run: ReconciliationRun) -> str:
        counts = selectors.run_reason_counts(run=run)
        labels = dict(ReconciliationLine.Reason.choices)
        return ", ".join(f"{labels.get(code, code)}: {n}" for code, n in sorted(counts.items())) or "-"

    # --- views ----------------------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("upload/", view(self.upload_view), name="reconciliation_run_upload"),
            path("<int:run_id>/lines.csv", view(self.lines_csv_view), name="reconciliation_run_lines_csv"),
            path("reports/margin/", view(self.margin_report_view), name="reconciliation_report_margin"),
            path("reports/trend/", view(self.trend_report_view), name="reconciliation_report_trend"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = {**(extra_context or {}), "can_upload": self.has_upload_permission(request)}
        return super().changelist_view(request, extra)

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title}

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_upload_permission(request):
            raise PermissionDenied
        form = ReconciliationUploadForm(request.POST or None, request.FILES or None)
        summary = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = reconciliation_run(
                    source=form.cleaned_data["source"] or None,
                    file=upload,
                    file_name=upload.name or "upload",
                    actor=request.user,
                    tolerance_pct=form.cleaned_data["tolerance_pct"],
                    tolerance_usd=form.cleaned_data["tolerance_usd"],
                    dry_run=form.cleaned_data["dry_run"],
                    trigger=ReconciliationRun.Trigger.ADMIN,
                )
            except UnreadableFile as exc:
                form.add_error("file", f"The file cannot be read: {exc}")
            else:
                if result.same_file_as is not None:
                    self.message_user(
                        request,
                        f"The same file (SHA-256) was reconciled before, in run #{result.same_file_as.pk}.",
                        messages.WARNING,
                    )
                if result.run is None:
                    summary = result.summary
                    self.message_user(request, "Dry run: nothing was written.", messages.INFO)
                else:
                    run = result.run
                    self.message_user(
                        request,
                        f"Run #{run.pk}: {run.matched} matched, {run.discrepancy} discrepancies, {run.not_found} not "
                        f"found, {run.not_in_export} not in export, {run.errors} errors; match rate "
                        f"{rate_display(run.match_rate)}.",
                        messages.SUCCESS if not run.discrepancy and not run.errors else messages.WARNING,
                    )
                    return HttpResponseRedirect(reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk]))
        context = {**self._context(request, "Reconcile a provider file"), "form": form, "summary": summary}
        return TemplateResponse(request, "admin/reconciliation/upload.html", context)

    def lines_csv_view(self, request: HttpRequest, run_id: int) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(ReconciliationRun, pk=run_id)
        status = request.GET.get("status") or None
        if status is not None and status not in ReconciliationLine.Status.values:
            status = None
        lines = selectors.run_lines(run=run, status=status).values_list(*selectors.LINE_EXPORT_FIELDS)

        def rows() -> Iterator[str]:
            buffer = _Echo()
            writer = csv.writer(buffer)
            yield writer.writerow(selectors.LINE_EXPORT_FIELDS)
            for values in lines.iterator(chunk_size=5000):
                yield writer.writerow([_csv_cell(v) for v in values])

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        suffix = f"-{status}" if status else ""
        response["Content-Disposition"] = f'attachment; filename="reconciliation-run-{run.pk}{suffix}.csv"'
        return response

    # --- reports --------------------------------------------------------------------------------------------------

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def margin_report_view(self, request: HttpRequest) -> HttpResponse:
        self._require_view(request)
        today = timezone.now().astimezone(UTC).date()
        month = _month_from(request.GET.get("month"), default=today.replace(day=1))
        end = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        last_day = date.fromordinal(end.toordinal() - 1)
        by_model = selectors.margin_by_model(start=month, end=last_day)
        by_account = selectors.margin_by_account(start=month, end=last_day)
        months = selectors.month_starts(last=month, count=REPORT_MONTHS)
        by_month = selectors.margin_by_month(months=months)
        charts = [
            bar_chart(
                title="Customer charge, provider cost and margin per month",
                categories=[row.label for row in by_month],
                series=[
                    Series("charge", [r.charge_usd for r in by_month]),
                    Series("provider cost", [r.cost_usd for r in by_month]),
                    Series("margin", [r.margin_usd for r in by_month]),
                ],
            ),
            bar_chart(
                title=f"Margin by model, {month:%B %Y}",
                categories=[row.label for row in by_model[:MARGIN_CHART_ROWS]],
                series=[Series("margin", [r.margin_usd for r in by_model[:MARGIN_CHART_ROWS]])],
            ),
        ]
        tables = [
            ("By month", by_month, selectors.margin_total(by_month)),
            (f"By model, {month:%B %Y}", by_model, selectors.margin_total(by_model)),
            (f"By account, {month:%B %Y}", by_account, selectors.margin_total(by_account)),
        ]
        context = {
            **self._context(request, f"Margin: customer charge minus provider cost ({month:%B %Y})"),
            "charts": charts,
            "margin_tables": [
                {"title": title, "rows": [_margin_cells(r) for r in rows], "total": _margin_cells(total)}
                for title, rows, total in tables
            ],
            "month": f"{month:%Y-%m}",
            "intro": (
                "From the daily usage rollups (UTC days): the customer charge of each event against its rated "
                "provider cost. Plan fees are not included. Amounts are rounded for display."
            ),
        }
        return TemplateResponse(request, "admin/reconciliation/report.html", context)

    def trend_report_view(self, request: HttpRequest) -> HttpResponse:
        self._require_view(request)
        today = timezone.now().astimezone(UTC).date()
        months = selectors.month_starts(last=today.replace(day=1), count=REPORT_MONTHS)
        trend = selectors.provider_trend(months=months)
        categories = [f"{row.month:%Y-%m}" for row in trend]
        charts = [
            line_chart(
                title="Provider actual against our calculation, per month",
                categories=categories,
                series=[
                    Series("provider actual", [r.actual_usd for r in trend]),
                    Series("our calculation", [r.calculated_usd for r in trend]),
                ],
            ),
            bar_chart(
                title="Difference (actual - calculated), per month",
                categories=categories,
                series=[Series("difference", [r.difference_usd for r in trend])],
            ),
        ]
        context = {
            **self._context(request, "Provider bill against our calculation"),
            "charts": charts,
            "trend_rows": [
                {
                    "month": f"{r.month:%Y-%m}",
                    "actual": usd_display(r.actual_usd, "0.01"),
                    "calculated": usd_display(r.calculated_usd, "0.01"),
                    "difference": usd_display(r.difference_usd, "0.01"),
                    "runs": r.runs,
                }
                for r in trend
            ],
            "intro": (
                "From completed runs of cost exports, cost reports and gateway logs (usage exports carry no amounts). "
                "Where several runs of one source cover a day, the latest counts."
            ),
        }
        return TemplateResponse(request, "admin/reconciliation/report.html", context)


class _Echo:
    """A file-like object whose write returns what it was given, for streaming a CSV."""

    def write(self, value: str) -> str:
        return value


def _month_from(text: str | None, *, default: date) -> date:
    if text:
        try:
            year, month = (int(part) for part in text.split("-", 1))
            return date(year, month, 1)
        except ValueError:
            pass
    return default


def _margin_cells(row: selectors.MarginRow) -> dict[str, str]:
    return {
        "label": row.label,
        "events": f"{row.events:,}",
        "charge": usd_display(row.charge_usd, "0.01"),
        "cost": usd_display(row.cost_usd, "0.01"),
        "margin": usd_display(row.margin_usd, "0.01"),
        "margin_pct": "-" if row.margin_pct is None else f"{row.margin_pct} %",
    }


# --- lines --------------------------------------------------------------------------------------------------------


class RunFilter(admin.SimpleListFilter):
    title = "run"
    parameter_name = "run"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(run.pk), str(run)) for run in selectors.runs_recent(limit=20)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(run_id=value) if value and value.isdigit() else queryset


@admin.register(ReconciliationLine)
class ReconciliationLineAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_price_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pricing.add_modelprice")

    @admin.display(description="run", ordering="run")
    def run_link(self, line: ReconciliationLine) -> str:
        url = reverse("admin:reconciliation_reconciliationrun_change", args=[line.run_id])
        return format_html('<a href="{}">#{}</a>', url, line.run_id)

    @admin.display(description="calculated")
    def calculated(self, line: ReconciliationLine) -> str:
        return usd_display(line.calculated_usd, "0.000001")

    @admin.display(description="actual")
    def actual(self, line: ReconciliationLine) -> str:
        return usd_display(line.actual_usd, "0.000001")

    @admin.display(description="difference")
    def difference(self, line: ReconciliationLine) -> str:
        return usd_display(line.difference_usd, "0.000001")

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
