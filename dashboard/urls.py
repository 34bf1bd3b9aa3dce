"""The account dashboard at the site root (config/urls.py includes these at "")."""

from django.urls import path

from dashboard.views import access, alerts, balance, invoices, keys, members, plans, portal, topups, usage

urlpatterns = [
    path("", balance.balance, name="dashboard-balance"),
    path("account/switch/", access.account_switch, name="dashboard-switch"),
    path("top-up/", topups.topup, name="dashboard-topup"),
    path("top-up/test-checkout/", topups.topup_test_checkout, name="dashboard-topup-test-checkout"),
    path("top-up/auto-recharge/", topups.auto_recharge, name="dashboard-auto-recharge"),
    path("top-up/success/", topups.topup_success, name="dashboard-topup-success"),
    path("top-up/canceled/", topups.topup_canceled, name="dashboard-topup-canceled"),
    path("plans/", plans.plans, name="dashboard-plans"),
    path("plans/subscribe/", plans.plan_subscribe, name="dashboard-plan-subscribe"),
    path("plans/cancel/", plans.plan_cancel, name="dashboard-plan-cancel"),
    path("usage/", usage.usage_history, name="dashboard-usage"),
    path("usage/users/", usage.usage_by_user, name="dashboard-usage-users"),
    path("usage/export.csv", usage.usage_csv, name="dashboard-usage-csv"),
    path("invoices/", invoices.invoices, name="dashboard-invoices"),
    path("keys/", keys.api_keys, name="dashboard-keys"),
    path("keys/<int:key_id>/revoke/", keys.api_key_revoke_view, name="dashboard-key-revoke"),
    path("members/", members.members, name="dashboard-members"),
    path("members/<int:membership_id>/remove/", members.member_remove_view, name="dashboard-member-remove"),
    path("alerts/", alerts.alerts, name="dashboard-alerts"),
    path("alerts/settings/", alerts.alert_settings, name="dashboard-alert-settings"),
    path("alerts/lines/", alerts.alert_line_add, name="dashboard-alert-line-add"),
    path("alerts/lines/<int:line_id>/remove/", alerts.alert_line_remove, name="dashboard-alert-line-remove"),
    path("alerts/test/", alerts.alert_test, name="dashboard-alert-test"),
    path("portal/<str:token>", portal.portal_enter, name="dashboard-portal"),
]
