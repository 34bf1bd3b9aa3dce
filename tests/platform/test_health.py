from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from config import health
from config.celery import app as celery_app
from config.tasks import heartbeat
from core.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


def test_healthz_reports_each_dependency(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert (body["database"], body["cache"], body["broker"]) == ("ok", "ok", "ok")
    assert body["worker"]["status"] == "unknown"


def test_healthz_reports_the_heartbeat_age(client):
    heartbeat(as_of=(timezone.now() - timedelta(seconds=30)).isoformat())
    worker = client.get("/healthz").json()["worker"]
    assert worker["status"] == "ok"
    assert 29 <= worker["age_seconds"] <= 60


def test_stale_heartbeat_is_reported_stale(client):
    WorkerHeartbeat.objects.create(worker="old-host", beat_at=timezone.now() - timedelta(hours=1))
    assert client.get("/healthz").json()["worker"]["status"] == "stale"


def test_unreachable_broker_is_reported_degraded_naming_it(client, monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/healthz")
    assert response.status_code == 200  # the process still serves: a load balancer keeps it
    body = response.json()
    assert (body["status"], body["failed"], body["degraded"]) == ("degraded", ["broker"], ["broker"])
    assert body["broker"].startswith("error")
    assert body["database"] == "ok"


def test_unreachable_database_answers_503_naming_it(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert "database" in body["failed"]
    assert "connection refused" in body["database"]
