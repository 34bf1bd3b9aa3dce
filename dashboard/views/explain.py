"""Explain a charge: an event, or an invoice's usage down to its events, with the price versions and rates that made
it. Owners only; an id of another account's event or invoice is not there (404)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.explain import event_explanation, invoice_explanation
from dashboard.views.access import AccountContext, dashboard_view, page_context
from pricing.money import Money


@require_GET
@dashboard_view(owner=True)
def event_explain(request: HttpRequest, context: AccountContext, event_id: int) -> HttpResponse:
    explanation = event_explanation(account=context.account, event_id=event_id)
    if explanation is None:
        raise Http404("no such event")
    return render(request, "dashboard/explain_event.html", page_context(context, "usage", explained=explanation))


@require_GET
@dashboard_view(owner=True)
def invoice_explain(request: HttpRequest, context: AccountContext, invoice_id: int) -> HttpResponse:
    explanation = invoice_explanation(account=context.account, invoice_id=invoice_id)
    if explanation is None:
        raise Http404("no such invoice")
    invoice = explanation.invoice
    values = {"explained": explanation, "amount": Money.from_minor_units(invoice.amount_cents, invoice.currency)}
    return render(request, "dashboard/explain_invoice.html", page_context(context, "invoices", **values))
