from django.contrib import admin

from config.admin_base import ViewOnlyAdmin
from config.models import JobRun, WorkerHeartbeat


@admin.register(JobRun)
class JobRunAdmin(ViewOnlyAdmin):
    list_display = ["job", "as_of", "status", "started_at", "finished_at", "counts"]
    list_filter = ["job", "status", "started_at"]
    search_fields = ["job", "error"]
    date_hierarchy = "started_at"


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ViewOnlyAdmin):
    list_display = ["worker", "beat_at"]
