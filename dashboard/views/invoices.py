"""Invoices: the account's closed periods as billed."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.selectors import account_invoice_list
from dashboard.views.access import (
    AccountContext,
    dashboard_view,
    page_context,
)
from pricing.money import Money


@require_GET
@dashboard_view()
def invoices(request: HttpRequest, context: AccountContext) -> HttpResponse:
    rows = [
        {"invoice": invoice, "amount": Money.from_minor_units(invoice.amount_cents, invoice.currency)}
        for invoice in account_invoice_list(account=context.account)
    ]
    return render(request, "dashboard/invoices.html", page_context(context, "invoices", rows=rows))
