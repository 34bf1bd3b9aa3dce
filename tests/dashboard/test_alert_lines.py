"""Issue 21: the low-balance warning is on by default and fires while the balance is below it (not only when usage
crosses it); owners draw more balance and spend lines on the alerts page, each alerting once per period."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from billing.models import Account
from config.scheduled import alerts_sweep
from tests.dashboard.conftest import NOW, client_for, spread
from tests.factories import AccountFactory
from usage.models import Alert, AlertThreshold


def _kinds(account: Account) -> list[tuple[str, Decimal]]:
    return sorted(Alert.objects.filter(account=account).values_list("kind", "threshold"))


def test_a_new_account_on_a_credit_plan_warns_below_the_default_line(catalog):
    account = AccountFactory.create(plan="jive", owner_email="credits@example.com")
    assert account.low_balance_threshold == settings.LOW_BALANCE_THRESHOLD_DEFAULT == Decimal(10_000)
    page = client_for(User.objects.get(username="credits@example.com")).get("/alerts/").content.decode()
    assert 'name="low_balance_threshold" min="0" step="1" required value="10000"' in page


def test_a_new_account_on_a_quota_plan_starts_with_the_warning_off(owner_client: Client, account: Account):
    assert account.low_balance_threshold == 0  # a Starter (messages) plan never spends its credits
    page = owner_client.get("/alerts/").content.decode()
    assert 'name="low_balance_threshold" min="0" step="1" required value="0"' in page


def test_an_account_that_starts_below_its_line_is_alerted_by_the_sweep(
    catalog, celery_eager, django_capture_on_commit_callbacks
):
    account = AccountFactory.create(name="Empty Shop", plan="jive", owner_email="empty@example.com")
    AccountFactory.create(name="Quota Shop", plan="starter", owner_email="quota@example.com")  # no line: no alert
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_sweep(NOW) == {"alerts": 1}  # no usage crossed anything: it started with 0 credits
    assert _kinds(account) == [("low_balance", Decimal(10_000))]
    assert [m.to for m in mail.outbox] == [["empty@example.com"]]
    assert "Empty Shop's credit balance is low" in mail.outbox[0].subject
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_sweep(NOW) == {"alerts": 0}  # once per period
    assert len(mail.outbox) == 1


def test_raising_the_line_past_the_balance_alerts_at_once(
    account: Account, owner_client: Client, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/alerts/settings/", {"low_balance_threshold": "300000", "display_currency": "USD"}
        )
    assert response.status_code == 302
    assert _kinds(account) == [("low_balance", Decimal(300_000))]
    page = owner_client.get("/").content.decode()
    assert "Your balance is low." in page


def test_an_owner_adds_and_removes_lines(account: Account, owner_client: Client):
    assert owner_client.post("/alerts/lines/", {"kind": "balance", "amount": "50000"}).status_code == 302
    assert owner_client.post("/alerts/lines/", {"kind": "spend", "amount": "12.50"}).status_code == 302
    again = owner_client.post("/alerts/lines/", {"kind": "spend", "amount": "12.5"}, follow=True)
    assert "That alert line was already set." in again.content.decode()
    assert sorted(AlertThreshold.objects.filter(account=account).values_list("kind", "amount")) == [
        ("balance", Decimal(50_000)),
        ("spend", Decimal("12.5")),
    ]
    page = owner_client.get("/alerts/").content.decode()
    assert "Available credits below 50,000" in page
    assert "Spend this period reaches $12.50" in page
    line = AlertThreshold.objects.get(account=account, kind="balance")
    assert owner_client.post(f"/alerts/lines/{line.pk}/remove/").status_code == 302
    assert not AlertThreshold.objects.filter(pk=line.pk).exists()
    assert "Available credits below 50,000" not in owner_client.get("/alerts/").content.decode()


def test_bad_lines_are_refused_with_a_message(account: Account, owner_client: Client):
    for amount in ("0", "-5", "lots", ""):
        response = owner_client.post("/alerts/lines/", {"kind": "spend", "amount": amount})
        assert response.status_code == 400, amount
        assert 'class="field-error"' in response.content.decode()
    assert owner_client.post("/alerts/lines/", {"kind": "cake", "amount": "5"}).status_code == 400
    assert not AlertThreshold.objects.exists()


def test_a_spend_line_alerts_once_when_the_period_reaches_it(
    account: Account, owner_client: Client, recorded, celery_eager, django_capture_on_commit_callbacks
):
    owner_client.post("/alerts/lines/", {"kind": "spend", "amount": "0.01"})
    owner_client.post("/alerts/lines/", {"kind": "spend", "amount": "1000"})
    recorded(spread([0, 1], per_day=5))
    with django_capture_on_commit_callbacks(execute=True):
        alerts_sweep(NOW)
        alerts_sweep(NOW)
    assert _kinds(account) == [("spend", Decimal("0.01"))]  # the $1,000 line is not reached
    page = owner_client.get("/alerts/").content.decode()
    assert "has spent $0.01 this period" in page


def test_lines_are_the_owners_and_their_accounts_own(account: Account, viewer_client: Client, owner_client: Client):
    assert viewer_client.post("/alerts/lines/", {"kind": "balance", "amount": "5"}).status_code == 403
    other = AccountFactory.create(name="Other", plan="starter")
    theirs = AlertThreshold.objects.create(account=other, kind="balance", amount=Decimal(5), created_at=NOW)
    assert owner_client.post(f"/alerts/lines/{theirs.pk}/remove/").status_code == 404
    assert AlertThreshold.objects.filter(pk=theirs.pk).exists()
    assert "Add line" not in viewer_client.get("/alerts/").content.decode()
