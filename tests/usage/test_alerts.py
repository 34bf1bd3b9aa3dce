from __future__ import annotations

import hashlib
import hmac
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from billing.models import Account, BillingPeriod
from billing.services.periods import period_current
from tests.factories import AccountFactory
from usage.models import Alert, AlertDelivery, DailyUsage
from usage.services import summaries
from usage.services.alerts import alert_deliver, alerts_check_account
from usage.services.authorization import AuthorizeRequest, reservation_create
from usage.services.recording import usage_record_batch

pytestmark = pytest.mark.usefixtures("catalog")


def _events(prefix: str, count: int) -> list[dict]:
    return [
        {"request_id": f"{prefix}{n}", "model": "qwen-3-32b", "input_tokens": 10, "output_tokens": 10}
        for n in range(count)
    ]


def _starter_at(units: int) -> Account:
    account = AccountFactory.create(plan="starter", owner_email=f"owner{units}@shop.test")
    period = period_current(account=account, as_of=timezone.now())
    BillingPeriod.objects.filter(pk=period.pk).update(units_used=units)
    return account


def test_crossing_thresholds_fires_each_once_with_an_email(celery_eager, django_capture_on_commit_callbacks):
    account = _starter_at(740)  # 1,000 messages included; thresholds 75/90/100
    with django_capture_on_commit_callbacks(execute=True):
        usage_record_batch(account=account, raw_events=_events("a", 20))  # 760: crosses 75 %
    with django_capture_on_commit_callbacks(execute=True):
        usage_record_batch(account=account, raw_events=_events("b", 5))  # 765: crosses nothing
    with django_capture_on_commit_callbacks(execute=True):
        usage_record_batch(account=account, raw_events=_events("c", 250))  # 1,015: 90 %, 100 %, overage
    alerts = sorted(Alert.objects.filter(account=account).values_list("kind", "threshold"))
    assert alerts == [  # no low-balance alert: a Starter (messages) plan never spends credits, so has no default line
        ("overage_started", Decimal(100)),
        ("quota", Decimal(75)),
        ("quota", Decimal(90)),
        ("quota", Decimal(100)),
    ]
    subjects = sorted(m.subject for m in mail.outbox)
    assert "[TokenLedger] " + account.name + " has used 75 % of its messages this period" in subjects
    assert len(mail.outbox) == 4
    first = next(m for m in mail.outbox if "75 %" in m.subject)
    assert first.to == ["owner740@shop.test"]
    assert "760 of 1000 messages used (76.0 %)" in first.body
    assert first.alternatives[0][1] == "text/html"  # type: ignore[attr-defined]


def test_low_balance_alert(celery_eager, django_capture_on_commit_callbacks):
    account = AccountFactory.create(plan="jive", credits="10", low_balance_threshold=Decimal(9), owner_email="o@x.test")
    with django_capture_on_commit_callbacks(execute=True):
        usage_record_batch(account=account, raw_events=_events("a", 1))  # 20 tokens = 0.02 credits: 9.98, above
        usage_record_batch(account=account, raw_events=_events("b", 100))  # 9.98 - 2 = 7.98: below
    alert = Alert.objects.get(account=account)
    assert (alert.kind, alert.threshold) == ("low_balance", Decimal(9))
    assert "7.98 credits are available, below the 9 set" in mail.outbox[0].body


def test_low_balance_reached_by_a_hold_is_alerted_when_the_call_is_recorded(
    celery_eager, django_capture_on_commit_callbacks
):
    # the hold at authorize time takes the available credits below the line; recording the call reports it
    account = AccountFactory.create(plan="jive", credits="10", low_balance_threshold=Decimal(9), owner_email="o@x.test")
    decision = reservation_create(
        account=account,
        request=AuthorizeRequest(request_id="big", model="qwen-3-32b", input_tokens=1000, max_output_tokens=1000),
    )
    assert decision.allowed and decision.remaining is not None and decision.remaining < 9
    with django_capture_on_commit_callbacks(execute=True):
        usage_record_batch(
            account=account,
            raw_events=[{"request_id": "big", "model": "qwen-3-32b", "input_tokens": 1000, "output_tokens": 1000}],
        )
    alert = Alert.objects.get(account=account)
    assert (alert.kind, alert.threshold) == ("low_balance", Decimal(9))


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[Any, bytes]] = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((self.headers, body))
        self.send_response(_Receiver.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    # a receiver on this machine: allowed only because the settings list it (see test_webhook_ssrf.py)
    settings.WEBHOOK_ALLOW_HTTP, settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS = True, ["127.0.0.1"]
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received, _Receiver.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_webhook_is_signed_with_the_accounts_secret(receiver):
    account = _starter_at(899)
    Account.objects.filter(pk=account.pk).update(alert_webhook_url=f"http://127.0.0.1:{receiver.server_port}/hook")
    account.refresh_from_db()
    BillingPeriod.objects.filter(account=account).update(units_used=905)
    alerts_check_account(account=account, as_of=timezone.now())
    alert = Alert.objects.get(account=account, threshold=90)
    assert alert_deliver(alert_id=alert.pk) is None
    headers, body = next((h, b) for h, b in _Receiver.received if json.loads(b)["threshold"] == "90.000000000000")
    expected = "sha256=" + hmac.new(account.alert_webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-TokenLedger-Signature"] == expected
    assert json.loads(body)["kind"] == "quota"
    assert AlertDelivery.objects.get(alert=alert, channel="webhook").status == "sent"


def test_a_failing_webhook_is_logged_and_reported_for_retry(receiver):
    _Receiver.status = 500
    account = _starter_at(950)
    Account.objects.filter(pk=account.pk).update(alert_webhook_url=f"http://127.0.0.1:{receiver.server_port}/hook")
    alerts_check_account(account=account, as_of=timezone.now())
    alert = Alert.objects.get(account=account, threshold=90)
    assert alert_deliver(alert_id=alert.pk) == "webhook answered 500"
    delivery = AlertDelivery.objects.get(alert=alert, channel="webhook")
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    _Receiver.status = 200
    assert alert_deliver(alert_id=alert.pk) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(mail.outbox) == 1  # the email went once, not again with the retry


def test_daily_cost_alert_with_projection():
    account = AccountFactory.create(plan="jive", credits="1000000", owner_email="o@x.test")
    day = datetime(2026, 11, 10, tzinfo=UTC).date()
    DailyUsage.objects.create(
        account=account, day=day, model_id="claude-3-5-haiku", events=100, charge_usd=Decimal("6")
    )
    DailyUsage.objects.create(
        account=account, day=day - timedelta(days=1), model_id="claude-3-5-haiku", events=1, charge_usd=Decimal("4")
    )
    assert summaries.daily_cost_alerts(as_of=datetime(2026, 11, 11, 2, tzinfo=UTC)) == 1
    assert summaries.daily_cost_alerts(as_of=datetime(2026, 11, 11, 2, tzinfo=UTC)) == 0
    alert = Alert.objects.get(kind="daily_cost")
    assert alert.value == Decimal(6)
    assert "the month comes to $30.00" in alert.message  # $10 over 10 days x 30 days


def test_anomaly_flags_and_the_plan_may_suspend():
    account = AccountFactory.create(plan="jive", credits="1000000")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for days_ago in range(1, 8):
        DailyUsage.objects.create(
            account=account, day=(hour - timedelta(days=days_ago)).date(), model_id="m", charge_usd=Decimal("2.4")
        )
    # the average hour was $0.10; this hour costs $1.20 over 30 requests ($0.0008 + $0.0392 each): 12x
    usage_record_batch(
        account=account,
        raw_events=[{"request_id": f"x{n}", "model": "claude-3-5-haiku", "input_tokens": 1000, "output_tokens": 9800,
                     "occurred_at": (hour + timedelta(seconds=1)).isoformat()} for n in range(30)],
    )  # fmt: skip
    account.subscription.plan.anomaly_suspends = True
    account.subscription.plan.save()
    assert summaries.anomaly_scan(as_of=hour + timedelta(hours=1)) == {"flagged": 1, "suspended": 1}
    assert summaries.anomaly_scan(as_of=hour + timedelta(hours=1)) == {"flagged": 0, "suspended": 0}
    account.refresh_from_db()
    assert account.status == "suspended"


def test_weekly_summary_once_per_week(celery_eager, django_capture_on_commit_callbacks):
    account = AccountFactory.create(plan="jive", credits="1000000", owner_email="o@x.test")
    DailyUsage.objects.create(account=account, day=datetime(2026, 11, 18, tzinfo=UTC).date(), model_id="qwen-3-32b", events=3,
                              input_tokens=300, output_tokens=30, charge_usd=Decimal("1.2345"))  # fmt: skip
    as_of = datetime(2026, 11, 22, 10, tzinfo=UTC)
    with django_capture_on_commit_callbacks(execute=True):
        assert summaries.weekly_summaries(as_of=as_of) == 1
        assert summaries.weekly_summaries(as_of=as_of) == 0
    assert "3 requests, 330 tokens, $1.23" in mail.outbox[0].body
    assert "qwen-3-32b: $1.23" in mail.outbox[0].body


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_recordings_crossing_90_percent_send_exactly_one_alert(celery_eager):
    account = _starter_at(880)

    def record(thread: int) -> None:
        try:
            usage_record_batch(account=account, raw_events=_events(f"t{thread}-", 5))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(record, range(8)))  # 880 + 40 = 920: every thread races past 90 %
    assert Alert.objects.filter(account=account, kind="quota", threshold=90).count() == 1
    assert len([m for m in mail.outbox if "90 %" in m.subject]) == 1


def test_alerts_are_shown_read_only_in_the_console(admin_client):
    account = _starter_at(905)
    alerts_check_account(account=account, as_of=timezone.now())
    alert = Alert.objects.get(account=account, threshold=90)
    alert_deliver(alert_id=alert.pk)
    listing = admin_client.get("/admin/usage/alert/")
    assert listing.status_code == 200
    assert "has used 90 % of its messages" in listing.content.decode()
    page = admin_client.get(f"/admin/usage/alert/{alert.pk}/change/")
    assert page.status_code == 200
    assert "owner905@shop.test" in page.content.decode()
    assert admin_client.get("/admin/usage/alert/add/").status_code == 403


def test_a_failed_payment_reported_by_billing_alerts_once(celery_eager, django_capture_on_commit_callbacks):
    from usage.tasks import payment_failed_alert_task

    account = AccountFactory.create(plan="starter", owner_email="pay@shop.test")

    def report() -> bool:
        return payment_failed_alert_task(
            account.pk, "in_123", "Payment failed", "Your card was declined.", "2026-11-21T10:00:00+00:00"
        )

    with django_capture_on_commit_callbacks(execute=True):
        assert report() is True
        assert report() is False
    assert Alert.objects.get(account=account).kind == "payment_failed"
    assert [m.to for m in mail.outbox] == [["pay@shop.test"]]
