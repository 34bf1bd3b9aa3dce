"""Uploads and queries no provider file has: NUL characters in any cell (and so in a row's error message), query
numbers past what the database can hold. Each is stored safely or refused with a JSON 400, never a 500; on
PostgreSQL too, where text columns refuse NUL."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from reconciliation.models import ReconciliationLine, ReconciliationRun

RUNS = "/api/admin/reconciliation/runs"
PASSWORD = "pw-for-tests-only"

COSTS_HEADER = (
    b"start_time,end_time,start_time_iso,end_time_iso,amount_value,amount_currency,line_item,project_id,"
    b"organization_id,organization_name\n"
)
COSTS_ROW = b'1790812800,1790899200,2026-10-01T00:00:00+00:00,2026-10-02T00:00:00+00:00,%s,usd,"%s",%s,org-demo,Demo\n'


@pytest.fixture
def staff(catalog) -> APIClient:
    get_user_model().objects.create_user(username="ops", password=PASSWORD, is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode())
    return client


def _upload(client: APIClient, content: bytes, *, source: str, name: str = "export.csv"):
    file = SimpleUploadedFile(name, content, content_type="text/csv")
    return client.post(RUNS, {"file": file, "source": source}, format="multipart")


@pytest.mark.parametrize(
    ("amount", "line_item", "project"),
    [
        (b"0.5\x00", b"gpt-4o-mini, input", b"proj_demo"),  # the error message quotes the amount
        (b"0.5", b"gpt-4o\x00-mini, input", b"proj_demo"),  # the model name
        (b"0.5", b"gpt-4o-mini, input", b"proj_\x00demo"),  # the project
        (b"x\x00" * 30, b"\x00" * 400, b"\x00"),  # everything, long
    ],
    ids=["amount", "model", "project", "all"],
)
def test_nul_characters_in_a_cost_export_become_row_errors_and_the_run_completes(staff, amount, line_item, project):
    good = COSTS_ROW % (b"0.25", b"gpt-4o-mini, output", b"proj_demo")
    response = _upload(staff, COSTS_HEADER + COSTS_ROW % (amount, line_item, project) + good, source="openai-costs")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rows"] == 2
    assert body["errors"] == 1
    error = ReconciliationLine.objects.get(status=ReconciliationLine.Status.ERROR)
    assert error.line_number == 2
    assert "NUL" in error.reason
    assert "\x00" not in error.reason + error.key + error.model_name
    detail = staff.get(f"{RUNS}/{body['run_id']}", {"status": "error"})
    assert detail.status_code == 200
    assert "NUL" in detail.json()["lines"][0]["reason"]


def test_nul_characters_in_a_requests_file_become_row_errors(staff):
    content = (
        b"request_id,timestamp,model,input_tokens,output_tokens,cached_input_tokens,cost_usd\n"
        b"req_\x00,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.00045\n"
        b"req_2,2026-10-01T10:00:00Z,gpt\x00,1000,500,0,0.00045\n"
        b"req_3,2026-10-01T10:00:00Z,gpt-4o-mini,1000,500,0,0.00045\n"
    )
    response = _upload(staff, content, source="requests")
    assert response.status_code == 201, response.content
    assert response.json()["errors"] == 2
    reasons = list(ReconciliationLine.objects.filter(status="error").values_list("reason", flat=True))
    assert len(reasons) == 2
    assert all("NUL" in reason and "\x00" not in reason for reason in reasons)


def test_a_file_name_with_a_nul_is_stored_without_it(staff):
    good = COSTS_HEADER + COSTS_ROW % (b"0.25", b"gpt-4o-mini, output", b"proj_demo")
    response = _upload(staff, good, source="openai-costs", name="costs\x00.csv")
    assert response.status_code in (201, 400), response.content
    assert "\x00" not in "".join(ReconciliationRun.objects.values_list("file_name", flat=True))


@pytest.mark.parametrize(
    "query",
    [
        {"offset": str(2**63)},
        {"offset": "9" * 40},
        {"limit": "9" * 40},
        {"offset": "-1"},
        {"offset": "1e400"},
        {"offset": "\x00"},
        {"status": "\x00"},
    ],
    ids=["offset-bigint", "offset-huge", "limit-huge", "offset-negative", "offset-float", "offset-nul", "status-nul"],
)
def test_query_numbers_the_database_cannot_hold_are_400(staff, query):
    good = COSTS_HEADER + COSTS_ROW % (b"0.25", b"gpt-4o-mini, output", b"proj_demo")
    run_id = _upload(staff, good, source="openai-costs").json()["run_id"]
    response = staff.get(f"{RUNS}/{run_id}", query)
    assert response.status_code == 400, response.content
    assert response.json()["error"] in ("invalid", "malformed_request")  # a NUL is refused before the view


def test_the_largest_offset_a_bigint_holds_is_an_empty_page(staff):
    good = COSTS_HEADER + COSTS_ROW % (b"0.25", b"gpt-4o-mini, output", b"proj_demo")
    run_id = _upload(staff, good, source="openai-costs").json()["run_id"]
    response = staff.get(f"{RUNS}/{run_id}", {"offset": str(2**63 - 1 - 5000)})
    assert response.status_code == 200, response.content
    assert response.json()["lines"] == []


@pytest.mark.parametrize("run_id", [str(2**63), "9" * 40])
def test_a_run_id_past_a_bigint_is_404(staff, run_id):
    response = staff.get(f"{RUNS}/{run_id}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
