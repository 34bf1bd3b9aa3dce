"""The reconciliation reports: margin per period (charge against provider cost) and the provider's bill against our
calculation by month, as views of the runs' admin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from pricing import display
from reconciliation import selectors
from reconciliation.charts import Series, bar_chart, line_chart

REPORT_MONTHS = 12
MARGIN_CHART_ROWS = 15


class RunReports:
    """The report views the runs' admin serves (see its get_urls)."""

    admin_site: Any  # the ModelAdmin's, as it comes after this class in the runs' admin
    opts: Any
    has_view_permission: Callable[..., bool]

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title}

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
                    "actual": display.usd(r.actual_usd, 2),
                    "calculated": display.usd(r.calculated_usd, 2),
                    "difference": display.usd(r.difference_usd, 2),
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
        "charge": display.usd(row.charge_usd, 2),
        "cost": display.usd(row.cost_usd, 2),
        "margin": display.usd(row.margin_usd, 2),
        "margin_pct": "-" if row.margin_pct is None else f"{row.margin_pct} %",
    }
