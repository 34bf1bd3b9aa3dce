from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # the Stripe models' console pages live in their own module (billing/admin.py holds the rest)
        from billing import admin_outbox, admin_stripe  # noqa: F401
