"""The account dashboard at the site root (config/urls.py includes these at "")."""

from django.urls import path

from dashboard import portal, views

urlpatterns = [
    path("", views.balance, name="dashboard-balance"),
    path("account/switch/", views.account_switch, name="dashboard-switch"),
    path("top-up/", views.topup, name="dashboard-topup"),
    path("top-up/auto-recharge/", views.auto_recharge, name="dashboard-auto-recharge"),
    path("top-up/success/", views.topup_success, name="dashboard-topup-success"),
    path("top-up/canceled/", views.topup_canceled, name="dashboard-topup-canceled"),
    path("plans/", views.plans, name="dashboard-plans"),
    path("plans/subscribe/", views.plan_subscribe, name="dashboard-plan-subscribe"),
    path("plans/cancel/", views.plan_cancel, name="dashboard-plan-cancel"),
    path("usage/", views.usage_history, name="dashboard-usage"),
    path("usage/export.csv", views.usage_csv, name="dashboard-usage-csv"),
    path("invoices/", views.invoices, name="dashboard-invoices"),
    path("keys/", views.api_keys, name="dashboard-keys"),
    path("keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="dashboard-key-revoke"),
    path("alerts/", views.alerts, name="dashboard-alerts"),
    path("alerts/settings/", views.alert_settings, name="dashboard-alert-settings"),
    path("alerts/test/", views.alert_test, name="dashboard-alert-test"),
    path("portal/<str:token>", portal.portal_enter, name="dashboard-portal"),
]
