"""Invoices in the console: read-only, with what their outbox still has to send."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from billing.admin.base import admin_link
from billing.models import Invoice, InvoiceOutbox
from billing.services.overage import overage_invoice_send
from core.admin_base import ViewOnlyAdmin
from pricing.money import Money, MoneyError


class InvoiceLateUsageFilter(admin.SimpleListFilter):
    title = "late usage"
    parameter_name = "late_usage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "bills late usage")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(late_usage__gt=0) if self.value() == "yes" else queryset


class OutboxPendingFilter(admin.SimpleListFilter):
    title = "outbox"
    parameter_name = "outbox"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("pending", "something still to send")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "pending":
            return queryset.filter(outbox__status=InvoiceOutbox.Status.PENDING).distinct()
        return queryset


def invoice_amount(invoice: Invoice) -> str:
    """The total billed, from its minor units (cents)."""
    try:
        return str(Money.from_minor_units(invoice.amount_cents, invoice.currency))
    except MoneyError:
        return f"{invoice.amount_cents} (minor units of {invoice.currency})"


@admin.register(Invoice)
class InvoiceAdmin(ViewOnlyAdmin):
    list_display = [
        "id", "account_link", "period_dates", "plan_code", "amount", "status", "stripe_invoice_id", "paid_at",
        "created_at",
    ]  # fmt: skip
    list_filter = ["status", InvoiceLateUsageFilter, OutboxPendingFilter, "currency"]
    list_select_related = ["account", "period"]
    search_fields = ["account__name", "account__id__exact", "stripe_invoice_id"]
    search_help_text = "Account name or id, Stripe invoice id."
    fields = readonly_fields = (
        "account_link", "period_link", "plan_code", "unit", "units", "included_units", "overage_units",
        "input_tokens", "output_tokens", "messages", "api_cost_usd", "charge_usd", "base_charge", "overage",
        "cap_applied", "late_usage_lines", "total", "currency", "amount", "status", "stripe_invoice_id",
        "hosted_invoice_url", "paid_at", "created_at", "outbox_shown",
    )  # fmt: skip
    actions = ["send_overage"]

    def has_send_overage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_invoice")

    @admin.action(
        description="Send the overage of the selected invoices to Stripe (once; e.g. closed while Stripe was off)",
        permissions=["send_overage"],
    )
    def send_overage(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        # the same idempotent path as the period close: an invoice already sent is answered from its cursor, and a
        # step a crash interrupted is resumed with its key, so Stripe never bills an overage twice
        now = timezone.now()
        for invoice in queryset.order_by("pk"):
            outcome = overage_invoice_send(invoice=invoice, as_of=now)
            if outcome.status == "invoiced":
                messages.success(
                    request, f"{outcome.message} ({Money.from_minor_units(outcome.amount_cents, invoice.currency)})"
                )
            elif outcome.status in ("no_overage", "nothing_due"):
                messages.info(request, outcome.message)
            else:  # stripe_off, failed (the retry job resumes it), payment_failed
                messages.warning(request, outcome.message)

    @admin.display(description="account", ordering="account__name")
    def account_link(self, invoice: Invoice) -> str | SafeString:
        return admin_link(invoice.account)

    @admin.display(description="period", ordering="period__start")
    def period_dates(self, invoice: Invoice) -> str:
        return f"{invoice.period.start:%Y-%m-%d} to {invoice.period.end:%Y-%m-%d}"

    @admin.display(description="period")
    def period_link(self, invoice: Invoice) -> str | SafeString:
        return admin_link(invoice.period, self.period_dates(invoice))

    @admin.display(description="amount billed", ordering="amount_cents")
    def amount(self, invoice: Invoice) -> str:
        return invoice_amount(invoice)

    @admin.display(description="late usage")
    def late_usage_lines(self, invoice: Invoice) -> str | SafeString:
        rows = list(invoice.late_usage_adjustments.select_related("period"))
        if not rows:
            return "none"
        return format_html_join(
            "; ", "{} events of {} to {}: {} {}",
            ((r.messages, f"{r.period.start:%Y-%m-%d}", f"{r.period.end:%Y-%m-%d}", r.amount.normalize(), r.currency)
             for r in rows),
        )  # fmt: skip

    @admin.display(description="what follows the invoice (outbox)")
    def outbox_shown(self, invoice: Invoice) -> str | SafeString:
        rows = list(invoice.outbox.all())
        if not rows:
            return "none"
        return format_html_join(
            "; ", "{}: {}{}",
            ((r.get_kind_display(), r.status, f" ({r.last_error})" if r.last_error else "") for r in rows),
        )  # fmt: skip
