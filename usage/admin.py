"""The usage console: events, dead letters, reservations and rollups in the Django admin, and the usage reports.

Events, reservations and rollups are written by the recording and authorization services only, so they are
read-only here. Dead letters are read-only too, but can be replayed (after the catalog is fixed) or discarded
through the replay services. The reports read the daily rollups, never the events table, and each table downloads
as CSV with the unrounded amounts; pages show amounts rounded for display only.
"""

from __future__ import annotations

import csv
import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import urlencode

from billing.errors import BillingError
from core.admin_base import ViewOnlyAdmin
from pricing.models import AIModel
from usage import selectors
from usage.models import Alert, AlertDelivery, DailyUsage, RejectedEvent, Reservation, UsageEvent
from usage.services.recording import DUPLICATE, RECORDED, REJECTED
from usage.services.replay import DISCARDED, SKIPPED, rejected_event_discard, rejected_event_replay

COUNT_CAP = 10_000  # the events changelist counts matches up to this, never the whole table
HIGH_COST_LIMIT = 50
PROJECTED_PAGE_LIMIT = 500  # rows on the projected page; its CSV has every account
REPORT_TEMPLATE = "admin/usage/report.html"


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 matches (a bounded subquery), so a page of a huge table never waits on COUNT(*)."""

    @cached_property
    def count(self) -> int:
        object_list: Any = self.object_list
        if isinstance(object_list, QuerySet):
            return object_list[: COUNT_CAP + 1].count()
        return len(object_list)


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def _display(value: Decimal, places: str) -> str:
    """A display value: rounded half up, with thousands separators; the stored amount stays unrounded."""
    return f"{value.quantize(Decimal(places), rounding=ROUND_HALF_UP):,}"


def usd_display(value: Decimal) -> str:
    return "$" + _display(value, "0.0001")


def credits_display(value: Decimal) -> str:
    return _display(value, "0.01")


def _account_url(account_id: int | None) -> str:
    if account_id is None:
        return ""
    try:
        return reverse("admin:billing_account_change", args=[account_id])
    except NoReverseMatch:
        return ""


# --- usage events ----------------------------------------------------------------------------------------------


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
        return usd_display(event.charge_usd)

    @admin.display(description="credits")
    def credits_used(self, event: UsageEvent) -> str:
        return credits_display(event.credits)

    @admin.display(description="breakdown")
    def breakdown_pretty(self, event: UsageEvent) -> str:
        return _pretty_json(event.breakdown)

    @admin.display(description="metadata")
    def metadata_pretty(self, event: UsageEvent) -> str:
        return _pretty_json(event.metadata)


# --- dead letters ----------------------------------------------------------------------------------------------

OUTCOME_WORDS = {  # in the order the action's message lists them
    RECORDED: "recorded",
    DUPLICATE: "already recorded (duplicate)",
    REJECTED: "refused again (see Replay result)",
    DISCARDED: "discarded",
    SKIPPED: "skipped (not pending)",
    "failed": "failed",
}


def outcome_summary(verb: str, outcomes: Counter[str]) -> str:
    """The action's message, e.g. 'Replayed 3: 2 recorded, 1 refused again (see Replay result).'"""
    parts = [f"{outcomes[outcome]} {words}" for outcome, words in OUTCOME_WORDS.items() if outcomes[outcome]]
    parts += [f"{count} {outcome}" for outcome, count in outcomes.items() if outcome not in OUTCOME_WORDS]
    return f"{verb} {sum(outcomes.values())}: " + ", ".join(parts) + "."


@admin.register(RejectedEvent)
class RejectedEventAdmin(ViewOnlyAdmin):
    list_display = ("received_at", "account", "request_id", "error_code", "short_message", "status", "replay_result")
    list_filter = (
        "error_code",
        "status",
        ("received_at", admin.DateFieldListFilter),
        ("account", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("request_id",)
    search_help_text = "Part of a request id."
    list_select_related = ("account",)
    actions = ("replay_selected", "discard_selected")
    fields = ("account", "request_id", "error_code", "error_message", "received_at", "status", "replayed_at",
              "replay_result", "payload_pretty", "raw_payload", "ip", "user_agent")  # fmt: skip
    readonly_fields = fields

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("usage.change_rejectedevent")

    @admin.display(description="message")
    def short_message(self, rejected: RejectedEvent) -> str:
        text = rejected.error_message
        return text if len(text) <= 80 else text[:79] + "…"

    @admin.display(description="payload")
    def payload_pretty(self, rejected: RejectedEvent) -> str:
        return _pretty_json(rejected.payload)

    def _run(
        self, request: HttpRequest, queryset: QuerySet[RejectedEvent], verb: str, service: Callable[..., str]
    ) -> None:
        outcomes: Counter[str] = Counter()
        failures: list[str] = []
        for rejected in queryset.select_related("account").order_by("received_at", "pk"):
            try:
                outcomes[service(rejected=rejected, actor=request.user)] += 1
            except BillingError as exc:  # e.g. the account has no subscription: this row only
                outcomes["failed"] += 1
                failures.append(f"#{rejected.pk}: {exc.message}")
        level = messages.WARNING if outcomes[REJECTED] or outcomes["failed"] else messages.SUCCESS
        summary = outcome_summary(verb, outcomes)
        if failures:
            summary += " " + "; ".join(failures[:5])
        self.message_user(request, summary, level)

    @admin.action(description="Replay selected events", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[RejectedEvent]) -> None:
        self._run(request, queryset, "Replayed", rejected_event_replay)

    @admin.action(description="Discard selected events", permissions=["replay"])
    def discard_selected(self, request: HttpRequest, queryset: QuerySet[RejectedEvent]) -> None:
        self._run(request, queryset, "Discarded", rejected_event_discard)


# --- reservations and rollups ----------------------------------------------------------------------------------


@admin.register(Reservation)
class ReservationAdmin(ViewOnlyAdmin):
    list_display = ("request_id", "account", "model_id", "operation_type", "held", "status", "created_at",
                    "expires_at", "closed_at")  # fmt: skip
    list_filter = ("status",)
    search_fields = ("=request_id", "account__name")
    list_select_related = ("account",)
    show_full_result_count = False

    @admin.display(description="held credits")
    def held(self, reservation: Reservation) -> str:
        return credits_display(reservation.held_credits)


class MonthForm(forms.Form):
    month = forms.DateField(input_formats=["%Y-%m"], widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m"))


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Any], Any]
    kind: str = "text"  # text, int, usd or credits: how the page shows it; the CSV has the raw value


@dataclass
class ReportTable:
    key: str
    title: str
    columns: list[Column]
    rows: list[Any]
    total: Any = None
    csv_url: str = ""
    link: Callable[[Any], str] | None = None
    note: str = ""
    body: list[dict[str, Any]] = field(init=False)
    footer: list[dict[str, Any]] | None = field(init=False)

    def __post_init__(self) -> None:
        self.body = [{"url": self.link(row) if self.link else "", "cells": self._cells(row)} for row in self.rows]
        self.footer = self._cells(self.total) if self.total is not None else None

    def _cells(self, row: Any) -> list[dict[str, Any]]:
        return [{"text": _cell(c.kind, c.value(row)), "num": c.kind != "text"} for c in self.columns]

    def csv_response(self, filename: str) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        writer = csv.writer(response)
        writer.writerow([column.header for column in self.columns])
        for row in self.rows:
            writer.writerow([_csv_cell(column.value(row)) for column in self.columns])
        return response


def _cell(kind: str, value: Any) -> str:
    if kind == "usd":
        return usd_display(value)
    if kind == "credits":
        return credits_display(value)
    if kind == "int":
        return f"{value:,}"
    return str(value)


def _csv_cell(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if not isinstance(value, str):
        return str(value)
    # text a spreadsheet would run as a formula (an account named "=cmd|...") is kept as text
    return "'" + value if len(value) > 1 and value[0] in "=+-@\t\r" else value


USAGE_COLUMNS = [
    Column("Events", lambda r: r.events, "int"),
    Column("Input tokens", lambda r: r.input_tokens, "int"),
    Column("Output tokens", lambda r: r.output_tokens, "int"),
    Column("Provider cost (USD)", lambda r: r.cost_usd, "usd"),
    Column("Customer charge (USD)", lambda r: r.charge_usd, "usd"),
    Column("Credits", lambda r: r.credits, "credits"),
]

PROJECTION_COLUMNS = [
    Column("Account", lambda p: p.account_name),
    Column("Account id", lambda p: p.account_id),
    Column("Plan", lambda p: p.plan_code or "-"),
    Column("Today: events", lambda p: p.today_events, "int"),
    Column("Today: charge (USD)", lambda p: p.today_charge_usd, "usd"),
    Column("Month so far: events", lambda p: p.month_events, "int"),
    Column("Month so far: provider cost (USD)", lambda p: p.month_cost_usd, "usd"),
    Column("Month so far: charge (USD)", lambda p: p.month_charge_usd, "usd"),
    Column("Projected month: provider cost (USD)", lambda p: p.projected_cost_usd, "usd"),
    Column("Projected month: charge (USD)", lambda p: p.projected_charge_usd, "usd"),
    Column("Projected month: credits", lambda p: p.projected_credits, "credits"),
]


def today_utc() -> date:
    return timezone.now().astimezone(UTC).date()


def _month_bounds(month: date) -> tuple[date, date]:
    next_month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return month, date.fromordinal(next_month.toordinal() - 1)


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
        return usd_display(row.cost_usd)

    @admin.display(description="charge")
    def charge(self, row: DailyUsage) -> str:
        return usd_display(row.charge_usd)

    @admin.display(description="credits")
    def credits_used(self, row: DailyUsage) -> str:
        return credits_display(row.credits)

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


# --- the console home: report links in the usage section ------------------------------------------------------


def report_links() -> list[dict[str, str]]:
    return [
        {"name": "Report: monthly billing", "object_name": "BillingReport",
         "url": reverse("admin:usage_report_billing")},
        {"name": "Report: high-cost accounts today", "object_name": "HighCostReport",
         "url": reverse("admin:usage_report_high_cost")},
        {"name": "Report: projected month-end", "object_name": "ProjectedReport",
         "url": reverse("admin:usage_report_projected")},
    ]  # fmt: skip


def _with_report_links(get_app_list: Callable[..., list[dict[str, Any]]]) -> Callable[..., list[dict[str, Any]]]:
    """The app list with the usage reports as rows of the usage section (home page, usage page and sidebar)."""

    @functools.wraps(get_app_list)
    def wrapped(request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        app_list = get_app_list(request, app_label)
        if not admin.site.get_model_admin(DailyUsage).has_view_permission(request):
            return app_list
        for app in app_list:
            if app.get("app_label") == "usage":
                app["models"].extend(
                    {"model": None, "name": link["name"], "object_name": link["object_name"], "perms": {"view": True},
                     "admin_url": link["url"], "add_url": None, "view_only": True}
                    for link in report_links()
                )  # fmt: skip
        return app_list

    return wrapped


# The default site is shared by every app; only its app list is wrapped (pricing wraps its index view).
admin.site.get_app_list = _with_report_links(admin.site.get_app_list)  # type: ignore[method-assign]


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


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    extra = 0
    can_delete = False
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
