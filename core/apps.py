from django.apps import AppConfig


class PlatformConfig(AppConfig):
    """The bottom layer every app uses (core/): worker heartbeat, scheduled-job runs and their locks."""

    name = "core"
    label = "platform"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"
