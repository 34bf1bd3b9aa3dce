"""Alert webhooks never reach our own network (SSRF): checked when the URL is set and again at each delivery."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.test import Client

from billing.errors import WebhookUrlRefused
from billing.models import Account
from billing.services.accounts import account_settings_update
from core import egress
from tests.factories import AccountFactory
from usage.models import AlertDelivery
from usage.services.alerts import alert_deliver, alert_test_send

pytestmark = pytest.mark.usefixtures("catalog")

OWNER, PASSWORD = "owner@shop.test", "a-long-password-123"


class _Receiver(BaseHTTPRequestHandler):
    hits: list[str] = []
    status = 200
    location = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.hits.append(f"{self.server.server_port}{self.path}")  # type: ignore[attr-defined]
        self.send_response(_Receiver.status)
        if _Receiver.location:
            self.send_header("Location", _Receiver.location)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[HTTPServer]:
    """An HTTP server on 127.0.0.1 that records every request it receives."""
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.hits, _Receiver.status, _Receiver.location = [], 200, ""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _account() -> Account:
    return AccountFactory.create(plan="jive", credits="10", owner_email=OWNER, owner_password=PASSWORD)


def _deliver_to(account: Account, url: str) -> AlertDelivery:
    # stored as if it had passed when it was set (DNS pointed elsewhere then): delivery must check again
    Account.objects.filter(pk=account.pk).update(alert_webhook_url=url)
    alert = alert_test_send(account=account)
    alert_deliver(alert_id=alert.pk)
    return AlertDelivery.objects.get(alert=alert, channel="webhook")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook", "https://localhost:8443/hook", "https://10.0.0.5/", "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/", "https://[::1]/", "https://[::ffff:127.0.0.1]/",
        "https://0x7f000001/", "https://2130706433/", "https://127.1/", "https://100.64.0.1/", "https://0.0.0.0/",
    ],
)  # fmt: skip
def test_a_private_address_is_refused_when_set(url):
    account = _account()
    with pytest.raises(WebhookUrlRefused, match="not a public internet address"):
        account_settings_update(account=account, alert_webhook_url=url)
    account.refresh_from_db()
    assert account.alert_webhook_url == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://93.184.215.14/hook", "must start with https://"),
        ("ftp://93.184.215.14/hook", "must start with https://"),
        ("https://user:secret@93.184.215.14/hook", "user name or password"),
        ("https://93.184.215.14:99999/", "malformed"),
    ],
)
def test_other_bad_urls_are_refused_with_the_reason(url, message):
    with pytest.raises(WebhookUrlRefused, match=message):
        account_settings_update(account=_account(), alert_webhook_url=url)


def test_public_https_urls_are_accepted():
    account = _account()
    account_settings_update(account=account, alert_webhook_url="https://93.184.215.14/hook")
    assert Account.objects.get(pk=account.pk).alert_webhook_url == "https://93.184.215.14/hook"
    # a name that does not resolve today is kept: every delivery checks it again
    account_settings_update(account=account, alert_webhook_url="https://hooks.does-not-resolve.invalid/tl")


def test_the_dashboard_refuses_an_internal_url_with_a_clear_message(loopback):
    account = _account()
    browser = Client()
    browser.post("/accounts/login/", {"username": OWNER, "password": PASSWORD})
    response = browser.post(
        "/alerts/settings/",
        {"low_balance_threshold": "0", "display_currency": "USD",
         "alert_webhook_url": f"https://127.0.0.1:{loopback.server_port}/hook"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "not a public internet address" in response.content.decode()
    assert Account.objects.get(pk=account.pk).alert_webhook_url == ""


def test_delivery_to_a_loopback_server_is_refused_and_it_receives_nothing(loopback, settings):
    settings.WEBHOOK_ALLOW_HTTP = True  # even with http allowed, the address is what is refused
    delivery = _deliver_to(_account(), f"http://127.0.0.1:{loopback.server_port}/hook")
    assert delivery.status == "failed"
    assert delivery.last_error == egress.PRIVATE_ADDRESS
    assert _Receiver.hits == []


def test_failed_deliveries_do_not_tell_open_ports_from_closed_ones(loopback, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    account = _account()
    open_port = _deliver_to(account, f"http://127.0.0.1:{loopback.server_port}/hook").last_error
    closed_port = _deliver_to(account, f"http://127.0.0.1:{_closed_port()}/hook").last_error
    other_host = _deliver_to(account, "https://10.1.2.3:6379/").last_error
    assert open_port == closed_port == other_host == egress.PRIVATE_ADDRESS
    assert _Receiver.hits == []


def test_a_name_that_resolves_to_a_private_address_at_delivery_is_refused(loopback, monkeypatch):
    answers = {"hooks.customer.test": "93.184.215.14"}
    real = socket.getaddrinfo

    def resolver(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(egress.socket, "getaddrinfo", resolver)
    account = _account()
    url = f"https://hooks.customer.test:{loopback.server_port}/hook"
    account_settings_update(account=account, alert_webhook_url=url)  # public when set
    answers["hooks.customer.test"] = "127.0.0.1"  # DNS changed since
    alert = alert_test_send(account=Account.objects.get(pk=account.pk))
    alert_deliver(alert_id=alert.pk)
    assert AlertDelivery.objects.get(alert=alert, channel="webhook").last_error == egress.PRIVATE_ADDRESS
    assert _Receiver.hits == []


def test_an_allowed_internal_host_receives_the_alert(loopback, settings):
    settings.WEBHOOK_ALLOW_HTTP, settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = True, ["127.0.0.1"]
    account = _account()
    url = f"http://127.0.0.1:{loopback.server_port}/hook"
    account_settings_update(account=account, alert_webhook_url=url)
    delivery = _deliver_to(account, url)
    assert (delivery.status, delivery.response_status) == ("sent", 200)
    assert _Receiver.hits == [f"{loopback.server_port}/hook"]


def test_redirects_are_not_followed(loopback, settings):
    settings.WEBHOOK_ALLOW_HTTP, settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = True, ["127.0.0.1"]
    _Receiver.status, _Receiver.location = 302, f"http://127.0.0.1:{loopback.server_port}/internal-admin"
    delivery = _deliver_to(_account(), f"http://127.0.0.1:{loopback.server_port}/hook")
    assert (delivery.status, delivery.last_error) == ("failed", "webhook answered 302: redirects are not followed")
    assert _Receiver.hits == [f"{loopback.server_port}/hook"]  # never the address it pointed to
