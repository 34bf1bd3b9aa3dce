"""Health at a glance: each check counts what is broken or waiting, and its link opens the admin list that shows
exactly those rows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import Account, StripeEvent
from core.models import JobRun
from reconciliation.models import ReconciliationLine, ReconciliationRun
from tests.console.conftest import NOW
from tests.console.html import Element, page
from usage.models import Alert, AlertDelivery, RejectedEvent

pytestmark = pytest.mark.django_db


def _checks(client: Client) -> dict[str, Element]:
    home = page(client.get(reverse("admin:index")).content)
    return {check.attrs["data-check"]: check for check in home.all("div") if "data-check" in check.attrs}


def _broken(account: Account) -> None:
    """One of everything that can go wrong, and one healthy row of each kind beside it."""
    JobRun.objects.create(job="close_periods", as_of=NOW, started_at=NOW - timedelta(hours=1),
                          status=JobRun.Status.FAILED, error="boom")  # fmt: skip
    JobRun.objects.create(job="expire_reservations", as_of=NOW, started_at=NOW - timedelta(hours=2),
                          status=JobRun.Status.RUNNING, lease_expires_at=NOW - timedelta(minutes=5))  # fmt: skip
    JobRun.objects.create(job="check_integrity", as_of=NOW, started_at=NOW - timedelta(minutes=30),
                          finished_at=NOW, status=JobRun.Status.SUCCEEDED, counts={"problems": 2})  # fmt: skip
    for event_id, status, age in (
        ("evt_failed", "failed", 1),
        ("evt_waiting", "received", 3600),
        ("evt_ok", "succeeded", 1),
    ):
        StripeEvent.objects.create(event_id=event_id, type="checkout.session.completed", payload={},
                                   stripe_created_at=NOW, received_at=NOW - timedelta(seconds=age), status=status)  # fmt: skip
    RejectedEvent.objects.create(account=account, request_id="lost-1", payload={}, error_code="unknown_model",
                                 error_message="no such model", received_at=NOW)  # fmt: skip
    RejectedEvent.objects.create(account=account, request_id="done-1", payload={}, error_code="unknown_model",
                                 error_message="no such model", received_at=NOW,
                                 status=RejectedEvent.Status.REPLAYED)  # fmt: skip
    alert = Alert.objects.create(account=account, kind=Alert.Kind.LOW_BALANCE, period_key="2026-11", subject="Low",
                                 message="low", created_at=NOW)  # fmt: skip
    AlertDelivery.objects.create(alert=alert, channel="webhook", target="https://hooks.example.com/x",
                                 status=AlertDelivery.Status.FAILED, created_at=NOW, last_error="503")  # fmt: skip
    AlertDelivery.objects.create(alert=alert, channel="email", target="owner@example.com",
                                 status=AlertDelivery.Status.SENT, created_at=NOW)  # fmt: skip
    run = ReconciliationRun.objects.create(file_name="costs.csv", sha256="0" * 64, as_of=NOW, started_at=NOW,
                                           status=ReconciliationRun.Status.COMPLETED, matched=3, discrepancy=1)  # fmt: skip
    for key, status, actual in (("a", "matched", "30"), ("b", "matched", "45"), ("c", "discrepancy", "25")):
        ReconciliationLine.objects.create(run=run, key=key, status=status, actual_usd=Decimal(actual))


def test_everything_fine(customers, staff_client: Client):
    checks = _checks(staff_client)
    assert {key: check.one("p", **{"class": "figure"}).text() for key, check in checks.items()} == {
        "jobs_failed": "0 runs", "jobs_stuck": "0 runs", "stripe_failed": "0 events", "stripe_waiting": "0 events",
        "rejected": "0 events", "integrity": "never run", "reconciliation": "none yet", "alerts": "0 deliveries",
    }  # fmt: skip


def test_what_is_broken_is_counted_and_linked(customers, staff_client: Client):
    _broken(customers["Alpha"])
    checks = _checks(staff_client)
    shown = {key: (check.one("p", **{"class": "figure"}).text(), (check.classes() - {"console-check"}).pop())
             for key, check in checks.items()}  # fmt: skip
    assert shown == {
        "jobs_failed": ("1 run", "bad"),
        "jobs_stuck": ("1 run", "bad"),
        "stripe_failed": ("1 event", "bad"),
        "stripe_waiting": ("1 event", "warn"),
        "rejected": ("1 event", "warn"),
        "integrity": ("2 problems", "bad"),
        "reconciliation": ("75.0% matched", "warn"),  # 30 + 45 of the provider's 100 dollars
        "alerts": ("1 delivery", "bad"),
    }
    # each link lists exactly the rows behind its figure
    expected_in_list = {
        "jobs_failed": ("close_periods", "expire_reservations"),
        "jobs_stuck": ("expire_reservations", "close_periods"),
        "stripe_failed": ("evt_failed", "evt_ok"),
        "stripe_waiting": ("evt_waiting", "evt_failed"),
        "rejected": ("lost-1", "done-1"),
        "alerts": ("hooks.example.com", "owner@example.com"),
    }
    for key, (present, absent) in expected_in_list.items():
        url = checks[key].one("a").attrs["href"]
        listing = staff_client.get(url)
        assert listing.status_code == 200, (key, url)
        text = page(listing.content).one(id="result_list").text()
        assert present in text and absent not in text, (key, url)
    run_page = staff_client.get(checks["reconciliation"].one("a").attrs["href"])
    assert run_page.status_code == 200 and b"costs.csv" in run_page.content
