"""The reconciliation console as an admin sees it: runs with their match rate, a run's lines by status, the upload
form, the lines as CSV, the implied-price action (a new price version citing the run) and the reports with charts."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from pricing.models import CatalogAudit, ModelPrice
from reconciliation.models import ReconciliationLine, ReconciliationRun
from tests.reconciliation.conftest import run_file, sample


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def text(response) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.fixture
def drift_run(account, record) -> ReconciliationRun:
    """The OpenAI cost sample against one event: 10-02 output is 0.60 ours, 1.20 theirs (implied $1.20 per 1M)."""
    record(account, ("e2", "gpt-4o-mini", "2026-10-02T10:00:00Z", 0, 0, 1_000_000))
    run = run_file(sample("openai-costs-export.csv"), name="openai-costs-export.csv").run
    assert run is not None
    return run


def test_runs_list_and_run_page(admin_client, drift_run):
    listing = admin_client.get(reverse("admin:reconciliation_reconciliationrun_changelist"))
    assert listing.status_code == 200
    page = text(listing)
    assert "openai-costs-export.csv" in page and "0.0 %" in page  # match rate 0 / (0 + 1 + 3)
    assert "Reconcile a file" in page and "Report: margin" in page

    detail = admin_client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[drift_run.pk]))
    assert detail.status_code == 200
    page = text(detail)
    assert "Discrepancy (1)" in page and "not found (no usage on our side) (3)" in page
    assert "price drift: 1" in page
    assert drift_run.sha256 in page


def test_a_runs_lines_filtered_by_status(admin_client, drift_run):
    url = reverse("admin:reconciliation_reconciliationline_changelist")
    response = admin_client.get(url, {"run": drift_run.pk, "status__exact": "discrepancy"})
    assert response.status_code == 200
    page = text(response)
    assert "2026-10-02|gpt-4o-mini|proj_demo" in page
    assert "2026-10-01|gpt-4o-mini|proj_demo" not in page
    assert "implied output price $1.2000 per 1M" in page
    line = drift_run.lines.get(status="discrepancy")
    assert (
        admin_client.get(reverse("admin:reconciliation_reconciliationline_change", args=[line.pk])).status_code == 200
    )


def test_lines_download_as_csv(admin_client, drift_run):
    url = reverse("admin:reconciliation_run_lines_csv", args=[drift_run.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="reconciliation-run-{drift_run.pk}.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 4
    drift = next(row for row in rows if row["status"] == "discrepancy")
    assert (drift["calculated_usd"], drift["actual_usd"], drift["difference_usd"]) == (
        "0.600000000000", "1.200000000000", "0.600000000000",
    )  # fmt: skip
    only = admin_client.get(url, {"status": "not_found"})
    assert len(list(csv.DictReader(io.StringIO(b"".join(only.streaming_content).decode())))) == 3


def test_a_csv_cell_starting_with_a_formula_downloads_as_text(admin_client, catalog):
    # a gateway log can name any request id or model: a spreadsheet must not run them
    header = b"request_id,timestamp,model,input_tokens,output_tokens,cached_input_tokens,cost_usd\r\n"
    run = run_file(header + b'"=HYPERLINK(""http://x"")",2026-10-01T10:00:00Z,@SUM(1),10,5,0,-0.5\r\n').run
    assert run is not None
    response = admin_client.get(reverse("admin:reconciliation_run_lines_csv", args=[run.pk]))
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert (row["key"], row["model_name"]) == ('\'=HYPERLINK("http://x")', "'@SUM(1)")
    assert row["actual_usd"] == "-0.500000000000"  # a negative amount stays a number


def test_upload_form_runs_the_file_and_shows_the_run(admin_client, account, record):
    record(account, ("req_0001", "gpt-4o-mini", "2026-10-01T10:00:00Z", 1000, 0, 500))
    url = reverse("admin:reconciliation_run_upload")
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url, {"file": SimpleUploadedFile("requests.csv", sample("requests.csv")), "source": "requests"}, follow=True
    )
    run = ReconciliationRun.objects.get()
    assert response.redirect_chain[-1][0] == reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
    assert run.actor is not None
    assert (run.trigger, run.actor.username, run.matched, run.not_found) == ("admin", "admin", 1, 2)
    assert f"Run #{run.pk}: 1 matched, 0 discrepancies, 2 not found" in text(response)


def test_upload_form_reports_an_unreadable_file_and_a_dry_run(admin_client, catalog):
    url = reverse("admin:reconciliation_run_upload")
    bad = admin_client.post(url, {"file": SimpleUploadedFile("x.csv", b"a,b\n1,2\n")})
    assert bad.status_code == 200
    assert "The file cannot be read: the header matches no known source" in text(bad)
    dry = admin_client.post(url, {"file": SimpleUploadedFile("r.csv", sample("requests.csv")), "dry_run": "on"})
    assert dry.status_code == 200
    assert "Dry run: what this file would give" in text(dry) and "not_found 3" in text(dry)
    assert list(ReconciliationRun.objects.values_list("status", flat=True)) == ["failed"]


def test_staff_without_permissions_cannot_upload(client, catalog):
    user = get_user_model().objects.create_user(username="viewer", password="pw-for-tests", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:reconciliation_run_upload")).status_code == 403
    assert client.get(reverse("admin:reconciliation_report_margin")).status_code == 403


def test_the_implied_price_action_creates_a_price_version_citing_the_run(admin_client, drift_run):
    line = drift_run.lines.get(status="discrepancy")
    other = drift_run.lines.filter(status="not_found").first()
    assert other is not None
    before = ModelPrice.objects.filter(model__model_id="gpt-4o-mini").count()
    response = admin_client.post(
        reverse("admin:reconciliation_reconciliationline_changelist"),
        {"action": "price_version_from_implied", "_selected_action": [line.pk, other.pk]},
        follow=True,
    )
    assert response.status_code == 200
    versions = ModelPrice.objects.filter(model__model_id="gpt-4o-mini").order_by("-effective_from")
    assert versions.count() == before + 1
    new = versions.first()
    assert new is not None
    # the implied output price, the current input and cached prices kept
    assert (new.output_per_million, new.input_per_million, new.cached_input_per_million) == (
        Decimal("1.2"), Decimal("0.15"), Decimal("0.075"),
    )  # fmt: skip
    assert new.reason == (
        f"reconciliation run #{drift_run.pk}, line 2026-10-02|gpt-4o-mini|proj_demo: implied output $1.2000 per 1M"
    )
    assert new.set_by is not None and new.set_by.username == "admin"
    assert CatalogAudit.objects.filter(action="price_version", object_key="gpt-4o-mini").exists()
    page = text(response)
    assert "New price version for gpt-4o-mini" in page
    assert "no implied price" in page  # the not_found line had none


def test_reports_render_charts_and_tables(admin_client, account, record):
    # charge = cost on the jive plan (markup 1): a month with usage shows in both reports
    record(account, ("e2", "gpt-4o-mini", "2026-10-02T10:00:00Z", 0, 0, 1_000_000))
    run_file(sample("openai-costs-export.csv"))
    margin = admin_client.get(reverse("admin:reconciliation_report_margin"), {"month": "2026-10"})
    assert margin.status_code == 200
    body = margin.content.decode()
    assert body.count('<svg class="recon-chart"') == 2 and "<script" not in body.split('id="content-main"')[1]
    page = text(margin)
    assert "By model, October 2026" in page and "gpt-4o-mini" in page and "$0.60" in page
    trend = admin_client.get(reverse("admin:reconciliation_report_trend"))
    assert trend.status_code == 200
    assert trend.content.decode().count('<svg class="recon-chart"') == 2
    page = text(trend)
    # October 2026: the provider billed 3.006562, we calculated 0.60 for the file's buckets
    assert "2026-10 $3.01 $0.60 $2.41 1" in page


def test_lines_are_read_only(admin_client, drift_run):
    line = drift_run.lines.first()
    assert line is not None
    response = admin_client.post(
        reverse("admin:reconciliation_reconciliationline_change", args=[line.pk]), {"status": "matched"}
    )
    assert response.status_code == 403
    assert ReconciliationLine.objects.get(pk=line.pk).status == line.status
