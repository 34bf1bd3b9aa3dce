"""The daily rollups and the three usage reports (monthly billing, high-cost accounts, projected month-end)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode

from core.admin_base import ViewOnlyAdmin
from pricing import display
from usage import selectors
from usage.admin.base import _account_url
from usage.admin.home import report_links
from usage.admin.report_tables import (
    PROJECTION_COLUMNS,
    USAGE_COLUMNS,
    Column,
    MonthForm,
    ReportTable,
    _month_bounds,
    today_utc,
)
from usage.models import DailyUsage

HIGH_COST_LIMIT = 50
PROJECTED_PAGE_LIMIT = 500  # rows on the projected page; its CSV has every account
REPORT_TEMPLATE = "admin/usage/report.html"


@admin.register(DailyUsage)
class DailyUsageAdmin(ViewOnlyAdmin):
    list_display = ("day", "account", "model_id", "operation_type", "events", "input_tokens", "output_tokens",
                    "cost", "charge", "credits_used")  # fmt: skip
    list_filter = (("day", admin.DateFieldListFilter), "operation_type")
    search_fields = ("account__name", "model_id")
    list_select_related = ("account",)
    show_full_result_count = False
    change_list_template = "admin/usage/dailyusage/change_list.html"

    @admin.display(description="provider cost")
    def cost(self, row: DailyUsage) -> str:
        return display.usd(row.cost_usd, 4)

    @admin.display(description="charge")
    def charge(self, row: DailyUsage) -> str:
        return display.usd(row.charge_usd, 4)

    @admin.display(description="credits")
    def credits_used(self, row: DailyUsage) -> str:
        return display.credits(row.credits, 2)

    # --- reports ------------------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("reports/billing/", view(self.billing_report_view), name="usage_report_billing"),
            path("reports/high-cost/", view(self.high_cost_view), name="usage_report_high_cost"),
            path("reports/projected/", view(self.projected_view), name="usage_report_projected"),
            *super().get_urls(),
        ]

    def _report_page(
        self, request: HttpRequest, *, title: str, intro: str, tables: Iterable[ReportTable], **extra: Any
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "intro": intro,
            "tables": list(tables),
            "reports": report_links(),
            **extra,
        }
        return TemplateResponse(request, REPORT_TEMPLATE, context)

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def billing_report_view(self, request: HttpRequest) -> HttpResponse:
        self._require_view(request)
        today = today_utc()
        form = MonthForm(request.GET if "month" in request.GET else None, initial={"month": today.replace(day=1)})
        month = form.cleaned_data["month"].replace(day=1) if form.is_valid() else today.replace(day=1)
        if form.is_bound and not form.is_valid():
            self.message_user(request, "Month must look like 2026-11; showing this month.", messages.WARNING)
        start, end = _month_bounds(month)
        by_operation = selectors.billing_report_by_operation(start=start, end=end)
        by_account = selectors.billing_report_by_account(start=start, end=end)
        base = reverse("admin:usage_report_billing")
        tables = {
            "operation": ReportTable(
                key="operation", title="By operation type",
                columns=[Column("Operation type", lambda r: r.label), *USAGE_COLUMNS], rows=by_operation,
                total=selectors.billing_report_total(rows=by_operation),
                csv_url=f"{base}?{urlencode({'month': f'{month:%Y-%m}', 'table': 'operation', 'format': 'csv'})}",
            ),
            "account": ReportTable(
                key="account", title="By account",
                columns=[Column("Account", lambda r: r.label), Column("Account id", lambda r: r.account_id or ""),
                         Column("Plan", lambda r: (r.plan_code or "-") if r.account_id else ""), *USAGE_COLUMNS],
                rows=by_account, total=selectors.billing_report_total(rows=by_account),
                csv_url=f"{base}?{urlencode({'month': f'{month:%Y-%m}', 'table': 'account', 'format': 'csv'})}",
                link=lambda r: _account_url(r.account_id),
            ),
        }  # fmt: skip
        if request.GET.get("format") == "csv":
            table = tables.get(request.GET.get("table", ""), tables["operation"])
            return table.csv_response(f"billing-{month:%Y-%m}-by-{table.key}.csv")
        return self._report_page(
            request,
            title=f"Monthly billing report: {month:%B %Y}",
            intro=(
                f"Usage from {start:%Y-%m-%d} to {end:%Y-%m-%d} (UTC days), from the daily rollups. Accounts show "
                "the plan they are on now. Amounts are rounded for display; the CSV files carry them unrounded."
            ),
            tables=tables.values(),
            month_form=form if form.is_bound and form.is_valid() else MonthForm(initial={"month": month}),
        )

    def high_cost_view(self, request: HttpRequest) -> HttpResponse:
        self._require_view(request)
        today = today_utc()
        rows = selectors.accounts_high_cost_today(today=today, limit=HIGH_COST_LIMIT)
        return self._projection_report(
            request,
            rows=rows,
            key="high-cost",
            title=f"High-cost accounts today ({today:%Y-%m-%d} UTC)",
            table_title=f"Top {HIGH_COST_LIMIT} accounts by today's charge",
            today=today,
        )

    def projected_view(self, request: HttpRequest) -> HttpResponse:
        self._require_view(request)
        today = today_utc()
        rows = selectors.accounts_projected_month(today=today)
        return self._projection_report(
            request,
            rows=rows,
            key="projected",
            title=f"Projected month-end cost per account ({today:%B %Y})",
            table_title="Accounts with usage this month, highest projected charge first",
            today=today,
            page_limit=PROJECTED_PAGE_LIMIT,
        )

    def _projection_report(
        self,
        request: HttpRequest,
        *,
        rows: list[selectors.AccountMonthProjection],
        key: str,
        title: str,
        table_title: str,
        today: date,
        page_limit: int | None = None,
    ) -> HttpResponse:
        url_name = "admin:usage_report_high_cost" if key == "high-cost" else "admin:usage_report_projected"
        table = ReportTable(
            key=key, title=table_title, columns=PROJECTION_COLUMNS, rows=rows,
            csv_url=f"{reverse(url_name)}?format=csv", link=lambda p: _account_url(p.account_id),
        )  # fmt: skip
        if request.GET.get("format") == "csv":
            return table.csv_response(f"{key}-{today:%Y-%m-%d}.csv")
        if page_limit is not None and len(rows) > page_limit:
            table = ReportTable(
                key=key, title=table_title, columns=PROJECTION_COLUMNS, rows=rows[:page_limit],
                csv_url=table.csv_url, link=table.link,
                note=f"The first {page_limit} of {len(rows)} accounts; the CSV has them all.",
            )  # fmt: skip
        days = _month_bounds(today.replace(day=1))[1].day
        return self._report_page(
            request,
            title=title,
            intro=(
                f"From the daily rollups (UTC days). Projected month = this month so far / {today.day} day"
                f"{'s' if today.day != 1 else ''} elapsed (today counts as a whole day) x {days} days in the month. "
                "Usage charges only: plan fees are not included. Plans are the ones in force now."
            ),
            tables=[table],
        )
