"""Portal sessions (a one-time sign-in link for a customer's owner) and server keys in the console."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from billing.models import AuditEntry, ServerKey

pytestmark = pytest.mark.usefixtures("catalog")


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


@pytest.fixture
def api(server_client) -> APIClient:
    client = server_client("customers")
    client.put("/api/customers/acme", {"name": "Acme Ltd", "email": "owner@acme.example"}, format="json")
    client.post("/api/customers/acme/credits", {"credits": "12345", "reason": "x"}, format="json",
                HTTP_IDEMPOTENCY_KEY="seed")  # fmt: skip
    return client


def _session(api: APIClient, **body) -> dict:
    response = api.post("/api/customers/acme/portal-sessions", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_a_portal_link_signs_the_owner_in_once_and_shows_the_customers_balance(api):
    link = _session(api, return_url="https://app.example/account")
    assert link["url"].startswith("http://testserver/portal/")
    expires = datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)
    path = link["url"].removeprefix("http://testserver")

    browser = Client()
    entered = browser.get(path)
    assert entered.status_code == 302 and entered["Location"] == "/"
    page = browser.get("/")
    assert page.status_code == 200
    assert "Acme Ltd" in text(page) and "12,345" in text(page)
    assert 'href="https://app.example/account"' in page.content.decode()  # the way back to the reseller's site
    assert AuditEntry.objects.filter(action="portal_session_used").count() == 1

    again = Client().get(path)
    assert again.status_code == 410 and "This link no longer works" in text(again)
    assert Client().get("/").status_code == 302  # nobody is signed in by the second use
    assert again.wsgi_request.user.is_anonymous


def test_an_expired_or_unknown_link_signs_nobody_in(api):
    with time_machine.travel(datetime(2026, 12, 7, 10, 0, tzinfo=UTC), tick=False):
        path = _session(api)["url"].removeprefix("http://testserver")
    with time_machine.travel(datetime(2026, 12, 7, 10, 5, 1, tzinfo=UTC), tick=False):
        browser = Client()
        expired = browser.get(path)
        assert expired.status_code == 410
        assert browser.get("/").status_code == 302
    assert Client().get("/portal/not-a-token").status_code == 410


def test_a_portal_link_for_another_customer_replaces_the_signed_in_user(api):
    api.put("/api/customers/other", {"name": "Other Co", "email": "owner@other.example"}, format="json")
    browser = Client()
    browser.get(_session(api)["url"].removeprefix("http://testserver"))
    other = api.post("/api/customers/other/portal-sessions", {}, format="json").json()["url"]
    browser.get(other.removeprefix("http://testserver"))
    page = text(browser.get("/"))
    assert "Other Co" in page and "owner@other.example" in page and "Acme Ltd" not in page


@pytest.mark.parametrize(
    "return_url",
    ["javascript:alert(1)", "ftp://example.com", "https://user:pw@example.com/", "/relative", "https://", "x" * 3000],
)
def test_a_bad_return_url_is_400(api, return_url):
    response = api.post("/api/customers/acme/portal-sessions", {"return_url": return_url}, format="json")
    assert response.status_code == 400 and "return_url" in response.json()["fields"]


def test_return_url_hosts_can_be_restricted(api, settings):
    settings.PORTAL_RETURN_URL_HOSTS = ["app.example"]
    assert api.post("/api/customers/acme/portal-sessions", {"return_url": "https://evil.example/"},
                    format="json").status_code == 400  # fmt: skip
    _session(api, return_url="https://app.example/back")


def test_a_customer_without_an_owner_or_with_a_staff_owner_gets_no_link(api):
    api.put("/api/customers/noemail", {"name": "No Email"}, format="json")
    response = api.post("/api/customers/noemail/portal-sessions", {}, format="json")
    assert response.status_code == 409 and response.json()["error"] == "portal_unavailable"
    # an owner made staff later can never be signed in by a link
    get_user_model().objects.filter(username="owner@acme.example").update(is_staff=True)
    assert api.post("/api/customers/acme/portal-sessions", {}, format="json").status_code == 409


def test_a_link_made_before_the_owner_became_staff_does_not_sign_in(api):
    path = _session(api)["url"].removeprefix("http://testserver")
    get_user_model().objects.filter(username="owner@acme.example").update(is_staff=True)
    browser = Client()
    assert browser.get(path).status_code == 410
    assert browser.get("/admin/").status_code == 302


def test_portal_base_url_setting(api, settings):
    settings.PORTAL_BASE_URL = "https://billing.example/"
    assert _session(api)["url"].startswith("https://billing.example/portal/")


# --- the console ----------------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(db) -> Client:
    user = get_user_model().objects.create_superuser("root", "root@tokenledger.example", "pw")
    client = Client()
    client.force_login(user)
    return client


def test_staff_issue_a_server_key_once_see_last_use_and_revoke_it(admin_client, api_client_for):
    form = admin_client.get("/admin/billing/serverkey/add/")
    assert form.status_code == 200 and "Issue a server key" in text(form)
    page = admin_client.post("/admin/billing/serverkey/add/", {"name": "prod backend", "scopes": ["customers", "read"]})
    assert page.status_code == 200
    found = re.search(r"tls_[0-9a-f]{12}_[A-Za-z0-9_-]+", page.content.decode())
    assert found is not None
    raw = found.group(0)
    assert "shown only this once" in text(page) and "no-cache" in page["Cache-Control"]
    key = ServerKey.objects.get()
    assert key.created_by is not None and key.created_by.username == "root"
    assert (key.name, key.scopes) == ("prod backend", ["customers", "read"])

    client = api_client_for(raw)
    assert client.get("/api/customers").status_code == 200
    listing = text(admin_client.get("/admin/billing/serverkey/"))
    assert f"tls_{key.prefix}_…" in listing and "prod backend" in listing and "customers, read" in listing
    assert raw not in admin_client.get("/admin/billing/serverkey/").content.decode()

    admin_client.post("/admin/billing/serverkey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    assert client.get("/api/customers").status_code == 401
    assert AuditEntry.objects.filter(action="server_key_revoked", actor__username="root").exists()


def test_a_server_key_needs_a_scope_in_the_console(admin_client):
    page = admin_client.post("/admin/billing/serverkey/add/", {"name": "no scope"})
    assert page.status_code == 200 and "This field is required" in text(page)
    assert not ServerKey.objects.exists()
