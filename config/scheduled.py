"""The work of each scheduled job, across the apps. Tasks in config/tasks.py run these under job_run()."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from billing.models import InvoiceOutbox
from billing.services.idempotency import idempotency_keys_purge
from billing.services.outbox import OutboxHandler, outbox_pending_count, outbox_send_due
from billing.services.overage import overage_outbox_send
from billing.services.periods import close_as_of_check, periods_close_due
from billing.services.portal import portal_sessions_purge
from billing.services.wallet import grants_expire
from core.integrity import Problem
from core.jobs import job_runs_problems
from reconciliation.integrity import integrity_check
from usage.services import alerts, summaries
from usage.services.authorization import reservations_expire

logger = logging.getLogger("tokenledger.jobs")


def staff_emails() -> list[str]:
    return sorted(
        set(
            get_user_model()
            .objects.filter(is_staff=True, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )


OUTBOX_HANDLERS: dict[str, OutboxHandler] = {
    InvoiceOutbox.Kind.OVERAGE: overage_outbox_send,
    InvoiceOutbox.Kind.MONTHLY_SUMMARY: summaries.monthly_summaries_send,
}


def close_periods(as_of: datetime) -> dict[str, Any]:
    """The monthly close: expire grants, close every ended period (invoice, its outbox rows, next period opens),
    then send the outbox: overage to Stripe when it is configured, each account's monthly summary."""
    close_as_of_check(as_of=as_of)
    expired_grants = grants_expire(as_of=as_of)
    invoices, failures = periods_close_due(as_of=as_of)
    for period_id, error in failures:
        logger.error("period %s could not be closed: %s", period_id, error)
    invoiced_before = _stripe_invoiced()
    sent = outbox_send_due(as_of=as_of, handlers=OUTBOX_HANDLERS)
    return {
        "closed": len(invoices), "invoiced": _stripe_invoiced() - invoiced_before, "skipped": len(failures),
        "expired_grants": expired_grants, "outbox_sent": sent["sent"], "outbox_pending": outbox_pending_count(),
    }  # fmt: skip


def _stripe_invoiced() -> int:
    return InvoiceOutbox.objects.filter(kind=InvoiceOutbox.Kind.OVERAGE, outcome__startswith="invoiced").count()


def send_outbox(as_of: datetime) -> dict[str, Any]:
    """What must follow an invoice and is not sent yet, whichever run wrote it (a killed close, a Stripe outage)."""
    sent = outbox_send_due(as_of=as_of, handlers=OUTBOX_HANDLERS)
    return {**sent, "pending": outbox_pending_count()}


def integrity_problems() -> list[Problem]:
    """The integrity check of the apps, plus that no job record is `running` without a live process."""
    return integrity_check() + job_runs_problems()


def check_integrity(as_of: datetime) -> dict[str, Any]:
    problems = integrity_problems()
    if problems:
        body = "\n".join(f"- {p.check}: {p.object}: expected {p.expected}, found {p.found}" for p in problems[:200])
        recipients = staff_emails()
        if recipients:
            send_mail(
                subject=f"[TokenLedger] integrity check: {len(problems)} problem(s)",
                message=f"The integrity check as of {as_of.isoformat()} found:\n\n{body}\n",
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=recipients,
            )
    return {"problems": len(problems)}


def expire_reservations(as_of: datetime) -> dict[str, Any]:
    return {"expired": reservations_expire(as_of=as_of)}


def daily_cost_alerts(as_of: datetime) -> dict[str, Any]:
    return {"alerts": summaries.daily_cost_alerts(as_of=as_of)}


def alerts_sweep(as_of: datetime) -> dict[str, Any]:
    return {"alerts": alerts.alerts_sweep(as_of=as_of)}


def anomaly_scan(as_of: datetime) -> dict[str, Any]:
    return summaries.anomaly_scan(as_of=as_of)


def weekly_summaries(as_of: datetime) -> dict[str, Any]:
    return {"sent": summaries.weekly_summaries(as_of=as_of)}


def cleanup(as_of: datetime) -> dict[str, Any]:
    counts = summaries.cleanup(as_of=as_of)
    counts["idempotency_keys"] = idempotency_keys_purge(as_of=as_of)
    counts["portal_sessions"] = portal_sessions_purge(as_of=as_of)
    return counts


def expire_grants(as_of: datetime) -> dict[str, Any]:
    return {"expired": grants_expire(as_of=as_of)}
