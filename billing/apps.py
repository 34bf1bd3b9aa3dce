from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing.authentication import ApiKeyAuthentication
        from pricing import api as pricing_api

        # the catalog reads take account keys and server keys too (pricing cannot import billing: it joins here)
        if ApiKeyAuthentication not in pricing_api.CATALOG_READ_AUTHENTICATION:
            pricing_api.CATALOG_READ_AUTHENTICATION.append(ApiKeyAuthentication)
