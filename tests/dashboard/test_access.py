"""Who sees what: each person sees only their accounts, a viewer reads but never writes, forms need their CSRF token."""

# ruff: noqa: F811 - the shared Stripe fixtures are imported from tests.billing.stripe_samples

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from billing.models import Account, ApiKey, AuditEntry, Membership, TopUp
from billing.services.accounts import member_add
from tests.billing.stripe_samples import stripe_recorder  # noqa: F401
from tests.dashboard.conftest import client_for
from tests.factories import AccountFactory

pytestmark = pytest.mark.usefixtures("frozen")


@pytest.fixture
def other_account(catalog: None) -> Account:
    return AccountFactory.create(name="Other Co", plan="jive", credits="777000", owner_email="other@example.com",
                                 owner_password="pw-other-1234")  # fmt: skip


def test_the_switcher_offers_only_the_users_accounts(owner, account, other_account, owner_client):
    assert 'name="account"' not in owner_client.get("/").content.decode()  # one account: no switcher
    member_add(account=other_account, user=owner, role=Membership.Role.VIEWER)
    page = owner_client.get("/").content.decode()
    options = re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', page)
    assert options == [(str(account.pk), "Acme Shop (owner)"), (str(other_account.pk), "Other Co (viewer)")]
    third = AccountFactory.create(name="Third", plan="jive")
    assert f'value="{third.pk}"' not in page

    switched = owner_client.post("/account/switch/", {"account": other_account.pk, "next": "/keys/"})
    assert switched.status_code == 302 and switched["Location"] == "/keys/"
    balance = owner_client.get("/").content.decode()
    assert "777,000" in balance and "Other Co" in balance
    assert owner_client.post("/keys/", {"name": "x"}).status_code == 403  # a viewer there
    owner_client.post("/account/switch/", {"account": account.pk})
    assert "250,000" in owner_client.get("/").content.decode()


def test_switching_to_an_account_one_is_not_a_member_of_is_404(owner_client, other_account):
    assert owner_client.post("/account/switch/", {"account": other_account.pk}).status_code == 404
    assert owner_client.post("/account/switch/", {"account": "abc"}).status_code == 404
    assert "250,000" in owner_client.get("/").content.decode()  # still on their own account


def test_an_unsafe_next_after_switching_is_ignored(owner_client, account):
    response = owner_client.post("/account/switch/", {"account": account.pk, "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_a_removed_membership_falls_back_to_an_account_still_held(owner, account, other_account, owner_client):
    member_add(account=other_account, user=owner, role=Membership.Role.ADMIN)
    owner_client.post("/account/switch/", {"account": other_account.pk})
    Membership.objects.filter(account=other_account, user=owner).delete()
    page = owner_client.get("/").content.decode()
    assert "250,000" in page and "777,000" not in page


def test_another_accounts_key_cannot_be_revoked(owner_client, other_account):
    key = ApiKey.objects.get(account=other_account)
    assert owner_client.post(f"/keys/{key.pk}/revoke/").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_other_accounts_data_never_shows(owner_client, other_account):
    TopUp.objects.create(account=other_account, amount_usd=77, amount_cents=7700, credits=770_000, rate=10_000,
                         created_at=other_account.created_at)  # fmt: skip
    assert "770,000" not in owner_client.get("/top-up/").content.decode()
    other_key = ApiKey.objects.get(account=other_account)
    assert other_key.prefix not in owner_client.get("/keys/").content.decode()


WRITES = [
    ("/keys/", {"name": "sneaky"}),
    ("/top-up/", {"amount_usd": "10"}),
    ("/top-up/auto-recharge/", {"enabled": "on", "threshold_credits": "1", "amount_usd": "10"}),
    ("/plans/subscribe/", {"plan": "professional", "interval": "month"}),
    ("/plans/cancel/", {"at_period_end": "1"}),
    ("/alerts/settings/", {"low_balance_threshold": "5", "alert_webhook_url": "", "display_currency": "USD"}),
    ("/alerts/test/", {}),
]


@pytest.mark.parametrize(("url", "data"), WRITES)
def test_a_viewer_is_refused_every_write(viewer_client, account, stripe_recorder, url, data):
    audit_before = AuditEntry.objects.count()
    response = viewer_client.post(url, data)
    assert response.status_code == 403
    assert "you can see everything here but not change it" in response.content.decode()
    assert AuditEntry.objects.count() == audit_before
    assert ApiKey.objects.filter(account=account).count() == 1 and not TopUp.objects.exists()


def test_a_viewer_cannot_revoke_a_key_and_sees_no_write_controls(viewer_client, account, stripe_recorder):
    key = ApiKey.objects.get(account=account)
    assert viewer_client.post(f"/keys/{key.pk}/revoke/").status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None
    for url, control in [("/keys/", "Create key"), ("/keys/", "Revoke"), ("/top-up/", "Continue to payment"),
                         ("/alerts/", "Save settings"), ("/alerts/", "Send a test alert"),
                         ("/plans/", "Subscribe to")]:  # fmt: skip
        response = viewer_client.get(url)
        assert response.status_code == 200 and control not in response.content.decode(), (url, control)


def test_an_admin_may_write(admin_user, account, stripe_recorder):
    client = client_for(admin_user)
    assert client.post("/keys/", {"name": "by admin"}).status_code == 201


def test_forms_need_their_csrf_token(owner: User, account):
    client = client_for(owner, enforce_csrf_checks=True)
    refused = client.post("/keys/", {"name": "no token"})
    assert refused.status_code == 403
    assert ApiKey.objects.filter(account=account).count() == 1
    page = client.get("/keys/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    accepted = client.post("/keys/", {"name": "with token", "csrfmiddlewaretoken": token.group(1)})
    assert accepted.status_code == 201
    assert ApiKey.objects.filter(account=account, name="with token").exists()
    assert client.post("/alerts/test/").status_code == 403
    assert client.post("/accounts/logout/").status_code == 403  # signing out is protected too
