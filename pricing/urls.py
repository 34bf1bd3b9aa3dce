"""Pricing API routes, included at the site root. A model_id may contain slashes (meta-llama/llama-3.3-70b-instruct),
so model routes use the `path` converter and the routes with a suffix come before the bare one."""

from django.urls import path

from pricing import api

urlpatterns = [
    path("api/tokens/models", api.ModelListApi.as_view(), name="tokens-models"),
    path("api/tokens/features", api.FeatureListApi.as_view(), name="tokens-features"),
    path("api/tokens/exchange", api.ExchangeRateListApi.as_view(), name="tokens-exchange"),
    path(
        "api/admin/tokens/models/<path:model_id>/aliases/<path:alias>",
        api.ModelAliasRemoveApi.as_view(),
        name="admin-tokens-model-alias",
    ),
    path(
        "api/admin/tokens/models/<path:model_id>/aliases",
        api.ModelAliasAddApi.as_view(),
        name="admin-tokens-model-aliases",
    ),
    path(
        "api/admin/tokens/models/<path:model_id>/activate",
        api.ModelActivateApi.as_view(),
        name="admin-tokens-model-activate",
    ),
    path(
        "api/admin/tokens/models/<path:model_id>/deactivate",
        api.ModelDeactivateApi.as_view(),
        name="admin-tokens-model-deactivate",
    ),
    path("api/admin/tokens/models/<path:model_id>", api.ModelUpsertApi.as_view(), name="admin-tokens-model"),
    path("api/admin/tokens/features/<str:feature_key>", api.FeatureCostSetApi.as_view(), name="admin-tokens-feature"),
    path("api/admin/tokens/exchange", api.ExchangeRateSetApi.as_view(), name="admin-tokens-exchange"),
    path("api/admin/tokens/plans/<str:code>", api.PlanTermsSetApi.as_view(), name="admin-tokens-plan"),
]
