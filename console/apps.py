from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The operator's console: revenue, margin and health over every app, inside the Django admin.

    It sits above reconciliation (it reads pricing, billing, usage and reconciliation) and only config imports it.
    """

    name = "console"
    verbose_name = "Console"
