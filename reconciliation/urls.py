"""Reconciliation API routes, included at the site root."""

from django.urls import path

from reconciliation import api

urlpatterns = [
    path("api/admin/reconciliation/runs", api.ReconciliationRunCreateApi.as_view(), name="admin-reconciliation-runs"),
    path(
        "api/admin/reconciliation/runs/<int:run_id>",
        api.ReconciliationRunDetailApi.as_view(),
        name="admin-reconciliation-run",
    ),
]
