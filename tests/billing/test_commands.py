from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from billing.models import Account, Membership, Wallet
from billing.services.api_keys import api_key_authenticate

pytestmark = pytest.mark.usefixtures("catalog")


def _run(*args: str) -> dict:
    out = StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


def test_create_account_prints_id_and_a_working_key():
    result = _run("create_account", "--name", "Acme", "--plan", "starter", "--owner-email", "o@acme.test",
                  "--owner-password", "s3cret-pass", "--credits", "500")  # fmt: skip
    account = Account.objects.get(pk=result["account_id"])
    key = api_key_authenticate(result["api_key"])
    assert key is not None and key.account == account
    assert Wallet.objects.get(account=account).balance == 500
    owner = get_user_model().objects.get(username="o@acme.test")
    assert owner.check_password("s3cret-pass")
    assert Membership.objects.get(account=account, user=owner).role == "owner"
    assert account.subscription.plan.code == "starter"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plan", "platinum"], "unknown plan 'platinum'"),
        (["--plan", "jive", "--credits", "0"], "credits must be > 0"),
        (["--plan", "jive", "--credits", "-3"], "credits must be > 0"),
    ],
)
def test_create_account_refusals_write_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_account", "--name", "Nope", *args, stdout=StringIO())
    assert not Account.objects.exists()


def test_issue_api_key_and_grant_credits():
    account_id = _run("create_account", "--name", "Acme", "--plan", "jive")["account_id"]
    key = _run("issue_api_key", "--account", str(account_id))["api_key"]
    found = api_key_authenticate(key)
    assert found is not None and found.account.pk == account_id
    assert _run("grant_credits", "--account", str(account_id), "--credits", "12.5", "--reason", "welcome")[
        "balance"
    ] == ("12.500000000000")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "999", "--credits", "5", "--reason", "x"], "no account with id 999"),
        (["--credits", "0", "--reason", "x"], "credits must be > 0"),
        (["--credits", "ten", "--reason", "x"], "not a number"),
        (["--credits", "5", "--reason", "x", "--expires-at", "tomorrow"], "ISO 8601"),
    ],
)
def test_grant_credits_refusals(args, message):
    account_id = _run("create_account", "--name", "Acme", "--plan", "jive")["account_id"]
    if "--account" not in args:
        args = ["--account", str(account_id), *args]
    with pytest.raises(CommandError, match=message):
        call_command("grant_credits", *args, stdout=StringIO())
    assert Wallet.objects.get(account_id=account_id).balance == 0


def test_member_added_twice_is_refused():
    from billing.errors import AlreadyMember
    from billing.services.accounts import member_add

    account_id = _run("create_account", "--name", "Acme", "--plan", "jive", "--owner-email", "o@acme.test")[
        "account_id"
    ]
    owner = get_user_model().objects.get(username="o@acme.test")
    with pytest.raises(AlreadyMember):
        member_add(account=Account.objects.get(pk=account_id), user=owner, role="viewer")
    assert Membership.objects.filter(account_id=account_id).count() == 1
