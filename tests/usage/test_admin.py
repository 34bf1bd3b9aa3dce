"""The usage console: read-only ledgers, dead letters replayed from an action, and the reports with real numbers."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.models import Wallet
from pricing import services as catalog
from tests.factories import AccountFactory, UserFactory
from usage.models import DailyUsage, RejectedEvent, Reservation, UsageEvent

pytestmark = pytest.mark.usefixtures("catalog")

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)  # day 10 of a 30-day month


def text(response) -> str:
    return html.unescape(response.content.decode())


def cells(page: str, table_id: str) -> list[list[str]]:
    """The rows of a report table as the admin sees them: cell texts, tags stripped."""
    table = page.split(f'id="report-{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
    found = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows
    ]
    return [row for row in found if row]  # the header row has no <td>


def csv_rows(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def _send(account, *events):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")
    response = client.post("/api/usage/events", {"events": list(events)}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _event(request_id: str, model: str, input_tokens: int, output_tokens: int, operation: str = "", **fields):
    return {"request_id": request_id, "model": model, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "operation_type": operation, **fields}  # fmt: skip


@pytest.fixture
def admin_client_(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def usage_month():
    """Two accounts with known usage, seen from 2026-11-10 12:00 UTC.

    Alpha today: claude-3-5-haiku 1M in + 100k out = $0.80 + $0.40 = $1.20 (chat_message) and qwen-3-32b
    1M + 1M = $0.20 (summary). Beta today: gpt-4o-mini 1M + 1M = $0.15 + $0.60 = $0.75 (summary); on Nov 5:
    qwen-3-32b 1M + 1M = $0.20 (chat_message). In October, Beta: qwen-3-32b 500k + 500k = $0.10 (summary).
    Credit plans with no markup: charge = cost, at 10,000 credits per USD.
    """
    with time_machine.travel(datetime(2026, 10, 20, 9, tzinfo=UTC), tick=False):
        alpha = AccountFactory.create(name="Alpha Shop", plan="jive", credits="100000")
        beta = AccountFactory.create(name="Beta Shop", plan="jigga", credits="100000")
        _send(beta, _event("b-oct", "qwen-3-32b", 500_000, 500_000, "summary"))
    with time_machine.travel(NOW, tick=False):
        _send(alpha, _event("a-1", "claude-3-5-haiku", 1_000_000, 100_000, "chat_message"),
              _event("a-2", "qwen-3-32b", 1_000_000, 1_000_000, "summary"))  # fmt: skip
        _send(beta, _event("b-1", "gpt-4o-mini", 1_000_000, 1_000_000, "summary"),
              _event("b-0", "qwen-3-32b", 1_000_000, 1_000_000, "chat_message",
                     occurred_at=datetime(2026, 11, 5, 15, tzinfo=UTC).isoformat()))  # fmt: skip
    return alpha, beta


# --- read-only tables ------------------------------------------------------------------------------------------


def test_events_list_shows_the_events_and_is_read_only(admin_client_, usage_month):
    page = admin_client_.get(reverse("admin:usage_usageevent_changelist"))
    assert page.status_code == 200
    body = text(page)
    for request_id in ("a-1", "a-2", "b-1", "b-0", "b-oct"):
        assert f">{request_id}<" in body
    assert "$1.2000" in body and "12,000.00" in body and "1,100,000" in body
    assert reverse("admin:usage_usageevent_add") not in body

    event = UsageEvent.objects.get(request_id="a-1")
    change_url = reverse("admin:usage_usageevent_change", args=[event.pk])
    detail = admin_client_.get(change_url)
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()  # a view, not a form
    assert admin_client_.get(reverse("admin:usage_usageevent_add")).status_code == 403
    assert admin_client_.get(reverse("admin:usage_usageevent_delete", args=[event.pk])).status_code == 403
    admin_client_.post(change_url, {"charge_usd": "0", "input_tokens": "0"})
    event.refresh_from_db()
    assert event.charge_usd == Decimal("1.2")
    response = admin_client_.post(
        reverse("admin:usage_usageevent_changelist"), {"action": "delete_selected", "_selected_action": [event.pk]}
    )
    assert UsageEvent.objects.filter(pk=event.pk).exists()
    assert response.status_code in (200, 302)


def test_events_list_never_counts_the_whole_table(admin_client_, usage_month):
    with CaptureQueriesContext(connection) as queries:
        page = admin_client_.get(reverse("admin:usage_usageevent_changelist"))
    assert page.status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"] and "usage_usageevent" in q["sql"]]
    assert counts, "the changelist counts its matches"
    assert all("LIMIT" in sql for sql in counts), counts  # bounded by the cap, never a full COUNT(*)


def test_events_list_filters_and_searches(admin_client_, usage_month):
    url = reverse("admin:usage_usageevent_changelist")
    by_model = text(admin_client_.get(url, {"model_id": "qwen-3-32b"}))
    assert ">a-2<" in by_model and ">b-0<" in by_model and ">a-1<" not in by_model
    by_operation = text(admin_client_.get(url, {"operation_type": "chat_message"}))
    assert ">a-1<" in by_operation and ">b-0<" in by_operation and ">b-1<" not in by_operation
    by_search = text(admin_client_.get(url, {"q": "Beta"}))
    assert ">b-1<" in by_search and ">a-1<" not in by_search
    by_request = text(admin_client_.get(url, {"q": "a-2"}))
    assert ">a-2<" in by_request and ">a-1<" not in by_request
    assert admin_client_.get(url, {"over_limit__exact": "1"}).status_code == 200
    assert admin_client_.get(url, {"reconciliation_status__exact": "pending"}).status_code == 200


def test_reservations_and_rollups_are_read_only(admin_client_, usage_month):
    alpha, _ = usage_month
    Reservation.objects.create(account=alpha, request_id="held-1", model_id="qwen-3-32b", held_credits=Decimal(5),
                               created_at=timezone.now(), expires_at=timezone.now() + timedelta(minutes=5))  # fmt: skip
    reservations = admin_client_.get(reverse("admin:usage_reservation_changelist"), {"status__exact": "active"})
    assert reservations.status_code == 200 and "held-1" in text(reservations)
    rollups = admin_client_.get(reverse("admin:usage_dailyusage_changelist"))
    assert rollups.status_code == 200 and "claude-3-5-haiku" in text(rollups)
    assert reverse("admin:usage_report_billing") in text(rollups)
    for name in ("reservation", "dailyusage", "rejectedevent"):
        assert admin_client_.get(reverse(f"admin:usage_{name}_add")).status_code == 403
    row = DailyUsage.objects.earliest("day")
    assert admin_client_.get(reverse("admin:usage_dailyusage_delete", args=[row.pk])).status_code == 403


# --- dead letters ----------------------------------------------------------------------------------------------


def test_dead_letters_are_listed_filtered_and_shown_pretty(admin_client_, jive_account):
    _send(jive_account, _event("dl-1", "gpt-9", 10, 10), _event("dl-2", "qwen-3-32b", -1, 10))
    url = reverse("admin:usage_rejectedevent_changelist")
    listing = text(admin_client_.get(url))
    assert "dl-1" in listing and "dl-2" in listing and "unknown_model" in listing and "out_of_range" in listing
    assert "delete_selected" not in listing and "replay_selected" in listing and "discard_selected" in listing
    filtered = text(admin_client_.get(url, {"error_code": "unknown_model"}))
    assert "dl-1" in filtered and "dl-2" not in filtered
    assert "dl-2" in text(admin_client_.get(url, {"q": "dl-2"}))
    assert (
        admin_client_.get(url, {"account__id__exact": jive_account.pk, "status__exact": "pending"}).status_code == 200
    )

    rejected = RejectedEvent.objects.get(request_id="dl-1")
    detail = text(admin_client_.get(reverse("admin:usage_rejectedevent_change", args=[rejected.pk])))
    assert '<pre>{\n  "input_tokens": 10,\n  "model": "gpt-9",' in detail


def test_replay_and_discard_actions_report_each_outcome(
    admin_client_, admin_user, jive_account, django_capture_on_commit_callbacks
):
    _send(jive_account, _event("fixable", "acme-x", 1000, 500), _event("hopeless", "qwen-3-32b", 10, 10,
          cached_input_tokens=20), _event("junk", "other-x", 1, 1))  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        model = catalog.model_create(model_id="acme-x", display_name="Acme X", provider="acme")
        catalog.model_price_set(model=model, input_per_million="2", output_per_million="4",
                                effective_from=timezone.now() - timedelta(days=1), reason="added for refused events")  # fmt: skip
    url = reverse("admin:usage_rejectedevent_changelist")
    fixable, hopeless, junk = (RejectedEvent.objects.get(request_id=r) for r in ("fixable", "hopeless", "junk"))

    response = admin_client_.post(
        url, {"action": "replay_selected", "_selected_action": [fixable.pk, hopeless.pk]}, follow=True
    )
    assert "Replayed 2: 1 recorded, 1 refused again (see Replay result)." in text(response)
    assert Wallet.objects.get(account=jive_account).balance == Decimal(10000) - 40
    fixable.refresh_from_db()
    hopeless.refresh_from_db()
    assert (fixable.status, hopeless.status) == ("replayed", "pending")
    assert hopeless.replay_result.startswith("subset_exceeds_total: ")
    assert RejectedEvent.objects.filter(account=jive_account).count() == 3

    response = admin_client_.post(url, {"action": "discard_selected", "_selected_action": [junk.pk, fixable.pk]},
                                  follow=True)  # fmt: skip
    assert "Discarded 2: 1 discarded, 1 skipped (not pending)." in text(response)
    junk.refresh_from_db()
    assert junk.status == "discarded"

    response = admin_client_.post(url, {"action": "replay_selected", "_selected_action": [fixable.pk]}, follow=True)
    assert "Replayed 1: 1 skipped (not pending)." in text(response)
    assert Wallet.objects.get(account=jive_account).balance == Decimal(10000) - 40


def test_a_viewer_cannot_replay(jive_account):
    _send(jive_account, _event("dl", "gpt-9", 1, 1))
    viewer = UserFactory.create(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_rejectedevent"))
    client = Client()
    client.force_login(viewer)
    url = reverse("admin:usage_rejectedevent_changelist")
    assert "replay_selected" not in text(client.get(url))
    rejected = RejectedEvent.objects.get()
    client.post(url, {"action": "replay_selected", "_selected_action": [rejected.pk]})
    rejected.refresh_from_db()
    assert (rejected.status, rejected.replay_result) == ("pending", "")


# --- reports ---------------------------------------------------------------------------------------------------


def test_monthly_billing_report_by_operation_and_by_account(admin_client_, usage_month):
    alpha, beta = usage_month
    with time_machine.travel(NOW, tick=False):
        page = admin_client_.get(reverse("admin:usage_report_billing"))
    assert page.status_code == 200
    body = text(page)
    assert "Monthly billing report: November 2026" in body
    # highest charge first, then the total
    assert cells(body, "operation") == [
        ["chat_message", "2", "2,000,000", "1,100,000", "$1.4000", "$1.4000", "14,000.00"],
        ["summary", "2", "2,000,000", "2,000,000", "$0.9500", "$0.9500", "9,500.00"],
        ["Total", "4", "4,000,000", "3,100,000", "$2.3500", "$2.3500", "23,500.00"],
    ]
    assert cells(body, "account") == [
        ["Alpha Shop", str(alpha.pk), "jive", "2", "2,000,000", "1,100,000", "$1.4000", "$1.4000", "14,000.00"],
        ["Beta Shop", str(beta.pk), "jigga", "2", "2,000,000", "2,000,000", "$0.9500", "$0.9500", "9,500.00"],
        ["Total", "", "", "4", "4,000,000", "3,100,000", "$2.3500", "$2.3500", "23,500.00"],
    ]
    assert reverse("admin:billing_account_change", args=[alpha.pk]) in body

    october = text(admin_client_.get(reverse("admin:usage_report_billing"), {"month": "2026-10"}))
    assert cells(october, "account") == [
        ["Beta Shop", str(beta.pk), "jigga", "1", "500,000", "500,000", "$0.1000", "$0.1000", "1,000.00"],
        ["Total", "", "", "1", "500,000", "500,000", "$0.1000", "$0.1000", "1,000.00"],
    ]
    empty = text(admin_client_.get(reverse("admin:usage_report_billing"), {"month": "2025-01"}))
    assert "No usage in this range." in empty


def test_billing_report_csv_carries_unrounded_amounts(admin_client_, usage_month):
    alpha, _ = usage_month
    url = reverse("admin:usage_report_billing")
    by_operation = csv_rows(admin_client_.get(url, {"month": "2026-11", "table": "operation", "format": "csv"}))
    assert by_operation[0] == ["Operation type", "Events", "Input tokens", "Output tokens", "Provider cost (USD)",
                               "Customer charge (USD)", "Credits"]  # fmt: skip
    assert sorted(by_operation[1:]) == [
        ["chat_message", "2", "2000000", "1100000", "1.400000000000", "1.400000000000", "14000.000000000000"],
        ["summary", "2", "2000000", "2000000", "0.950000000000", "0.950000000000", "9500.000000000000"],
    ]
    response = admin_client_.get(url, {"month": "2026-11", "table": "account", "format": "csv"})
    assert response["Content-Disposition"] == 'attachment; filename="billing-2026-11-by-account.csv"'
    by_account = csv_rows(response)
    assert by_account[1][:4] == ["Alpha Shop", str(alpha.pk), "jive", "2"]
    assert by_account[2][4:] == ["2000000", "2000000", "0.950000000000", "0.950000000000", "9500.000000000000"]


def test_billing_report_csv_defuses_spreadsheet_formulas(admin_client_):
    shop = AccountFactory.create(name="=HYPERLINK(1)", plan="jive", credits="100")
    _send(shop, _event("f", "qwen-3-32b", 10, 10))
    rows = csv_rows(admin_client_.get(reverse("admin:usage_report_billing"), {"table": "account", "format": "csv"}))
    assert rows[1][0] == "'=HYPERLINK(1)"


def test_a_bad_month_falls_back_to_this_month(admin_client_, usage_month):
    with time_machine.travel(NOW, tick=False):
        response = admin_client_.get(reverse("admin:usage_report_billing"), {"month": "November"}, follow=True)
    body = text(response)
    assert "Month must look like 2026-11; showing this month." in body
    assert "Monthly billing report: November 2026" in body


def test_high_cost_accounts_today_with_their_projected_month(admin_client_, usage_month):
    alpha, beta = usage_month
    with time_machine.travel(NOW, tick=False):
        body = text(admin_client_.get(reverse("admin:usage_report_high_cost")))
        rows = csv_rows(admin_client_.get(reverse("admin:usage_report_high_cost"), {"format": "csv"}))
    assert "High-cost accounts today (2026-11-10 UTC)" in body
    # projected = month so far / 10 days elapsed x 30 days
    assert cells(body, "high-cost") == [
        ["Alpha Shop", str(alpha.pk), "jive", "2", "$1.4000", "2", "$1.4000", "$1.4000", "$4.2000", "$4.2000",
         "42,000.00"],
        ["Beta Shop", str(beta.pk), "jigga", "1", "$0.7500", "2", "$0.9500", "$0.9500", "$2.8500", "$2.8500",
         "28,500.00"],
    ]  # fmt: skip
    assert [row[0] for row in rows[1:]] == ["Alpha Shop", "Beta Shop"]
    assert rows[2][4] == "0.750000000000" and rows[2][9] == "2.850000000000"


def test_projected_month_end_per_account(admin_client_, usage_month):
    alpha, beta = usage_month
    with time_machine.travel(datetime(2026, 11, 12, 8, tzinfo=UTC), tick=False):
        _send(beta, _event("b-2", "claude-3-5-haiku", 5_000_000, 0, "chat_message"))  # $4.00 on day 12
        body = text(admin_client_.get(reverse("admin:usage_report_projected")))
    assert "Projected month-end cost per account (November 2026)" in body
    assert "/ 12 days elapsed" in body and "x 30 days in the month" in body
    # Beta: 0.95 + 4.00 = 4.95 so far -> 4.95 / 12 x 30 = 12.375; Alpha: 1.40 / 12 x 30 = 3.50
    assert cells(body, "projected") == [
        ["Beta Shop", str(beta.pk), "jigga", "1", "$4.0000", "3", "$4.9500", "$4.9500", "$12.3750", "$12.3750",
         "123,750.00"],
        ["Alpha Shop", str(alpha.pk), "jive", "0", "$0.0000", "2", "$1.4000", "$1.4000", "$3.5000", "$3.5000",
         "35,000.00"],
    ]  # fmt: skip


def test_reports_are_linked_from_the_console_home_and_need_permission(admin_client_, usage_month):
    home = text(admin_client_.get(reverse("admin:index")))
    for name in ("usage_report_billing", "usage_report_high_cost", "usage_report_projected"):
        assert f'href="{reverse(f"admin:{name}")}"' in home
    assert "Report: monthly billing" in text(admin_client_.get(reverse("admin:app_list", args=["usage"])))

    stranger = UserFactory.create(is_staff=True)
    client = Client()
    client.force_login(stranger)
    assert "Report: monthly billing" not in text(client.get(reverse("admin:index")))
    for name in ("usage_report_billing", "usage_report_high_cost", "usage_report_projected"):
        assert client.get(reverse(f"admin:{name}")).status_code == 403
        assert client.get(reverse(f"admin:{name}"), {"format": "csv"}).status_code == 403
    assert Client().get(reverse("admin:usage_report_billing")).status_code == 302  # to the sign-in page
