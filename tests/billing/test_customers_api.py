"""The customers API with a server key: create or update by external id, list, suspend, plan, grants, keys, reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from rest_framework.test import APIClient

from billing.models import Account, AuditEntry, LedgerEntry, Membership, Subscription
from billing.services.server_keys import server_key_issue, server_key_revoke
from billing.services.wallet import grants_expire
from config.tasks import expire_grants as expire_grants_job
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.usefixtures("catalog")


def server_client(scopes: str = "customers,usage,read") -> APIClient:
    _, raw = server_key_issue(name="backend", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def put(client: APIClient, external_id: str, body: dict) -> tuple[int, dict]:
    response = client.put(f"/api/customers/{external_id}", body, format="json")
    return response.status_code, response.json()


def grant(client: APIClient, external_id: str, body: dict, key: str | None = "g-1"):
    path = f"/api/customers/{external_id}/credits"
    if key is None:
        return client.post(path, body, format="json")
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


# --- create or update -------------------------------------------------------------------------------------------------


def test_put_creates_then_updates_and_the_same_body_twice_changes_nothing():
    client = server_client()
    body = {"name": "Acme", "email": "owner@acme.example", "plan": "jive", "metadata": {"crm": "A-17"},
            "low_balance_threshold": "1000", "display_currency": "ZAR"}  # fmt: skip
    status, created = put(client, "org_1", body)
    assert status == 201
    assert created["external_id"] == "org_1"
    assert (created["name"], created["email"], created["plan"], created["status"]) == (
        "Acme", "owner@acme.example", "jive", "active",
    )  # fmt: skip
    assert created["metadata"] == {"crm": "A-17"}
    assert created["low_balance_threshold"] == "1000"
    assert created["display_currency"] == "ZAR"
    assert created["balance"] == {"credits": "0", "held_credits": "0", "available_credits": "0", "low_balance": True}
    audits = AuditEntry.objects.count()

    status, again = put(client, "org_1", body)
    assert status == 200
    assert again == created
    assert AuditEntry.objects.count() == audits  # nothing changed, nothing audited
    assert Account.objects.filter(external_id="org_1").count() == 1

    status, renamed = put(client, "org_1", {"name": "Acme Ltd", "plan": "jigga"})
    assert status == 200
    assert (renamed["name"], renamed["plan"], renamed["email"]) == ("Acme Ltd", "jigga", "owner@acme.example")
    assert AuditEntry.objects.filter(action="plan_changed", via__startswith="server key tls_").exists()


def test_put_sets_the_alert_webhook_through_the_account_settings_service():
    client = server_client()
    status, body = put(client, "w1", {"name": "W", "alert_webhook_url": "https://hooks.example/tl"})
    assert status == 201 and body["alert_webhook_url"] == "https://hooks.example/tl"
    account = Account.objects.get(external_id="w1")
    assert account.alert_webhook_secret  # alerts to it are signed
    status, body = put(client, "w1", {"alert_webhook_url": ""})
    assert status == 200 and body["alert_webhook_url"] == ""
    assert AuditEntry.objects.filter(account=account, action="account_settings_changed").count() == 2


def test_metadata_of_exactly_4_kb_is_kept_and_one_byte_more_is_refused():
    client = server_client()
    padding = 4096 - len('{"k":""}')
    status, body = put(client, "m1", {"name": "M", "metadata": {"k": "x" * padding}})
    assert status == 201 and len(body["metadata"]["k"]) == padding
    status, body = put(client, "m1", {"metadata": {"k": "x" * (padding + 1)}})
    assert status == 400 and "metadata" in body["fields"]
    assert len(Account.objects.get(external_id="m1").metadata["k"]) == padding


def test_put_email_makes_the_owner_who_signs_in_and_a_new_email_replaces_the_owner():
    client = server_client()
    put(client, "org_2", {"name": "Two", "email": "first@two.example"})
    account = Account.objects.get(external_id="org_2")
    assert Membership.objects.get(account=account).user.username == "first@two.example"
    status, body = put(client, "org_2", {"email": "second@two.example"})
    assert status == 200 and body["email"] == "second@two.example"
    owners = Membership.objects.filter(account=account, role="owner").values_list("user__username", flat=True)
    assert list(owners) == ["second@two.example"]


def test_put_refuses_bad_input_with_the_field_named():
    client = server_client()
    status, body = put(client, "org_3", {"email": "x@three.example"})
    assert status == 400 and body["error"] == "invalid" and "name" in body["fields"]
    cases: list[tuple[dict, str | None]] = [
        ({"name": "N", "metadata": {"big": "x" * 5000}}, "metadata"),
        ({"name": "N", "metadata": ["not", "an", "object"]}, "metadata"),
        ({"name": "N", "metadata": {"k": "nul\x00"}}, "metadata"),
        ({"name": "N", "plan": "no-such-plan"}, None),
        ({"name": "N", "email": "not-an-email"}, "email"),
        ({"name": "N", "low_balance_threshold": "-5"}, "low_balance_threshold"),
        ({"name": "N", "alert_webhook_url": "ftp://example.com/x"}, "alert_webhook_url"),
        ({"name": "N", "colour": "red"}, "colour"),
        ({"name": "N\x00"}, "name"),
        ({"name": "N", "display_currency": "XXX"}, "display_currency"),
    ]
    for bad, field in cases:
        status, body = put(client, "org_3", bad)
        assert status == 400, (bad, body)
        if field:
            assert field in body["fields"], (bad, body)
    assert not Account.objects.filter(external_id="org_3").exists()


def test_put_refuses_an_email_of_a_staff_user():
    UserFactory.create(username="admin@tokenledger.example", is_staff=True)
    status, body = put(server_client(), "org_4", {"name": "Four", "email": "admin@tokenledger.example"})
    assert status == 400 and "email" in body["fields"]


@pytest.mark.parametrize(
    ("external_id", "code"),
    # a NUL anywhere in a path is refused before any view (core.api_errors.ApiErrorMiddleware)
    [("a" * 129, "invalid"), ("tab%09here", "invalid"), ("nul%00byte", "malformed_request")],
)
def test_bad_external_ids_are_400(external_id, code):
    response = server_client().put(f"/api/customers/{external_id}", {"name": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == code


def test_unicode_external_id_round_trips():
    client = server_client()
    status, body = put(client, "kunde-ä漢", {"name": "Ünïcode"})
    assert status == 201 and body["external_id"] == "kunde-ä漢"
    assert client.get("/api/customers/kunde-ä漢").json()["name"] == "Ünïcode"


# --- who may call -----------------------------------------------------------------------------------------------------


def test_account_keys_sessions_and_keys_without_the_scope_are_refused():
    account = AccountFactory.create()
    with_account_key = APIClient()
    with_account_key.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")  # type: ignore[attr-defined]
    assert with_account_key.get("/api/customers").status_code == 403
    assert APIClient().get("/api/customers").status_code == 401
    usage_only = server_client("usage")
    response = usage_only.put("/api/customers/x", {"name": "x"}, format="json")
    assert response.status_code == 403 and response.json()["error"] == "permission_denied"
    assert not Account.objects.filter(external_id="x").exists()


def test_a_revoked_server_key_is_401():
    key, raw = server_key_issue(name="old", scopes="customers")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/customers").status_code == 200
    server_key_revoke(key=key)
    response = client.get("/api/customers")
    assert response.status_code == 401 and response.json()["error"] == "authentication_failed"


def test_unknown_customer_is_404_everywhere():
    client = server_client()
    for method, path in [
        ("get", "/api/customers/nobody"), ("post", "/api/customers/nobody/suspend"),
        ("get", "/api/customers/nobody/balance"), ("get", "/api/customers/nobody/stats"),
        ("post", "/api/customers/nobody/portal-sessions"), ("get", "/api/customers/nobody/api-keys"),
    ]:  # fmt: skip
        response = getattr(client, method)(path, {}, format="json")
        assert response.status_code == 404, path
        assert response.json()["error"] == "unknown_customer"


# --- list -------------------------------------------------------------------------------------------------------------


def test_list_pages_with_a_cursor_and_filters():
    client = server_client()
    for n in range(5):
        put(client, f"c{n}", {"name": f"C{n}", "plan": "jigga" if n % 2 else "jive"})
    AccountFactory.create()  # an account that is not a customer is never listed
    client.post("/api/customers/c3/suspend")

    first = client.get("/api/customers?limit=2").json()
    assert [c["external_id"] for c in first["results"]] == ["c0", "c1"]
    second = client.get(f"/api/customers?limit=2&cursor={first['next_cursor']}").json()
    third = client.get(f"/api/customers?limit=2&cursor={second['next_cursor']}").json()
    assert [c["external_id"] for c in second["results"] + third["results"]] == ["c2", "c3", "c4"]
    assert third["next_cursor"] is None

    jigga = client.get("/api/customers?plan=jigga").json()["results"]
    assert [c["external_id"] for c in jigga] == ["c1", "c3"]
    suspended = client.get("/api/customers?status=suspended").json()["results"]
    assert [c["external_id"] for c in suspended] == ["c3"]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert client.get(f"/api/customers?created_from={future}").json()["results"] == []
    assert len(client.get(f"/api/customers?created_to={future}").json()["results"]) == 5
    for bad in ["cursor=%%%", "status=gone", "limit=0", "limit=x", "created_from=yesterday"]:
        response = client.get(f"/api/customers?{bad}")
        assert response.status_code == 400, bad


# --- status and plan --------------------------------------------------------------------------------------------------


def test_suspend_and_reactivate_are_audited_with_the_server_key():
    client = server_client()
    put(client, "s1", {"name": "S"})
    body = client.post("/api/customers/s1/suspend").json()
    assert body["status"] == "suspended"
    assert client.post("/api/customers/s1/reactivate").json()["status"] == "active"
    actions = list(AuditEntry.objects.filter(account__external_id="s1").values_list("action", "via"))
    assert ("account_suspended", "server key tls_" + actions[0][1].split("tls_")[1]) in actions
    assert {a for a, _ in actions} >= {"account_suspended", "account_reactivated"}


def test_plan_change_now_or_next_period():
    client = server_client()
    put(client, "p1", {"name": "P", "plan": "jive"})
    later = client.post("/api/customers/p1/plan", {"plan": "jigga", "when": "next_period"}, format="json").json()
    assert (later["plan"], later["pending_plan"]) == ("jive", "jigga")
    now = client.post("/api/customers/p1/plan", {"plan": "free", "when": "now"}, format="json").json()
    assert (now["plan"], now["pending_plan"]) == ("free", None)
    assert Subscription.objects.get(account__external_id="p1").plan.code == "free"
    bad = client.post("/api/customers/p1/plan", {"plan": "jigga", "when": "someday"}, format="json")
    assert bad.status_code == 400
    unknown = client.post("/api/customers/p1/plan", {"plan": "nope", "when": "now"}, format="json")
    assert unknown.status_code == 400


# --- grants and Idempotency-Key --------------------------------------------------------------------------------------


def test_grant_needs_an_idempotency_key_and_a_retry_grants_once():
    client = server_client()
    put(client, "g1", {"name": "G"})
    missing = grant(client, "g1", {"credits": "500", "reason": "welcome"}, key=None)
    assert missing.status_code == 400 and missing.json()["error"] == "idempotency_key_required"

    first = grant(client, "g1", {"credits": "500", "reason": "welcome"}, key="k-1")
    assert first.status_code == 201
    assert first.json() == {"balance": "500", "credits": "500", "expires_at": None}
    retry = grant(client, "g1", {"credits": "500", "reason": "welcome"}, key="k-1")
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert retry["Idempotent-Replayed"] == "true"
    other = grant(client, "g1", {"credits": "900", "reason": "welcome"}, key="k-1")
    assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
    second = grant(client, "g1", {"credits": "250", "reason": "more"}, key="k-2")
    assert second.json()["balance"] == "750"
    assert client.get("/api/customers/g1/balance").json()["credits"] == "750.000000000000"
    assert LedgerEntry.objects.filter(wallet__account__external_id="g1", kind="grant").count() == 2


def test_a_refused_grant_stores_nothing_so_a_corrected_retry_may_reuse_the_key():
    client = server_client()
    put(client, "g2", {"name": "G"})
    bad = grant(client, "g2", {"credits": "-5", "reason": "oops"}, key="k")
    assert bad.status_code == 400
    good = grant(client, "g2", {"credits": "5", "reason": "fixed"}, key="k")
    assert good.status_code == 201 and good.json()["balance"] == "5"


def test_idempotency_keys_belong_to_their_server_key():
    one, two = server_client(), server_client()
    put(one, "g3", {"name": "G"})
    assert grant(one, "g3", {"credits": "1", "reason": "a"}, key="same").json()["balance"] == "1"
    assert grant(two, "g3", {"credits": "1", "reason": "a"}, key="same").json()["balance"] == "2"


def test_bad_grants_are_400():
    client = server_client()
    put(client, "g4", {"name": "G"})
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    for body in [
        {"credits": "0", "reason": "x"}, {"credits": "abc", "reason": "x"}, {"credits": "5"},
        {"credits": "5", "reason": "x", "expires_at": past}, {"credits": "5", "reason": "x", "expires_at": "soon"},
    ]:  # fmt: skip
        response = grant(client, "g4", body, key=json.dumps(body)[:200])
        assert response.status_code == 400, body
    bad_key = grant(client, "g4", {"credits": "5", "reason": "x"}, key="é" * 3)
    assert bad_key.status_code == 400


def test_an_expiring_grant_leaves_the_unspent_part_at_its_expiry():
    client = server_client()
    put(client, "g5", {"name": "G"})
    expires = datetime.now(UTC) + timedelta(days=3)
    body = {"credits": "1000", "reason": "trial", "expires_at": expires.isoformat()}
    assert grant(client, "g5", body, key="trial").json()["balance"] == "1000"
    grant(client, "g5", {"credits": "200", "reason": "bought"}, key="bought")
    assert grants_expire(as_of=expires - timedelta(seconds=1)) == 0
    assert expire_grants_job(expires.isoformat()) == {"expired": 1}  # the job beat runs every 5 minutes
    assert grants_expire(as_of=expires) == 0  # idempotent
    assert client.get("/api/customers/g5/balance").json()["credits"] == "200.000000000000"
    assert LedgerEntry.objects.filter(wallet__account__external_id="g5", kind="expiry").get().credits == -1000


def test_other_posts_replay_with_the_same_idempotency_key():
    client = server_client()
    put(client, "i1", {"name": "I"})
    first = client.post("/api/customers/i1/api-keys", {"name": "prod"}, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    again = client.post("/api/customers/i1/api-keys", {"name": "prod"}, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert Account.objects.get(external_id="i1").api_keys.count() == 1
    conflict = client.post("/api/customers/i1/api-keys", {"name": "dev"}, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    assert conflict.status_code == 409
    # the stored answer holds a key in clear: it is kept encrypted
    from billing.models import IdempotencyKey

    assert first.json()["api_key"] not in "".join(IdempotencyKey.objects.values_list("response", flat=True))


def test_idempotency_keys_are_kept_a_day_then_purged():
    from billing.models import IdempotencyKey
    from config.scheduled import cleanup

    client = server_client()
    put(client, "i2", {"name": "I"})
    client.post("/api/customers/i2/suspend", HTTP_IDEMPOTENCY_KEY="s")
    stored_at = IdempotencyKey.objects.get().created_at
    cleanup(stored_at + timedelta(hours=23))
    assert IdempotencyKey.objects.count() == 1
    counts = cleanup(stored_at + timedelta(hours=24, seconds=1))
    assert counts["idempotency_keys"] == 1 and IdempotencyKey.objects.count() == 0


# --- the customer's API keys and reads --------------------------------------------------------------------------------


def test_customer_api_keys_issue_list_revoke():
    client = server_client()
    put(client, "k1", {"name": "K"})
    issued = client.post("/api/customers/k1/api-keys", {"name": "prod"}, format="json").json()
    assert issued["api_key"].startswith(issued["prefix"] + "_")
    listed = client.get("/api/customers/k1/api-keys").json()["results"]
    assert [k["key_id"] for k in listed] == [issued["key_id"]] and "api_key" not in listed[0]

    as_customer = APIClient()
    as_customer.credentials(HTTP_AUTHORIZATION=f"Bearer {issued['api_key']}")
    assert as_customer.get("/api/billing/balance").status_code == 200
    revoked = client.delete(f"/api/customers/k1/api-keys/{issued['key_id']}").json()
    assert revoked["revoked_at"] is not None
    assert as_customer.get("/api/billing/balance").status_code == 401
    put(client, "k2", {"name": "K2"})
    assert client.delete(f"/api/customers/k2/api-keys/{issued['key_id']}").status_code == 404


def test_customer_reads_answer_as_the_account_endpoints():
    client = server_client()
    put(client, "r1", {"name": "R", "plan": "jive"})
    grant(client, "r1", {"credits": "25000", "reason": "x"}, key="r1")
    balance = client.get("/api/customers/r1/balance").json()
    assert balance["credits"] == "25000.000000000000" and balance["usd_equivalent"] == "2.50"
    assert client.get("/api/customers/r1/usage").json()["plan"] == "jive"
    assert client.get("/api/customers/r1/invoices").json() == {"results": []}
    assert client.get("/api/customers/r1/stats").json()["total_events"] == 0


# --- one key for every account endpoint --------------------------------------------------------------------------------


def test_a_server_key_reads_account_endpoints_for_the_customer_in_the_header():
    client = server_client("read")
    admin = server_client()
    put(admin, "h1", {"name": "H"})
    grant(admin, "h1", {"credits": "42", "reason": "x"}, key="h1")
    assert client.get("/api/billing/balance", HTTP_TOKENLEDGER_CUSTOMER="h1").json()["credits"].startswith("42.")
    missing = client.get("/api/billing/balance")
    assert missing.status_code == 400 and missing.json()["error"] == "customer_required"
    unknown = client.get("/api/billing/balance", HTTP_TOKENLEDGER_CUSTOMER="nobody")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_customer"
    plain_account = AccountFactory.create()  # an account that is not a customer cannot be named
    assert client.get("/api/billing/balance", HTTP_TOKENLEDGER_CUSTOMER=str(plain_account.pk)).status_code == 404
    no_scope = client.post(
        "/api/usage/authorize",
        {"request_id": "r", "model": "gpt-4o-mini", "input_tokens": 1, "max_output_tokens": 1},
        format="json", HTTP_TOKENLEDGER_CUSTOMER="h1",
    )  # fmt: skip
    assert no_scope.status_code == 403


def test_a_server_key_with_usage_scope_authorizes_for_the_customer():
    admin = server_client()
    put(admin, "u1", {"name": "U"})
    grant(admin, "u1", {"credits": "100000", "reason": "x"}, key="u1")
    usage = server_client("usage")
    response = usage.post(
        "/api/usage/authorize",
        {"request_id": "r-1", "model": "gpt-4o-mini", "input_tokens": 100, "max_output_tokens": 100},
        format="json", HTTP_TOKENLEDGER_CUSTOMER="u1",
    )  # fmt: skip
    assert response.status_code == 200 and response.json()["allowed"] is True
    assert Account.objects.get(external_id="u1").wallet.held > 0


def test_catalog_reads_take_account_and_server_keys():
    account = AccountFactory.create()
    with_account_key = APIClient()
    with_account_key.credentials(HTTP_AUTHORIZATION=f"Bearer {account.api_key}")  # type: ignore[attr-defined]
    for path in ["/api/tokens/models", "/api/tokens/features", "/api/tokens/exchange"]:
        assert with_account_key.get(path).status_code == 200, path
        assert server_client("read").get(path).status_code == 200, path
        assert APIClient().get(path).status_code == 401, path


# --- the command --------------------------------------------------------------------------------------------------------


def test_issue_server_key_command(capsys):
    call_command("issue_server_key", "--name", "ci", "--scopes", "customers,read")
    out = json.loads(capsys.readouterr().out)
    assert out["server_key"].startswith("tls_") and out["scopes"] == ["customers", "read"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out['server_key']}")
    assert client.get("/api/customers").status_code == 200
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown scope"):
        call_command("issue_server_key", "--name", "ci", "--scopes", "admin")


def test_last_used_is_written_at_most_once_a_minute():
    key, raw = server_key_issue(name="t", scopes="customers")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    with time_machine.travel(datetime(2026, 12, 7, 10, 0, tzinfo=UTC), tick=False):
        client.get("/api/customers")
    key.refresh_from_db()
    assert key.last_used_at == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    with time_machine.travel(datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC), tick=False):
        client.get("/api/customers")
    key.refresh_from_db()
    assert key.last_used_at == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
