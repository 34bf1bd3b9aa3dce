"""Issue 21: owners remove members from the dashboard; the last owner stays; nobody else removes anyone."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client

from billing.models import Account, AuditEntry, Membership
from tests.dashboard.conftest import add_member, client_for
from tests.factories import AccountFactory


def _membership(account: Account, user: User) -> Membership:
    return Membership.objects.get(account=account, user=user)


def test_an_owner_removes_a_viewer_who_then_has_no_access(account: Account, owner_client: Client, viewer: User):
    viewer_client = client_for(viewer)
    assert viewer_client.get("/").status_code == 200
    page = owner_client.get("/members/").content.decode()
    assert 'data-member="viewer@example.com"' in page and 'aria-label="Remove viewer@example.com"' in page
    response = owner_client.post(f"/members/{_membership(account, viewer).pk}/remove/", follow=True)
    assert "viewer@example.com no longer has access to Acme Shop." in response.content.decode()
    assert not Membership.objects.filter(account=account, user=viewer).exists()
    assert viewer_client.get("/").status_code == 403  # no account left to show
    assert AuditEntry.objects.filter(action="member_removed", account=account).count() == 1


def test_the_last_owner_cannot_be_removed_and_is_told_why(account: Account, owner_client: Client, owner: User):
    response = owner_client.post(f"/members/{_membership(account, owner).pk}/remove/")
    assert response.status_code == 400
    assert "an account keeps at least one owner" in response.content.decode()
    assert Membership.objects.filter(account=account, user=owner, role="owner").exists()


def test_a_second_owner_may_leave(account: Account, owner: User):
    second = add_member(account, Membership.Role.OWNER, "second@example.com")
    response = client_for(second).post(f"/members/{_membership(account, second).pk}/remove/")
    assert response.status_code == 302
    assert list(Membership.objects.filter(account=account).values_list("user__username", flat=True)) == [
        "owner@example.com"
    ]


def test_admins_and_viewers_cannot_remove_anyone(account: Account, owner: User, viewer: User, admin_user: User):
    target = _membership(account, owner).pk
    for user in (admin_user, viewer):
        client = client_for(user)
        assert client.post(f"/members/{target}/remove/").status_code == 403
        assert "Remove owner@example.com" not in client.get("/members/").content.decode()
    assert Membership.objects.filter(account=account).count() == 3


def test_another_accounts_member_is_not_there(account: Account, owner_client: Client):
    other = AccountFactory.create(name="Other", plan="starter", owner_email="other@example.com")
    theirs = Membership.objects.get(account=other)
    assert owner_client.post(f"/members/{theirs.pk}/remove/").status_code == 404
    assert Membership.objects.filter(pk=theirs.pk).exists()
