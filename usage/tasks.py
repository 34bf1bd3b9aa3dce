"""Usage tasks: thin, they take ids and call a service."""

from __future__ import annotations

from celery import Task, shared_task
from django.utils import timezone

from billing.models import Account
from usage.services.alerts import DeliveryFailed, alert_deliver, alerts_check_account


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
