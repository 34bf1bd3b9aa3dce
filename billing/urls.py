from django.urls import path

from billing import api

urlpatterns = [
    path("api/billing/balance", api.WalletBalanceApi.as_view(), name="billing-balance"),
    path("api/billing/invoices", api.InvoiceListApi.as_view(), name="billing-invoices"),
    path("api/billing/invoices/<int:invoice_id>", api.InvoiceDetailApi.as_view(), name="billing-invoice"),
    path("api/tokens/usage", api.UsageSummaryApi.as_view(), name="tokens-usage"),
]
