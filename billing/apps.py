from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # the Stripe models' console pages live in their own module (billing/admin.py holds the rest)
        from billing import admin_server_keys, admin_stripe  # noqa: F401
        from billing.authentication import ApiKeyAuthentication
        from pricing import api as pricing_api

        # the catalog reads take account keys and server keys too (pricing cannot import billing: it joins here)
        if ApiKeyAuthentication not in pricing_api.CATALOG_READ_AUTHENTICATION:
            pricing_api.CATALOG_READ_AUTHENTICATION.append(ApiKeyAuthentication)
