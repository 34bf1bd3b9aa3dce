from django.apps import AppConfig


class GatewayConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "gateway"
    verbose_name = "Metering gateway"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from gateway.models import Upstream
        from gateway.routing import upstream_changed

        # the routing table each process keeps (gateway/routing.py) is forgotten when an upstream changes
        post_save.connect(upstream_changed, sender=Upstream, dispatch_uid="gateway-upstream-saved")
        post_delete.connect(upstream_changed, sender=Upstream, dispatch_uid="gateway-upstream-deleted")
