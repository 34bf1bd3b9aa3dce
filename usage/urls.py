from django.urls import path

from usage import api, api_customers

urlpatterns = [
    path("api/usage/events", api.UsageRecordApi.as_view(), name="usage-events"),
    path("api/usage/authorize", api.UsageAuthorizeApi.as_view(), name="usage-authorize"),
    path("api/usage/estimate", api.UsageEstimateApi.as_view(), name="usage-estimate"),
    path("api/usage/stats", api.UsageStatsApi.as_view(), name="usage-stats"),
    path(
        "api/usage/reservations/<str:request_id>/release",
        api.ReservationReleaseApi.as_view(),
        name="usage-reservation-release",
    ),
    path("api/usage/reservations/<str:request_id>", api.ReservationDetailApi.as_view(), name="usage-reservation"),
    path("api/usage/export.csv", api.UsageExportApi.as_view(), name="usage-export"),
]

urlpatterns += [
    path("api/customers/<str:external_id>/stats", api_customers.CustomerStatsApi.as_view(), name="customer-stats"),
]
