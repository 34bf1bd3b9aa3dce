from datetime import datetime

from django.db import models
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """The last time a Celery worker ran the heartbeat job; /healthz reports its age."""

    worker = models.CharField(max_length=200, unique=True)
    beat_at = models.DateTimeField()

    class Meta:
        verbose_name = "worker heartbeat"

    def __str__(self) -> str:
        return f"{self.worker} @ {self.beat_at:%Y-%m-%d %H:%M:%S}"


class JobRun(models.Model):
    """One run of a scheduled job: when, for which `as_of`, how it ended and what it counted."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped", "skipped (another worker holds the lock)"
        ABANDONED = "abandoned", "abandoned (its process died)"

    job = models.CharField(max_length=100, db_index=True)
    as_of = models.DateTimeField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING, db_index=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="renewed while the process runs; past it, a running job is abandoned"
    )
    host = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.job} as of {self.as_of:%Y-%m-%d %H:%M} ({self.shown_status()})"

    def shown_status(self, *, now: datetime | None = None) -> str:
        """The status an operator sees: a `running` run whose lease expired is `abandoned` (its process died)."""
        lease = self.lease_expires_at
        if self.status == self.Status.RUNNING and lease is not None and lease < (now or timezone.now()):
            return self.Status.ABANDONED
        return self.status
