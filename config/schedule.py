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
    ScheduledJob(
        name="expire reservations",
        task="jobs.expire_reservations",
        description="Releases the credits held by authorizations that were never recorded.",
        every_seconds=60,
    ),
    ScheduledJob(
        name="expire credit grants",
        task="jobs.expire_grants",
        description="Takes back the unspent part of each credit grant whose expiry has passed (an expiry entry).",
        every_seconds=300,
    ),
    ScheduledJob(
        name="integrity check",
        task="jobs.check_integrity",
        description="Wallets = ledgers, holds = reservations, periods = events, invoices = charges; emails staff.",
        crontab={"minute": "17"},
    ),
    ScheduledJob(
        name="alert lines",
        task="jobs.alerts_sweep",
        description="Alerts accounts whose available credits are below a low-balance line or whose spend reached a "
        "spend line this period, also when no usage crossed it (a new account, a line raised past the balance).",
        every_seconds=900,
    ),
    ScheduledJob(
        name="anomaly scan",
        task="jobs.anomaly_scan",
        description="Flags accounts whose last hour cost over 5x their average hour of the past week.",
        crontab={"minute": "5"},
    ),
    ScheduledJob(
        name="daily cost alerts",
        task="jobs.daily_cost_alerts",
        description="Alerts accounts whose spend yesterday passed the daily limit, with the projected month.",
        crontab={"minute": "0", "hour": "2"},
    ),
    ScheduledJob(
        name="cleanup",
        task="jobs.cleanup",
        description=(
            "Deletes closed reservations, delivery logs and handled dead letters past their retention, "
            "Idempotency-Key answers older than IDEMPOTENCY_KEY_TTL_HOURS and expired portal sessions."
        ),
        crontab={"minute": "30", "hour": "2"},
    ),
    ScheduledJob(
        name="close periods",
        task="jobs.close_periods",
        description="Monthly close: invoices, overage to Stripe, next periods, grant expiry, monthly summaries.",
        crontab={"minute": "0", "hour": "3", "day_of_month": "1"},
    ),
    ScheduledJob(
        name="send outbox",
        task="jobs.send_outbox",
        description="Sends what must follow an invoice and is still pending (overage to Stripe, monthly summaries), "
        "whichever run wrote it; failed sends retry with backoff.",
        every_seconds=300,
    ),
    ScheduledJob(
        name="stripe retries",
        task="billing.stripe_retry",
        description="Retries failed and stuck Stripe webhook events with backoff; resumes overage invoices a Stripe error stopped.",
        every_seconds=300,
    ),
    ScheduledJob(
        name="auto-recharge sweep",
        task="billing.auto_recharge_sweep",
        description="Queues a recharge for accounts with auto-recharge on whose credits are below their threshold.",
        every_seconds=600,
    ),
    ScheduledJob(
        name="provider reconciliation",
        task="reconciliation.inbox",
        description="Reconciles the provider exports dropped into RECONCILIATION_INBOX; alerts staff on a low match rate.",
        crontab={"minute": "0", "hour": "6", "day_of_month": "2"},
    ),
    ScheduledJob(
        name="weekly summary",
        task="jobs.weekly_summaries",
        description="Each account's usage of the past week, by email.",
        crontab={"minute": "0", "hour": "10", "day_of_week": "0"},
    ),
)
