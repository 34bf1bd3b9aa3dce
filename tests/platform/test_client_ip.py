"""The client's address behind proxies (core/client_ip.py): only what our own proxies wrote is trusted."""

import pytest
from django.test import RequestFactory

from core.client_ip import client_ip


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, "203.0.113.9", "10.0.0.2"),  # no proxy configured: the header is the client's word, ignored
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a forged entry on the left
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.1", "203.0.113.9"),  # two proxies: the outer one wrote the client
        (2, "203.0.113.9", "10.0.0.2"),  # fewer entries than proxies: not through our proxies
        (1, "not-an-address", "10.0.0.2"),
        (1, "2001:db8::1", "2001:db8::1"),
        (1, "", "10.0.0.2"),
    ],
)
def test_the_client_is_the_entry_our_outermost_proxy_wrote(settings, proxies, forwarded_for, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for)
    assert client_ip(request) == expected
