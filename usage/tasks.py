"""Usage tasks: thin, they take ids and call a service."""

from __future__ import annotations

from decimal import Decimal

from celery import Task, shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.models import Account
from usage.models import Alert
from usage.services.alerts import DeliveryFailed, alert_deliver, alert_raise, alerts_check_account


@shared_task(name="usage.alert_deliver", bind=True, max_retries=6, acks_late=True)
def alert_deliver_task(self: Task, alert_id: int) -> None:
    error = alert_deliver(alert_id=alert_id)
    if error is not None:
        # the webhook failed; the attempt is logged. Again in 1, 2, 4, 8, 16, 32 minutes.
        raise self.retry(exc=DeliveryFailed(error), countdown=60 * 2**self.request.retries)


@shared_task(name="usage.alerts_check", acks_late=True)
def alerts_check_task(account_id: int) -> int:
    account = Account.objects.get(pk=account_id)
    return alerts_check_account(account=account, as_of=timezone.now())


@shared_task(name="usage.alerts_deliver_many", acks_late=True)
def alerts_deliver_many_task(alert_ids: list[int]) -> int:
    """Deliver many alerts (the monthly summaries); a webhook that fails is retried on its own task."""
    failed = 0
    for alert_id in alert_ids:
        if alert_deliver(alert_id=alert_id) is not None:
            failed += 1
            alert_deliver_task.apply_async((alert_id,), countdown=60)
    return failed


@shared_task(name="usage.payment_failed_alert", acks_late=True)
def payment_failed_alert_task(account_id: int, reference: str, subject: str, message: str, at: str) -> bool:
    """Billing reports a failed payment by task name (it cannot import usage); one alert per failed payment."""
    moment = parse_datetime(at) or timezone.now()
    return (
        alert_raise(
            account=Account.objects.get(pk=account_id),
            kind=Alert.Kind.PAYMENT_FAILED,
            threshold=0,
            period_key=reference[:40],
            value=Decimal(0),
            subject=subject,
            message=message,
            now=moment,
        )
        is not None
    )
