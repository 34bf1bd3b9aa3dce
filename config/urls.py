from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import healthz

admin.site.site_header = "TokenLedger console"
admin.site.site_title = "TokenLedger console"
admin.site.index_title = "TokenLedger console"

# the gate's endpoints (usage, then billing's balance) come first: a path is matched against the patterns in order
urlpatterns = [
    path("", include("usage.urls")),
    path("", include("billing.urls")),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("pricing.urls")),
    path("", include("reconciliation.urls")),
    path("", include("dashboard.urls")),
    path("", include("gateway.urls")),
]

# Under /api/ these answer JSON in the error shape (config/api_errors.py); elsewhere Django's pages.
handler400 = "core.api_errors.handler400"
handler403 = "core.api_errors.handler403"
handler404 = "core.api_errors.handler404"
handler500 = "core.api_errors.handler500"
