from django.urls import path

from billing import api, api_stripe, webhook_views

urlpatterns = [
    path("api/billing/balance", api.WalletBalanceApi.as_view(), name="billing-balance"),
    path("api/billing/invoices", api.InvoiceListApi.as_view(), name="billing-invoices"),
    path("api/billing/invoices/<int:invoice_id>", api.InvoiceDetailApi.as_view(), name="billing-invoice"),
    path("api/tokens/usage", api.UsageSummaryApi.as_view(), name="tokens-usage"),
    # Stripe: card top-ups, auto-recharge, subscriptions, the webhook
    path("api/billing/stripe", api_stripe.StripeStatusApi.as_view(), name="billing-stripe-status"),
    path("api/billing/topups", api_stripe.TopUpCreateApi.as_view(), name="billing-topups"),
    path("api/billing/topups/<int:topup_id>", api_stripe.TopUpDetailApi.as_view(), name="billing-topup"),
    path("api/billing/auto-recharge", api_stripe.AutoRechargeApi.as_view(), name="billing-auto-recharge"),
    path("api/billing/subscription", api_stripe.SubscriptionStripeApi.as_view(), name="billing-subscription"),
    path("api/stripe/webhook", webhook_views.stripe_webhook, name="stripe-webhook"),
]
