import json

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from config.schedule import JOB_NAME_PREFIX, SCHEDULE, ScheduledJob


def _schedule_fields(job: ScheduledJob) -> dict[str, object]:
    if job.every_seconds:
        interval, _ = IntervalSchedule.objects.get_or_create(every=job.every_seconds, period=IntervalSchedule.SECONDS)
        return {"interval": interval, "crontab": None}
    parts = {"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
    parts.update(job.crontab)
    crontab, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **parts)
    return {"crontab": crontab, "interval": None}


class Command(BaseCommand):
    help = "Sync the beat schedule defined in config/schedule.py into django-celery-beat's database."

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        created = updated = disabled = 0
        names = set()
        for job in SCHEDULE:
            name = JOB_NAME_PREFIX + job.name
            names.add(name)
            existing = PeriodicTask.objects.select_for_update().filter(name=name).first()
            if existing is None:
                PeriodicTask.objects.create(
                    name=name, task=job.task, description=job.description, **_schedule_fields(job)
                )
                created += 1
            elif (existing.task, existing.description) != (job.task, job.description):
                existing.task, existing.description = job.task, job.description
                existing.save(update_fields=["task", "description"])
                updated += 1
        stale = PeriodicTask.objects.filter(name__startswith=JOB_NAME_PREFIX, enabled=True).exclude(name__in=names)
        for task in stale:
            task.enabled = False
            task.save(update_fields=["enabled"])
            disabled += 1
        self.stdout.write(json.dumps({"created": created, "updated": updated, "disabled": disabled}))
