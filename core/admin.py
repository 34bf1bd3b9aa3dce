from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from core.admin_base import ViewOnlyAdmin
from core.models import JobRun, WorkerHeartbeat


class JobRunStatusFilter(admin.SimpleListFilter):
    """The status an operator sees: `running` only while the lease is renewed, `abandoned` once it has expired."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, str(label)) for value, label in JobRun.Status.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[JobRun]) -> QuerySet[JobRun]:
        now = timezone.now()
        running = Q(status=JobRun.Status.RUNNING) & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__gte=now))
        dead = Q(status=JobRun.Status.RUNNING, lease_expires_at__lt=now)
        if self.value() == JobRun.Status.RUNNING:
            return queryset.filter(running)
        if self.value() == JobRun.Status.ABANDONED:
            return queryset.filter(dead | Q(status=JobRun.Status.ABANDONED))
        if self.value():
            return queryset.filter(status=self.value())
        return queryset


@admin.register(JobRun)
class JobRunAdmin(ViewOnlyAdmin):
    list_display = ["job", "as_of", "status_shown", "started_at", "finished_at", "lease_expires_at", "host", "pid",
                    "counts"]  # fmt: skip
    list_filter = ["job", JobRunStatusFilter, "started_at"]
    search_fields = ["job", "error"]
    date_hierarchy = "started_at"

    @admin.display(description="status", ordering="status")
    def status_shown(self, run: JobRun) -> str:
        return run.shown_status()


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ViewOnlyAdmin):
    list_display = ["worker", "beat_at"]
