from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The account dashboard: pages for an account's people, composed from the apps below it."""

    name = "dashboard"
