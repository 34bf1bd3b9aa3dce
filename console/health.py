"""Health at a glance: what is broken or waiting, each with the admin list (filtered) that explains it.

Counts only; every figure links to the rows behind it. A check is `bad` when something failed, `warn` when work
waits longer than it should, `ok` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.db.models import DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.urls import reverse

from billing.models import StripeEvent
from billing.stripe_conf import stripe_settings
from core.jobs import LOCK_TIMEOUT_SECONDS
from core.models import JobRun
from reconciliation.models import ReconciliationLine, ReconciliationRun
from usage.models import AlertDelivery, RejectedEvent

OK, WARN, BAD = "ok", "warn", "bad"
RECENT = timedelta(days=7)
INTEGRITY_JOB = "check_integrity"
_ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=28, decimal_places=12))


@dataclass(frozen=True)
class Check:
    key: str
    title: str
    figure: str
    detail: str
    state: str
    url: str


def _changelist(name: str, **query: str) -> str:
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(query)}" if query else url


def _count(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def jobs_failed(*, now: datetime) -> Check:
    failed = JobRun.objects.filter(status=JobRun.Status.FAILED, started_at__gte=now - RECENT).count()
    return Check("jobs_failed", "Failed jobs", _count(failed, "run", "runs"), "failed in the last 7 days",
                 BAD if failed else OK, _changelist("platform_jobrun", status=JobRun.Status.FAILED))  # fmt: skip


def jobs_stuck(*, now: datetime) -> Check:
    """Running without a live process: the lease expired, or there is none and the lock's timeout has passed."""
    stuck = (
        JobRun.objects.filter(status=JobRun.Status.RUNNING)
        .filter(
            Q(lease_expires_at__lt=now)
            | Q(lease_expires_at__isnull=True, started_at__lt=now - timedelta(seconds=LOCK_TIMEOUT_SECONDS))
        )
        .count()
    )
    return Check("jobs_stuck", "Stuck jobs", _count(stuck, "run", "runs"), "running, but their process is gone",
                 BAD if stuck else OK, _changelist("platform_jobrun", status=JobRun.Status.ABANDONED))  # fmt: skip


def stripe_events(*, now: datetime) -> list[Check]:
    failed = StripeEvent.objects.filter(status=StripeEvent.Status.FAILED).count()
    stuck_before = now - timedelta(seconds=stripe_settings().event_stuck_seconds)
    waiting = StripeEvent.objects.filter(status__in=[StripeEvent.Status.RECEIVED, StripeEvent.Status.PROCESSING])
    late = waiting.filter(received_at__lt=stuck_before).count()
    return [
        Check("stripe_failed", "Stripe webhooks failed", _count(failed, "event", "events"),
              "processing failed; retried with backoff", BAD if failed else OK,
              _changelist("billing_stripeevent", status__exact=StripeEvent.Status.FAILED)),
        Check("stripe_waiting", "Stripe webhooks waiting", _count(waiting.count(), "event", "events"),
              f"received or processing; {late:,} waiting too long", WARN if late else OK,
              _changelist("billing_stripeevent", status__exact=StripeEvent.Status.RECEIVED)),
    ]  # fmt: skip


def rejected_waiting() -> Check:
    pending = RejectedEvent.objects.filter(status=RejectedEvent.Status.PENDING).count()
    return Check("rejected", "Rejected events to replay", _count(pending, "event", "events"),
                 "refused usage kept for replay after a catalog fix", WARN if pending else OK,
                 _changelist("usage_rejectedevent", status__exact=RejectedEvent.Status.PENDING))  # fmt: skip


def integrity_last() -> Check:
    url = _changelist("platform_jobrun", job__exact=INTEGRITY_JOB)
    run = JobRun.objects.filter(job=INTEGRITY_JOB).exclude(status=JobRun.Status.RUNNING).order_by("-started_at").first()
    if run is None:
        return Check("integrity", "Integrity check", "never run", "run `check_integrity` or start beat", WARN, url)
    when = f"{run.started_at:%Y-%m-%d %H:%M} UTC"
    if run.status != JobRun.Status.SUCCEEDED:
        return Check("integrity", "Integrity check", run.status, f"last run {when}", BAD, url)
    problems = int((run.counts or {}).get("problems", 0))
    return Check("integrity", "Integrity check", _count(problems, "problem", "problems"), f"last run {when}",
                 BAD if problems else OK, url)  # fmt: skip


def reconciliation_last() -> Check:
    """The share of the provider's bill (its amounts) that matched our rated cost, in the latest completed run."""
    url = _changelist("reconciliation_reconciliationrun")
    run = ReconciliationRun.objects.filter(status=ReconciliationRun.Status.COMPLETED).order_by("-started_at").first()
    if run is None:
        return Check("reconciliation", "Last reconciliation", "none yet", "import a provider export", WARN, url)
    lines = ReconciliationLine.objects.filter(run=run, actual_usd__isnull=False)
    billed = Decimal(lines.aggregate(total=Coalesce(Sum("actual_usd"), _ZERO))["total"])
    matched = Decimal(
        lines.filter(status=ReconciliationLine.Status.MATCHED).aggregate(total=Coalesce(Sum("actual_usd"), _ZERO))[
            "total"
        ]
    )
    share = (matched * 100 / billed).quantize(Decimal("0.1")) if billed > 0 else None
    figure = f"{share}% matched" if share is not None else "nothing billed"
    detail = f"run #{run.pk} {run.started_at:%Y-%m-%d}: {run.discrepancy:,} discrepancies, {run.not_found:,} not found"
    state = OK if share is not None and share >= 99 and not run.discrepancy else WARN
    run_url = reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
    return Check("reconciliation", "Last reconciliation", figure, detail, state, run_url)


def alerts_undelivered() -> Check:
    failed = AlertDelivery.objects.filter(status=AlertDelivery.Status.FAILED).count()
    return Check("alerts", "Alerts not delivered", _count(failed, "delivery", "deliveries"),
                 "email or webhook failed", BAD if failed else OK,
                 _changelist("usage_alertdelivery", status__exact=AlertDelivery.Status.FAILED))  # fmt: skip


def health_checks(*, now: datetime) -> list[Check]:
    return [
        jobs_failed(now=now),
        jobs_stuck(now=now),
        *stripe_events(now=now),
        rejected_waiting(),
        integrity_last(),
        reconciliation_last(),
        alerts_undelivered(),
    ]
