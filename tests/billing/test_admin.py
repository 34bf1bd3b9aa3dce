"""The billing console (Django admin): what an admin sees, and that every change goes through the services."""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple
from unittest import mock

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from billing.errors import AccountSuspended
from billing.models import (
    Account,
    ApiKey,
    AuditEntry,
    BillingPeriod,
    Invoice,
    LedgerEntry,
    Membership,
    Subscription,
    Wallet,
)
from billing.services.accounts import account_create
from billing.services.periods import period_close, period_current
from billing.services.wallet import wallet_debit, wallet_grant
from pricing.models import Plan

KEY_PATTERN = re.compile(r"tl_[0-9a-f]{12}_[A-Za-z0-9_-]+")


class Shop(NamedTuple):
    account: Account
    api_key: str


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Admin users and owners are made with passwords; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def seeded(db):
    call_command("seed_catalog", stdout=io.StringIO())


@pytest.fixture
def shop(seeded) -> Shop:
    account, api_key = account_create(
        name="Acme Shop",
        plan_code="jive",
        owner_email="owner@acme.test",
        owner_password="owner-pass-for-tests",
        credits="1000",
    )
    return Shop(account, api_key)


def text(response) -> str:
    return html.unescape(response.content.decode())


def balance_answer(api_key: str) -> int:
    return APIClient().get("/api/billing/balance", HTTP_AUTHORIZATION=f"Bearer {api_key}").status_code


def balance_of(account: Account) -> Decimal:
    return Wallet.objects.get(account=account).balance


def url(name: str, *args: object, query: str = "") -> str:
    return reverse(f"admin:billing_{name}", args=args) + (f"?{query}" if query else "")


def snapshot_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Account, Wallet, Subscription, ApiKey, Membership, LedgerEntry, AuditEntry, get_user_model())
    }


# --- every page renders ------------------------------------------------------------------------------------------


def test_every_billing_admin_page_renders(admin_client: Client, shop: Shop):
    account = shop.account
    period = period_current(account=account, as_of=timezone.now())
    with time_machine.travel(period.end):  # a close happens once the period has ended
        invoice = period_close(period=period, as_of=period.end)
    key = ApiKey.objects.get(account=account)
    entry = LedgerEntry.objects.get(wallet__account=account)
    audit = AuditEntry.objects.filter(account=account).first()
    assert audit is not None

    index = admin_client.get(reverse("admin:index"))
    for title in ("Accounts", "API keys", "Wallets", "Ledger entries", "Subscriptions", "Billing periods",
                  "Invoices", "Audit entries"):  # fmt: skip
        assert title in text(index)

    pages = {
        url("account_changelist"): ["Acme Shop", "jive", "1000"],
        url("account_change", account.pk): ["Acme Shop", "owner@acme.test", f"tl_{key.prefix}_", "Issue API key",
                                            "Add member", "Adjust credits", "Change plan", "Suspend"],
        url("account_add"): ["Add account", "Opening credits", "Owner email"],
        url("account_adjust_credits", query=f"ids={account.pk}"): ["Adjust credits", "Acme Shop", "Reason"],
        url("account_change_plan", query=f"ids={account.pk}"): ["Change plan", "Apply now", "professional"],
        url("account_set_status", query=f"ids={account.pk}&status=suspended"): ["cannot spend credits"],
        url("account_issue_key", account.pk): ["Issue API key", "shown once"],
        url("account_add_member", account.pk): ["Add member", "Username or email"],
        url("apikey_changelist"): [f"tl_{key.prefix}_", "Acme Shop"],
        url("apikey_change", key.pk): [f"tl_{key.prefix}_"],
        url("wallet_changelist"): ["Acme Shop", "1000"],
        url("wallet_change", account.wallet.pk): ["opening credits", "all 1 entries"],
        url("ledgerentry_changelist"): ["opening:", "+1000"],
        url("ledgerentry_change", entry.pk): ["opening credits"],
        url("subscription_changelist"): ["Acme Shop", "jive"],
        url("subscription_change", account.subscription.pk): ["jive", "Change plan"],
        url("billingperiod_changelist"): ["Acme Shop", "closed", "open"],
        url("billingperiod_change", period.pk): [f"invoice #{invoice.pk}"],
        url("invoice_changelist"): ["Acme Shop", "0.00 USD"],
        url("invoice_change", invoice.pk): ["jive", "0.00 USD"],
        url("auditentry_changelist"): ["account_created", "api_key_issued"],
        url("auditentry_change", audit.pk): [audit.action],
    }  # fmt: skip
    for page, expected in pages.items():
        response = admin_client.get(page)
        assert response.status_code == 200, page
        for snippet in expected:
            assert snippet in text(response), (page, snippet)


@pytest.mark.parametrize(
    ("changelist", "query", "found"),
    [
        ("account", "q=owner@acme.test", True),
        ("account", "q=nobody@else.test", False),
        ("account", "q=Acme", True),
        ("account", "status__exact=suspended", False),
        ("account", "status__exact=active", True),
        ("apikey", "state=live", True),
        ("apikey", "state=revoked", False),
        ("wallet", "q=Acme", True),
        ("ledgerentry", "kind__exact=grant", True),
        ("ledgerentry", "kind__exact=adjustment", False),
        ("ledgerentry", "q=opening:", True),
        ("subscription", "status__exact=active", True),
        ("auditentry", "action=account_created", True),
        ("auditentry", "q=Acme", True),
        ("auditentry", "q=Globex", False),
    ],
)
def test_search_and_filters_find_what_they_should(admin_client: Client, shop: Shop, changelist, query, found):
    response = admin_client.get(url(f"{changelist}_changelist", query=query))
    assert response.status_code == 200
    assert ("Acme Shop" in text(response)) is found


def test_accounts_are_found_by_id_and_filtered_by_plan(admin_client: Client, shop: Shop, seeded):
    other, _ = account_create(name="Globex", plan_code="pro")
    by_id = text(admin_client.get(url("account_changelist", query=f"q={other.pk}")))
    assert "Globex" in by_id and "Acme Shop" not in by_id
    pro = Plan.objects.get(code="pro")
    by_plan = text(admin_client.get(url("account_changelist", query=f"subscription__plan__id__exact={pro.pk}")))
    assert "Globex" in by_plan and "Acme Shop" not in by_plan


# --- credits -----------------------------------------------------------------------------------------------------


def test_adjust_credits_posts_one_adjustment_with_reason_and_an_audit_entry(admin_client: Client, admin_user, shop):
    response = admin_client.post(
        url("account_changelist"), {"action": "adjust_credits", "_selected_action": [shop.account.pk]}
    )
    assert response.status_code == 302
    form_url = response["Location"]
    assert "Acme Shop" in text(admin_client.get(form_url))

    response = admin_client.post(form_url, {"credits": "-250.5", "reason": "double charge refunded"}, follow=True)

    assert "adjusted by -250.5 credits; new balance 749.5 credits" in text(response)
    assert balance_of(shop.account) == Decimal("749.5")
    entry = LedgerEntry.objects.get(wallet__account=shop.account, kind=LedgerEntry.Kind.ADJUSTMENT)
    assert (entry.credits, entry.reason, entry.actor) == (Decimal("-250.5"), "double charge refunded", admin_user)
    audit = AuditEntry.objects.get(action="manual_adjustment")
    assert (audit.account, audit.actor, audit.ip) == (shop.account, admin_user, "127.0.0.1")
    assert audit.before is not None and audit.after is not None
    assert Decimal(audit.before["balance"]) == Decimal(1000)
    assert Decimal(audit.after["balance"]) == Decimal("749.5")
    assert audit.after["reason"] == "double charge refunded"


@pytest.mark.parametrize(
    ("posted", "error"),
    [
        ({"credits": "250", "reason": ""}, "This field is required."),
        ({"credits": "250", "reason": "   "}, "This field is required."),
        ({"credits": "0", "reason": "nothing"}, "an adjustment of 0 credits changes nothing"),
        ({"credits": "", "reason": "nothing"}, "This field is required."),
        ({"credits": "ten", "reason": "typo"}, "Enter a number."),
    ],
)
def test_a_refused_adjustment_shows_the_error_and_writes_nothing(admin_client: Client, shop: Shop, posted, error):
    before = snapshot_counts()
    response = admin_client.post(url("account_adjust_credits", query=f"ids={shop.account.pk}"), posted)
    assert response.status_code == 200
    assert error in text(response)
    assert "Please correct the error below." in text(response)
    assert snapshot_counts() == before
    assert balance_of(shop.account) == Decimal(1000)


def test_adjusting_several_accounts_is_all_or_nothing(admin_client: Client, shop: Shop, seeded):
    other, _ = account_create(name="Globex", plan_code="pro")
    response = admin_client.post(
        url("account_adjust_credits", query=f"ids={shop.account.pk},{other.pk}"),
        {"credits": "40", "reason": "launch promo"},
        follow=True,
    )
    assert "Acme Shop (#" in text(response) and "Globex (#" in text(response)
    assert (balance_of(shop.account), balance_of(other)) == (Decimal(1040), Decimal(40))
    assert AuditEntry.objects.filter(action="manual_adjustment").count() == 2


# --- suspension --------------------------------------------------------------------------------------------------


def test_suspend_writes_the_status_and_an_audit_entry_and_the_balance_stays_readable(
    admin_client: Client, admin_user, shop: Shop
):
    response = admin_client.post(
        url("account_changelist"), {"action": "suspend", "_selected_action": [shop.account.pk]}, follow=True
    )
    assert "Suspended 1 account." in text(response)
    shop.account.refresh_from_db()
    assert shop.account.status == Account.Status.SUSPENDED
    audit = AuditEntry.objects.get(action="account_suspended")
    assert (audit.actor, audit.ip, audit.before, audit.after) == (
        admin_user, "127.0.0.1", {"status": "active"}, {"status": "suspended"},
    )  # fmt: skip
    # a suspended account can read its balance but not spend
    assert balance_answer(shop.api_key) == 200
    with pytest.raises(AccountSuspended):
        wallet_debit(account=shop.account, credits="1", reference="after-suspension")

    response = admin_client.post(
        url("account_changelist"), {"action": "reactivate", "_selected_action": [shop.account.pk]}, follow=True
    )
    assert "Reactivated 1 account." in text(response)
    shop.account.refresh_from_db()
    assert shop.account.status == Account.Status.ACTIVE
    assert AuditEntry.objects.filter(action="account_reactivated", actor=admin_user).count() == 1


def test_suspend_from_the_account_page_asks_first(admin_client: Client, shop: Shop):
    page = url("account_set_status", query=f"ids={shop.account.pk}&status=suspended")
    assert "Suspend" in text(admin_client.get(page))
    shop.account.refresh_from_db()
    assert shop.account.status == Account.Status.ACTIVE  # showing the page changed nothing

    response = admin_client.post(page, {}, follow=True)
    assert "Acme Shop" in text(response) and "suspended" in text(response)
    shop.account.refresh_from_db()
    assert shop.account.status == Account.Status.SUSPENDED
    assert "Reactivate" in text(admin_client.get(url("account_change", shop.account.pk)))


# --- API keys ----------------------------------------------------------------------------------------------------


def test_revoke_action_revokes_audits_and_the_key_gets_401(admin_client: Client, admin_user, shop: Shop):
    assert balance_answer(shop.api_key) == 200
    key = ApiKey.objects.get(account=shop.account)

    response = admin_client.post(
        url("apikey_changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]}, follow=True
    )

    assert "Revoked 1 key" in text(response)
    key.refresh_from_db()
    assert key.revoked_at is not None
    audit = AuditEntry.objects.get(action="api_key_revoked")
    assert (audit.object_key, audit.actor, audit.ip) == (key.prefix, admin_user, "127.0.0.1")
    assert balance_answer(shop.api_key) == 401
    assert "state=revoked" in text(admin_client.get(url("apikey_changelist")))


def test_issue_key_shows_the_secret_once_and_it_works(admin_client: Client, admin_user, shop: Shop):
    response = admin_client.post(url("account_issue_key", shop.account.pk), {"name": "ci"})

    assert response.status_code == 200
    assert "shown only this once" in text(response)
    assert "no-store" in response["Cache-Control"]
    raw_key = KEY_PATTERN.search(text(response))
    assert raw_key is not None
    assert balance_answer(raw_key.group()) == 200
    assert ApiKey.objects.filter(account=shop.account).count() == 2
    audit = AuditEntry.objects.get(action="api_key_issued", actor=admin_user)
    assert audit.ip == "127.0.0.1"
    assert raw_key.group() not in text(admin_client.get(url("account_change", shop.account.pk)))


# --- members -----------------------------------------------------------------------------------------------------


def test_a_member_added_twice_shows_an_error_and_writes_nothing(admin_client: Client, shop: Shop):
    before = snapshot_counts()
    response = admin_client.post(
        url("account_add_member", shop.account.pk), {"user": "owner@acme.test", "role": "admin"}
    )
    assert response.status_code == 200
    assert "is already a member of account" in text(response)
    assert snapshot_counts() == before
    assert Membership.objects.get(account=shop.account).role == Membership.Role.OWNER


def test_add_member_adds_an_existing_user_with_a_role(admin_client: Client, admin_user, shop: Shop):
    ann = get_user_model().objects.create_user(username="ann", email="Ann@Acme.test")
    response = admin_client.post(
        url("account_add_member", shop.account.pk), {"user": "ann@acme.test", "role": "viewer"}, follow=True
    )
    assert "Ann is now viewer of Acme Shop" in text(response)  # messages start with a capital
    assert Membership.objects.get(account=shop.account, user=ann).role == Membership.Role.VIEWER
    assert AuditEntry.objects.filter(action="member_added", actor=admin_user, object_key=str(ann.pk)).exists()

    unknown = admin_client.post(url("account_add_member", shop.account.pk), {"user": "ghost", "role": "viewer"})
    assert "No user with the username or email 'ghost'." in text(unknown)


def test_remove_member_asks_first_then_removes_through_the_service(admin_client: Client, admin_user, shop: Shop):
    ann = get_user_model().objects.create_user(username="ann", email="ann@acme.test")
    membership = Membership.objects.create(account=shop.account, user=ann, role=Membership.Role.ADMIN)
    remove = url("account_remove_member", shop.account.pk, membership.pk)
    assert remove in text(admin_client.get(url("account_change", shop.account.pk)))  # the link beside the member

    confirm = admin_client.get(remove)
    assert "Remove member" in text(confirm) and "ann (admin) loses access" in text(confirm)
    assert Membership.objects.filter(pk=membership.pk).exists()  # asking removes nothing

    response = admin_client.post(remove, follow=True)
    assert "Ann is no longer admin of Acme Shop (#1)." in text(response)
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert AuditEntry.objects.filter(action="member_removed", actor=admin_user, object_key=str(ann.pk)).exists()


def test_the_last_owner_is_not_removed_and_the_refusal_is_shown(admin_client: Client, shop: Shop):
    owner = Membership.objects.get(account=shop.account, role=Membership.Role.OWNER)
    before = snapshot_counts()
    response = admin_client.post(url("account_remove_member", shop.account.pk, owner.pk), follow=True)
    assert response.redirect_chain[-1][0] == url("account_change", shop.account.pk)
    assert "An account keeps at least one owner" in text(response)
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert snapshot_counts() == before  # no audit entry either

    second = Membership.objects.create(
        account=shop.account, user=get_user_model().objects.create_user(username="bo"), role=Membership.Role.OWNER
    )
    admin_client.post(url("account_remove_member", shop.account.pk, owner.pk))
    assert list(Membership.objects.filter(account=shop.account)) == [second]  # with another owner, it goes


def test_removing_a_member_needs_the_permission_and_the_right_account(client: Client, admin_client: Client, shop):
    owner = Membership.objects.get(account=shop.account)
    other, _ = account_create(name="Other Shop", plan_code="jive", owner_email="boss@other.test")
    assert admin_client.post(url("account_remove_member", other.pk, owner.pk)).status_code == 404

    clerk = get_user_model().objects.create_user(username="clerk", password="clerk-pass-for-tests", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(clerk)
    remove = url("account_remove_member", shop.account.pk, owner.pk)
    assert remove not in text(client.get(url("account_change", shop.account.pk)))
    assert client.post(remove).status_code == 403
    assert Membership.objects.filter(pk=owner.pk).exists()


# --- plans -------------------------------------------------------------------------------------------------------


def test_change_plan_from_the_next_period_then_now(admin_client: Client, admin_user, shop: Shop):
    response = admin_client.post(
        url("account_changelist"), {"action": "change_plan", "_selected_action": [shop.account.pk]}
    )
    form_url = response["Location"]

    response = admin_client.post(form_url, {"plan": "pro"}, follow=True)
    assert "pro from the next period" in text(response)
    subscription = Subscription.objects.get(account=shop.account)
    assert (subscription.plan.code, subscription.pending_plan and subscription.pending_plan.code) == ("jive", "pro")
    assert "jive (next period: pro)" in text(admin_client.get(url("account_changelist")))
    listing = text(admin_client.get(url("subscription_changelist")))
    assert "jive" in listing and "pro" in listing

    response = admin_client.post(form_url, {"plan": "pro", "apply_now": "on"}, follow=True)
    assert "now on pro" in text(response)
    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.pending_plan) == ("pro", None)
    period = period_current(account=shop.account, as_of=timezone.now())
    assert (period.plan.code, period.unit) == ("pro", "tokens")
    changes = AuditEntry.objects.filter(action="plan_changed", actor=admin_user, ip="127.0.0.1").order_by("at", "pk")
    assert [(entry.after or {}).get("apply_now") for entry in changes] == [False, True]
    assert "pro" in text(admin_client.get(url("subscription_change", subscription.pk)))


def test_change_plan_refuses_an_unknown_plan(admin_client: Client, shop: Shop):
    before = snapshot_counts()
    response = admin_client.post(url("account_change_plan", query=f"ids={shop.account.pk}"), {"plan": "platinum"})
    assert "Select a valid choice" in text(response)
    assert snapshot_counts() == before
    assert Subscription.objects.get(account=shop.account).pending_plan is None


# --- periods -----------------------------------------------------------------------------------------------------


def test_close_period_action_closes_ended_periods_only(admin_client: Client, seeded):
    with time_machine.travel(datetime(2025, 1, 15, 12, tzinfo=UTC), tick=False):
        account, _ = account_create(name="Initech", plan_code="starter")
        january = period_current(account=account, as_of=timezone.now())
    with time_machine.travel(datetime(2025, 2, 1, 0, 5, tzinfo=UTC), tick=False):
        february = period_current(account=account, as_of=timezone.now())
        response = admin_client.post(
            url("billingperiod_changelist"),
            {"action": "close_periods", "_selected_action": [january.pk, february.pk]},
            follow=True,
        )
    page = text(response)
    assert "Closed 1 period: Initech" in page and "5.00 USD" in page
    assert "not closed: period" in page
    january.refresh_from_db()
    february.refresh_from_db()
    assert (january.status, february.status) == (BillingPeriod.Status.CLOSED, BillingPeriod.Status.OPEN)
    assert Invoice.objects.get(period=january).amount_cents == 500


# --- read-only tables --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["ledgerentry", "auditentry", "wallet", "subscription", "billingperiod", "invoice"])
def test_ledger_audit_and_billing_records_cannot_be_added_changed_or_deleted(admin_client: Client, shop, model):
    period = period_current(account=shop.account, as_of=timezone.now())
    with time_machine.travel(period.end):  # a close happens once the period has ended
        invoice = period_close(period=period, as_of=period.end)
    obj = {
        "ledgerentry": LedgerEntry.objects.first(),
        "auditentry": AuditEntry.objects.first(),
        "wallet": shop.account.wallet,
        "subscription": shop.account.subscription,
        "billingperiod": period,
        "invoice": invoice,
    }[model]
    assert obj is not None
    counts = snapshot_counts()

    assert admin_client.get(url(f"{model}_add")).status_code == 403
    change = admin_client.get(url(f"{model}_change", obj.pk))
    assert change.status_code == 200
    assert 'name="_save"' not in text(change)
    assert admin_client.post(url(f"{model}_change", obj.pk), {}).status_code == 403
    assert admin_client.get(url(f"{model}_delete", obj.pk)).status_code == 403
    listing = text(admin_client.get(url(f"{model}_changelist")))
    assert url(f"{model}_add") not in listing
    assert "delete_selected" not in listing
    assert snapshot_counts() == counts


def test_the_account_page_saves_nothing_directly(admin_client: Client, shop: Shop):
    response = admin_client.post(url("account_change", shop.account.pk), {"name": "Renamed", "status": "suspended"})
    assert response.status_code == 403
    shop.account.refresh_from_db()
    assert (shop.account.name, shop.account.status) == ("Acme Shop", Account.Status.ACTIVE)
    assert admin_client.get(url("account_delete", shop.account.pk)).status_code == 403


# --- new accounts ------------------------------------------------------------------------------------------------


def test_add_account_creates_account_wallet_subscription_and_key_and_shows_the_key_once(
    admin_client: Client, admin_user, seeded
):
    response = admin_client.post(
        url("account_add"),
        {
            "name": "Umbrella",
            "plan": "starter",
            "owner_email": "boss@umbrella.test",
            "owner_password": "umbrella-owner-pass",
            "credits": "500",
            "display_currency": "ZAR",
        },
    )

    assert response.status_code == 200
    page = text(response)
    assert "shown only this once" in page
    raw_key = KEY_PATTERN.search(page)
    assert raw_key is not None
    account = Account.objects.get(name="Umbrella")
    assert account.display_currency == "ZAR"
    assert balance_of(account) == Decimal(500)
    assert Subscription.objects.get(account=account).plan.code == "starter"
    assert ApiKey.objects.filter(account=account).count() == 1
    owner = Membership.objects.get(account=account, role=Membership.Role.OWNER).user
    assert owner.username == "boss@umbrella.test" and owner.check_password("umbrella-owner-pass")
    assert AuditEntry.objects.filter(action="account_created", account=account, actor=admin_user).exists()
    body = APIClient().get("/api/billing/balance", HTTP_AUTHORIZATION=f"Bearer {raw_key.group()}").json()
    assert body["credits"] == "500.000000000000"
    assert raw_key.group() not in text(admin_client.get(url("account_change", account.pk)))


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"plan": "platinum"}, "Select a valid choice. platinum is not one of the available choices."),
        ({"credits": "0"}, "credits must be > 0, got 0"),
        ({"credits": "-5"}, "credits must be > 0, got -5"),
        ({"name": ""}, "This field is required."),
        ({"owner_email": "", "owner_password": "a-password-without-owner"}, "A password needs an owner email."),
    ],
)
def test_a_refused_new_account_shows_the_error_and_writes_nothing(admin_client: Client, seeded, changes, error):
    posted = {"name": "Umbrella", "plan": "starter", "owner_email": "boss@umbrella.test", "credits": "500",
              "display_currency": "USD", **changes}  # fmt: skip
    before = snapshot_counts()
    response = admin_client.post(url("account_add"), posted)
    assert response.status_code == 200
    assert error in text(response)
    assert KEY_PATTERN.search(text(response)) is None
    assert snapshot_counts() == before


def test_a_plan_retired_while_the_form_was_open_is_refused_by_the_service(admin_client: Client, seeded):
    Plan.objects.filter(code="starter").update(is_active=False)
    before = snapshot_counts()
    with mock.patch("billing.forms._active_plans", return_value=Plan.objects.all()):
        response = admin_client.post(
            url("account_add"), {"name": "Umbrella", "plan": "starter", "display_currency": "USD"}
        )
    assert "unknown plan 'starter'" in text(response)
    assert snapshot_counts() == before


# --- wallet page -------------------------------------------------------------------------------------------------


def test_the_wallet_page_shows_the_newest_50_entries_and_links_to_all(admin_client: Client, shop: Shop):
    for n in range(60):
        wallet_grant(account=shop.account, credits="1", reason="bulk", reference=f"bulk:{n}")

    page = text(admin_client.get(url("wallet_change", shop.account.wallet.pk)))

    assert "1060" in page  # balance 1000 + 60
    assert "bulk:59" in page and "bulk:10" in page
    assert "bulk:9<" not in page and "opening:" not in page
    assert "all 61 entries" in page
    everything = text(
        admin_client.get(url("ledgerentry_changelist", query=f"wallet__id__exact={shop.account.wallet.pk}"))
    )
    assert "opening:" in everything and "bulk:0<" in everything


# --- permissions -------------------------------------------------------------------------------------------------


def test_staff_without_the_permission_cannot_adjust_credits(client: Client, shop: Shop):
    clerk = get_user_model().objects.create_user(username="clerk", password="clerk-pass-for-tests", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(clerk)

    listing = text(client.get(url("account_changelist")))
    assert "Acme Shop" in listing and "Adjust credits" not in listing and "Suspend the selected" not in listing
    assert "Adjust credits" not in text(client.get(url("account_change", shop.account.pk)))
    adjust = url("account_adjust_credits", query=f"ids={shop.account.pk}")
    assert client.post(adjust, {"credits": "5", "reason": "sneaky"}).status_code == 403
    assert balance_of(shop.account) == Decimal(1000)

    clerk.user_permissions.add(Permission.objects.get(codename="change_wallet"))
    response = client.post(adjust, {"credits": "5", "reason": "allowed now"}, follow=True)
    assert "new balance 1005 credits" in text(response)
