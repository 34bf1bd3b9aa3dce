"""The beat schedule, defined in code and synced into django-celery-beat's database scheduler.

`manage.py sync_beat_schedule` (run by `make run` and after deploys) creates each job that is missing and keeps the
task name and description in step with this file. A job's timing and enabled flag belong to the admins once it
exists: a later sync never overwrites what they edited. A job removed from this file is disabled, not deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    task: str
    description: str
    every_seconds: int | None = None
    crontab: dict[str, str] = field(default_factory=dict)  # minute, hour, day_of_week, day_of_month, month_of_year


JOB_NAME_PREFIX = "TokenLedger: "

SCHEDULE: tuple[ScheduledJob, ...] = (
    ScheduledJob(
        name="heartbeat",
        task="platform.heartbeat",
        description="Records that a worker is alive; /healthz reports the age of the last one.",
        every_seconds=60,
    ),
)
