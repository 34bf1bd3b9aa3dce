from django.apps import AppConfig


class CompositionConfig(AppConfig):
    """The composition root: settings, urls, Celery and its schedule, and the commands that span the apps
    (close_periods, check_integrity, seed_demo, run_stack). No models; nothing imports it."""

    name = "config"
    label = "composition"
    verbose_name = "Composition root"
