from django.urls import path

from billing import api, api_stripe, webhook_views
from billing.api_customers import api_keys, credits, customers, portal, reads

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
    # the customers API (server keys); /stats lives in usage/urls.py
    path("api/customers", customers.CustomerListApi.as_view(), name="customers"),
    path("api/customers/<str:external_id>", customers.CustomerDetailApi.as_view(), name="customer"),
    path("api/customers/<str:external_id>/suspend", customers.CustomerSuspendApi.as_view(), name="customer-suspend"),
    path(
        "api/customers/<str:external_id>/reactivate",
        customers.CustomerReactivateApi.as_view(),
        name="customer-reactivate",
    ),
    path("api/customers/<str:external_id>/plan", customers.CustomerPlanApi.as_view(), name="customer-plan"),
    path("api/customers/<str:external_id>/credits", credits.CustomerCreditsApi.as_view(), name="customer-credits"),
    path("api/customers/<str:external_id>/api-keys", api_keys.CustomerApiKeysApi.as_view(), name="customer-keys"),
    path(
        "api/customers/<str:external_id>/api-keys/<str:key_id>",
        api_keys.CustomerApiKeyRevokeApi.as_view(),
        name="customer-key",
    ),
    path("api/customers/<str:external_id>/balance", reads.CustomerBalanceApi.as_view(), name="customer-balance"),
    path("api/customers/<str:external_id>/usage", reads.CustomerUsageApi.as_view(), name="customer-usage"),
    path(
        "api/customers/<str:external_id>/invoices",
        reads.CustomerInvoicesApi.as_view(),
        name="customer-invoices",
    ),
    path(
        "api/customers/<str:external_id>/portal-sessions",
        portal.CustomerPortalSessionApi.as_view(),
        name="customer-portal-sessions",
    ),
]
