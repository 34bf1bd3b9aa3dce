"""The work of each scheduled job, across the apps. Tasks in config/tasks.py run these under job_run()."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from billing.services.idempotency import idempotency_keys_purge
from billing.services.overage import overage_invoice_send
from billing.services.periods import periods_close_due
from billing.services.portal import portal_sessions_purge
from billing.services.wallet import grants_expire
from billing.stripe_conf import stripe_enabled
from reconciliation.integrity import integrity_check
from usage.services import summaries
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


def close_periods(as_of: datetime) -> dict[str, Any]:
    """The monthly close: expire grants, close every ended period (invoice, next period opens), bill overage in
    Stripe when it is configured, email each account its monthly summary."""
    expired_grants = grants_expire(as_of=as_of)
    invoices, failures = periods_close_due(as_of=as_of)
    invoiced = 0
    if stripe_enabled():  # with Stripe off the overage stays on the local invoices, reported there
        invoiced = sum(1 for i in invoices if i.overage > 0 and overage_invoice_send(invoice=i, as_of=as_of))
    summaries.monthly_summaries(invoices=invoices, as_of=as_of)
    for period_id, error in failures:
        logger.error("period %s could not be closed: %s", period_id, error)
    return {"closed": len(invoices), "invoiced": invoiced, "skipped": len(failures), "expired_grants": expired_grants}


def check_integrity(as_of: datetime) -> dict[str, Any]:
    problems = integrity_check()
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
