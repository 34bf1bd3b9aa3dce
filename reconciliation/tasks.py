"""Reconciliation tasks: thin, they take an `as_of` and call a service under the job's lock."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from core.jobs import job_run
from reconciliation.services.inbox import reconciliation_inbox_process

INBOX_JOB = "reconciliation.inbox"


@shared_task(name=INBOX_JOB, acks_late=True)
def reconciliation_inbox_task(as_of: str | None = None) -> dict[str, Any]:
    """Reconcile the files waiting in RECONCILIATION_INBOX; a file already reconciled (same SHA-256) is skipped."""
    return job_run(INBOX_JOB, as_of, lambda moment: reconciliation_inbox_process(as_of=moment).counts())
