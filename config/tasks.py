from __future__ import annotations

import socket
from datetime import datetime

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config.models import WorkerHeartbeat


@shared_task(name="platform.heartbeat", acks_late=True, ignore_result=True)
def heartbeat(as_of: str | None = None) -> str:
    """Record that a worker on this host is alive at `as_of`; running it again only rewrites the time."""
    moment: datetime = (parse_datetime(as_of) if as_of else None) or timezone.now()
    WorkerHeartbeat.objects.update_or_create(worker=socket.gethostname(), defaults={"beat_at": moment})
    return moment.isoformat()
