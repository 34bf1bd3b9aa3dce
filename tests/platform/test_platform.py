from __future__ import annotations

import json
import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from core.request_log import JsonLineFormatter

pytestmark = pytest.mark.django_db


def test_admin_is_titled_tokenledger_console(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "TokenLedger console" in response.content.decode()


def test_openapi_schema_and_docs_are_served(admin_client):
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "TokenLedger API"
    docs = admin_client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn.jsdelivr" not in docs.content  # served from the installed sidecar, not the internet


def test_each_request_is_logged_once_with_its_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="tokenledger.request"):
        response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    records = [r for r in caplog.records if r.name == "tokenledger.request"]
    assert len(records) == 1
    record = records[0]
    assert (record.method, record.path, record.status, record.request_id) == ("GET", "/healthz", 200, "abc-123")
    line = json.loads(JsonLineFormatter().format(record))
    assert line["path"] == "/healthz" and line["status"] == 200 and line["duration_ms"] >= 0


def test_beat_schedule_sync_creates_jobs_once_and_keeps_admin_edits():
    out = StringIO()
    call_command("sync_beat_schedule", stdout=out)
    assert json.loads(out.getvalue())["created"] >= 1
    job = PeriodicTask.objects.get(name="TokenLedger: heartbeat")
    assert job.task == "platform.heartbeat"
    assert job.interval.every == 60

    # an admin slows the heartbeat down; the next sync keeps that
    job.interval, _ = IntervalSchedule.objects.get_or_create(every=120, period=IntervalSchedule.SECONDS)
    job.save()
    out = StringIO()
    call_command("sync_beat_schedule", stdout=out)
    assert json.loads(out.getvalue()) == {"created": 0, "updated": 0, "disabled": 0}
    assert PeriodicTask.objects.get(name="TokenLedger: heartbeat").interval.every == 120


def test_jobs_removed_from_code_are_disabled():
    call_command("sync_beat_schedule", stdout=StringIO())
    interval, _ = IntervalSchedule.objects.get_or_create(every=10, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="TokenLedger: retired job", task="platform.retired", interval=interval)
    out = StringIO()
    call_command("sync_beat_schedule", stdout=out)
    assert json.loads(out.getvalue())["disabled"] == 1
    assert PeriodicTask.objects.get(name="TokenLedger: retired job").enabled is False


def test_openapi_schema_generates_without_warnings(tmp_path):
    """Every endpoint documents its request and response bodies; a warning here means one does not."""
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/usage/events" in (tmp_path / "schema.yaml").read_text()
