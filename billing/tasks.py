"""Billing tasks: thin, they take ids (and an `as_of`) and call a service.

They retry only on the gateway's transient error, with exponential backoff; the Stripe requests they resend carry
the same idempotency keys, so a retry never charges or bills twice.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app, shared_task

from billing.services.overage import overage_billing_resume
from billing.services.topups import auto_recharge_accounts_due, auto_recharge_run
from billing.services.webhooks import stripe_event_process, stripe_events_retry
from billing.stripe_gateway import StripeTransientError
from core.jobs import job_run, parse_as_of

logger = logging.getLogger("tokenledger.stripe")

# The alert channels live in the usage app, which billing never imports: the alert goes by task name.
PAYMENT_FAILED_ALERT_TASK = "usage.payment_failed_alert"
MAX_RETRIES = 6


def _countdown(retries: int) -> int:
    """30 s, 1, 2, 4, 8, 16 minutes."""
    return 30 * 2**retries


@shared_task(name="billing.stripe_event_process", bind=True, max_retries=MAX_RETRIES, acks_late=True)
def stripe_event_process_task(self: Any, stripe_event_id: int) -> str:
    try:
        event = stripe_event_process(stripe_event_pk=stripe_event_id, raise_transient=True)
    except StripeTransientError as exc:
        raise self.retry(exc=exc, countdown=_countdown(self.request.retries)) from exc
    return event.status


@shared_task(name="billing.stripe_retry", acks_late=True)
def stripe_retry_task(as_of: str | None = None) -> dict[str, Any]:
    """Beat job: retry failed and stuck webhook events, resume overage billing a Stripe error stopped."""

    def work(moment: Any) -> dict[str, Any]:
        counts: dict[str, Any] = {f"events_{k}": v for k, v in stripe_events_retry(as_of=moment).items()}
        counts["overage_resumed"] = overage_billing_resume(as_of=moment)
        return counts

    return job_run("stripe_retry", as_of, work)


@shared_task(name="billing.auto_recharge", bind=True, max_retries=MAX_RETRIES, acks_late=True)
def auto_recharge_task(self: Any, account_id: int, as_of: str | None = None) -> str:
    try:
        outcome = auto_recharge_run(account_id=account_id, now=parse_as_of(as_of))
    except StripeTransientError as exc:
        raise self.retry(exc=exc, countdown=_countdown(self.request.retries)) from exc
    return outcome.status


@shared_task(name="billing.auto_recharge_sweep", acks_late=True)
def auto_recharge_sweep_task(as_of: str | None = None) -> dict[str, Any]:
    """Beat job (safety net): queue a recharge for every account with auto-recharge on whose credits are below
    its threshold (a recharge in flight is resumed, a failed one waits out its cooldown)."""

    def work(moment: Any) -> dict[str, Any]:
        due = auto_recharge_accounts_due()
        for account_id in due:
            auto_recharge_task.delay(account_id, moment.isoformat())
        return {"queued": len(due)}

    return job_run("auto_recharge_sweep", as_of, work)


def payment_failed_alert_send(**kwargs: Any) -> None:
    """Hand a failed payment to the alert task (registered by the usage app) by name."""
    task = current_app.tasks.get(PAYMENT_FAILED_ALERT_TASK)
    if task is not None:
        task.apply_async(kwargs=kwargs)
    else:
        current_app.send_task(PAYMENT_FAILED_ALERT_TASK, kwargs=kwargs)
    logger.info("payment failure alert queued for account %s: %s", kwargs.get("account_id"), kwargs.get("reference"))
