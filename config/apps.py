from django.apps import AppConfig


class PlatformConfig(AppConfig):
    """The platform pieces under config/: worker heartbeat, scheduled-job runs and their locks."""

    name = "config"
    label = "platform"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"
