"""The reconciliation API: staff only (401 anonymous, 403 signed in without is_staff), a multipart upload that
answers the run, a run with its lines, 413 above the upload limit, errors in the project's JSON shape."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from reconciliation.models import ReconciliationRun
from tests.reconciliation.conftest import sample

RUNS = "/api/admin/reconciliation/runs"
PASSWORD = "pw-for-tests-only"


def basic_client(*, staff: bool, username: str = "someone") -> APIClient:
    get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=staff)
    client = APIClient()
    token = base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


def upload(name: str, content: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, sample(name) if content is None else content, content_type="text/csv")


@pytest.fixture
def staff(catalog) -> APIClient:
    return basic_client(staff=True, username="ops")


def test_anonymous_gets_401_and_non_staff_403(catalog):
    anonymous = APIClient().post(RUNS, {"file": upload("requests.csv")}, format="multipart")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "not_authenticated"
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    user = basic_client(staff=False)
    refused = user.post(RUNS, {"file": upload("requests.csv")}, format="multipart")
    assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied")
    assert user.get(f"{RUNS}/1").status_code == 403
    assert APIClient().get(f"{RUNS}/1").status_code == 401
    assert ReconciliationRun.objects.count() == 0


def test_staff_uploads_a_file_and_reads_the_run(account, record, staff):
    record(account, ("e2", "gpt-4o-mini", "2026-10-02T10:00:00Z", 0, 0, 1_000_000))  # 0.60 against 1.20
    response = staff.post(
        RUNS, {"file": upload("openai-costs-export.csv"), "source": "openai-costs"}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["source"], body["rows"], body["discrepancy"], body["not_found"]) == ("openai-costs", 5, 1, 3)
    assert (body["total_actual_usd"], body["match_rate"], body["dry_run"]) == ("3.006562", "0", False)
    assert (body["file_name"], body["actor"], body["trigger"], body["status"]) == (
        "openai-costs-export.csv", "ops", "api", "completed",
    )  # fmt: skip
    assert body["period_start"] == "2026-10-01T00:00:00+00:00"

    detail = staff.get(f"{RUNS}/{body['run_id']}")
    assert detail.status_code == 200
    page = detail.json()
    assert page["lines_total"] == 4 and len(page["lines"]) == 4
    drift = next(line for line in page["lines"] if line["status"] == "discrepancy")
    assert {k: drift[k] for k in ("key", "calculated_usd", "actual_usd", "difference_usd", "reason_code")} == {
        "key": "2026-10-02|gpt-4o-mini|proj_demo",
        "calculated_usd": "0.6",
        "actual_usd": "1.2",
        "difference_usd": "0.6",
        "reason_code": "price_drift",
    }
    assert drift["reason"].startswith("price drift: implied output price $1.2000 per 1M")
    only = staff.get(f"{RUNS}/{body['run_id']}", {"status": "not_found", "limit": 2, "offset": 1}).json()
    assert (only["lines_total"], len(only["lines"]), only["lines_offset"]) == (3, 2, 1)
    assert {line["status"] for line in only["lines"]} == {"not_found"}


def test_the_source_is_told_from_the_header_and_dry_runs_write_nothing(catalog, staff):
    response = staff.post(RUNS, {"file": upload("requests.csv"), "dry_run": "true"}, format="multipart")
    assert response.status_code == 200
    assert (response.json()["run_id"], response.json()["source"], response.json()["dry_run"]) == (
        None,
        "requests",
        True,
    )
    assert ReconciliationRun.objects.count() == 0


def test_a_session_signed_staff_member_may_upload(catalog, client):
    user = get_user_model().objects.create_user(username="desk", password=PASSWORD, is_staff=True)
    client.force_login(user)
    response = client.post(RUNS, {"file": upload("requests.csv"), "source": "requests"})
    assert response.status_code == 201


def test_bad_input_answers_400_in_the_error_shape(catalog, staff):
    unreadable = staff.post(RUNS, {"file": upload("notes.csv", b"a,b\n1,2\n")}, format="multipart")
    assert unreadable.status_code == 400
    assert unreadable.json() == {
        "error": "unreadable_file",
        "message": "the header matches no known source (a, b); name the source",
        "fields": {"file": ["the header matches no known source (a, b); name the source"]},
    }
    assert ReconciliationRun.objects.get().status == "failed"  # a failed run is kept, with who tried
    wrong_source = staff.post(RUNS, {"file": upload("requests.csv"), "source": "stripe"}, format="multipart")
    assert (wrong_source.status_code, wrong_source.json()["error"]) == (400, "invalid")
    assert "source" in wrong_source.json()["fields"]
    no_file = staff.post(RUNS, {"source": "requests"}, format="multipart")
    assert (no_file.status_code, list(no_file.json()["fields"])) == (400, ["file"])
    negative = staff.post(RUNS, {"file": upload("requests.csv"), "tolerance_pct": "-1"}, format="multipart")
    assert negative.status_code == 400
    assert staff.get(f"{RUNS}/999").status_code == 404
    assert staff.get(f"{RUNS}/1", {"limit": "0"}).status_code in (400, 404)


def test_uploads_over_the_limit_get_413(catalog, staff, settings):
    settings.RECONCILIATION_UPLOAD_MAX_BYTES = 100
    small_limit = staff.post(RUNS, {"file": upload("requests.csv")}, format="multipart")  # 288 bytes
    assert small_limit.status_code == 413
    assert small_limit.json()["error"] == "payload_too_large"
    # a declared body far over the limit is refused before it is read
    huge = staff.post(RUNS, {"file": upload("big.csv", b"x" * 200_000)}, format="multipart")
    assert huge.status_code == 413
    assert "limit is 100 bytes" in huge.json()["message"]
    assert ReconciliationRun.objects.count() == 0
