"""The address a request came from, also behind proxies: what sign-in throttling, audit rows and rate limits key on.

Behind N proxies that each append the address they saw to `X-Forwarded-For` (TRUSTED_PROXY_COUNT=N), the client is
the N-th entry from the right: the one our outermost proxy wrote. Entries further left were written by the client
and are never trusted. With no proxy (the default) the header is ignored, whatever it says, and the socket's
address (REMOTE_ADDR) is the client. Anything that is not an IP address falls back to REMOTE_ADDR.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address as text, or None when the request has none (a test client, a Unix socket)."""
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    remote = request.META.get("REMOTE_ADDR") or None
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < proxies:
        return remote
    candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
