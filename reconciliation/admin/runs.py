"""Runs in the console: the list with match rates, a run with its lines by status and reasons, the upload form and
the lines as CSV."""

from __future__ import annotations

import itertools
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from core.csv_export import csv_lines
from pricing import display
from reconciliation import selectors
from reconciliation.admin.reports import RunReports
from reconciliation.models import ReconciliationLine, ReconciliationRun
from reconciliation.parsers import SOURCES, UnreadableFile
from reconciliation.services.runs import reconciliation_run


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


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(RunReports, admin.ModelAdmin):
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
        return display.percent(run.match_rate)

    @admin.display(description="actual - calculated", ordering="difference_usd")
    def difference(self, run: ReconciliationRun) -> str:
        return display.usd(run.difference_usd, 4)

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
                        f"{display.percent(run.match_rate)}.",
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

        rows = itertools.chain([selectors.LINE_EXPORT_FIELDS], lines.iterator(chunk_size=5000))
        response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
        suffix = f"-{status}" if status else ""
        response["Content-Disposition"] = f'attachment; filename="reconciliation-run-{run.pk}{suffix}.csv"'
        return response
