"""ASGI entry point (uvicorn): the metering gateway under /gateway/, the rest of the site beside it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

site = get_asgi_application()

from gateway.asgi import gateway_application  # noqa: E402 - after Django is set up

application = gateway_application(site)
