"""Alerts: raised once per (account, kind, threshold, period key), delivered by email and signed webhook.

Raising is an insert guarded by the unique constraint, so concurrent recordings that cross the same threshold
fire one alert. Delivery runs in a task queued on commit: an email to the account's owners and admins (plain and
HTML) and, where the account has a webhook URL, a POST of the alert as JSON signed with HMAC-SHA256 of the body
under the account's secret (header `X-TokenLedger-Signature: sha256=<hex>`), retried with backoff. The POST goes
only to public addresses, checked at each delivery (config/egress.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import Account, BillingPeriod, Membership, Wallet
from core.egress import EgressRefused, egress_post
from pricing.selectors import plan_terms_version
from usage.models import Alert, AlertDelivery

logger = logging.getLogger("tokenledger.alerts")

SIGNATURE_HEADER = "X-TokenLedger-Signature"
WEBHOOK_TIMEOUT_SECONDS = 5


class DeliveryFailed(Exception):
    """A webhook answered with an error or not at all; the task retries with backoff."""


def alert_raise(
    *, account: Account, kind: str, threshold: Decimal | int, period_key: str, value: Decimal, subject: str,
    message: str, context: dict[str, Any] | None = None, now: datetime | None = None,
) -> Alert | None:  # fmt: skip
    """Record an alert unless it already fired; queue its delivery on commit. None when it had fired before."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                account=account, kind=kind, threshold=Decimal(threshold), period_key=period_key, value=value,
                subject=subject, message=message, context=context or {}, created_at=now or timezone.now(),
            )  # fmt: skip
    except IntegrityError:
        return None
    from usage.tasks import alert_deliver_task

    transaction.on_commit(lambda: alert_deliver_task.delay(alert.pk))
    return alert


def alert_recipients(account: Account) -> list[str]:
    """Owners and admins with an email address."""
    return sorted(
        set(
            Membership.objects.filter(
                account=account, role__in=[Membership.Role.OWNER, Membership.Role.ADMIN], user__is_active=True
            )
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )


def webhook_signature(*, secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def alert_payload(alert: Alert) -> bytes:
    return json.dumps(
        {
            "id": alert.pk, "account_id": alert.account_id, "kind": alert.kind, "threshold": alert.threshold,
            "period": alert.period_key, "value": alert.value, "subject": alert.subject, "message": alert.message,
            "context": alert.context, "created_at": alert.created_at,
        },
        cls=DjangoJSONEncoder, sort_keys=True,
    ).encode()  # fmt: skip


@transaction.atomic
def alert_deliver(*, alert_id: int, now: datetime | None = None) -> str | None:
    """Send an alert on every channel not yet delivered and log each attempt. Returns the webhook's error when it
    should be tried again (the log is committed either way), else None."""
    now = now or timezone.now()
    alert = Alert.objects.select_for_update(of=("self",)).select_related("account").get(pk=alert_id)
    account = alert.account
    channels: list[str] = []
    recipients = alert_recipients(account)
    if recipients:
        delivery, _ = AlertDelivery.objects.get_or_create(
            alert=alert, channel=AlertDelivery.Channel.EMAIL, target=",".join(recipients)[:500],
            defaults={"created_at": now},
        )  # fmt: skip
        if delivery.status != AlertDelivery.Status.SENT:
            context = {"alert": alert, "account": account, "lines": alert.context.get("lines", [])}
            email = EmailMultiAlternatives(
                subject=f"[TokenLedger] {alert.subject}",
                body=render_to_string("usage/email/alert.txt", context),
                to=recipients,
            )
            email.attach_alternative(render_to_string("usage/email/alert.html", context), "text/html")
            email.send()
            delivery.status, delivery.attempts, delivery.delivered_at = (
                AlertDelivery.Status.SENT,
                delivery.attempts + 1,
                now,
            )
            delivery.save()
        channels.append("email")
    failure = None
    if account.alert_webhook_url:
        delivery, _ = AlertDelivery.objects.get_or_create(
            alert=alert, channel=AlertDelivery.Channel.WEBHOOK, target=account.alert_webhook_url[:500],
            defaults={"created_at": now},
        )  # fmt: skip
        if delivery.status != AlertDelivery.Status.SENT:
            delivery.attempts += 1
            try:
                delivery.response_status = _post_signed(account=account, body=alert_payload(alert))
                delivery.status, delivery.delivered_at, delivery.last_error = AlertDelivery.Status.SENT, now, ""
            except DeliveryFailed as exc:
                delivery.status, delivery.last_error = AlertDelivery.Status.FAILED, str(exc)[:2000]
                failure = exc
            delivery.save()
        channels.append("webhook")
    alert.channels = channels
    if failure is None:
        alert.sent_at = now
    alert.save(update_fields=["channels", "sent_at"])
    return str(failure) if failure is not None else None


def _post_signed(*, account: Account, body: bytes) -> int:
    """POST under the egress rule (config/egress.py): public addresses only, checked again now, no redirects."""
    try:
        return egress_post(
            url=account.alert_webhook_url,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "TokenLedger-Alerts/1",
                SIGNATURE_HEADER: webhook_signature(secret=account.alert_webhook_secret, body=body),
            },
            timeout=WEBHOOK_TIMEOUT_SECONDS,
        )
    except EgressRefused as exc:
        raise DeliveryFailed(str(exc)) from None


@dataclass(frozen=True)
class Crossing:
    """What a recording batch moved past: quota thresholds, the included units, the low-balance line."""

    quota: bool = False
    overage: bool = False
    low_balance: bool = False

    def __bool__(self) -> bool:
        return self.quota or self.overage or self.low_balance


def percent(used: Decimal, included: Decimal | None) -> Decimal | None:
    if included is None or included <= 0:
        return None
    return used * 100 / included


def alerts_check_account(*, account: Account, as_of: datetime) -> int:
    """Raise the quota, overage and low-balance alerts the account's state calls for now. Idempotent."""
    raised = 0
    period = (
        BillingPeriod.objects.select_related("terms__plan", "plan")
        .filter(account=account, start__lte=as_of, end__gt=as_of)
        .first()
    )
    if period is not None:
        terms = plan_terms_version(period.terms)
        used_pct = percent(period.units_used, period.included_units)
        key = period.start.date().isoformat()
        if used_pct is not None:
            for threshold in terms.alert_thresholds:
                if used_pct >= threshold:
                    raised += bool(alert_raise(
                        account=account, kind=Alert.Kind.QUOTA, threshold=threshold, period_key=key,
                        value=used_pct.quantize(Decimal("0.01"), ROUND_HALF_UP),
                        subject=f"{account.name} has used {threshold} % of its {period.unit} this period",
                        message=(f"{period.units_used.normalize():f} of {period.included_units.normalize():f} "  # type: ignore[union-attr]
                                 f"{period.unit} used ({used_pct:.1f} %) in the period ending {period.end:%Y-%m-%d}."),
                        context={"period_start": period.start, "period_end": period.end}, now=as_of,
                    ))  # fmt: skip
            if used_pct > 100 and terms.overage_allowed and not terms.hard_limit:
                raised += bool(alert_raise(
                    account=account, kind=Alert.Kind.OVERAGE_STARTED, threshold=100, period_key=key,
                    value=period.units_used - (period.included_units or 0),
                    subject=f"{account.name} is past its included {period.unit}: overage has started",
                    message=f"Usage beyond the included {period.unit} is billed at ${terms.overage_rate} per unit.",
                    now=as_of,
                ))  # fmt: skip
    low_line = account.low_balance_threshold
    if low_line > 0:
        wallet = Wallet.objects.get(account=account)
        available = wallet.balance - wallet.held
        if available < low_line:
            key = period.start.date().isoformat() if period else as_of.date().isoformat()
            raised += bool(alert_raise(
                account=account, kind=Alert.Kind.LOW_BALANCE, threshold=low_line, period_key=key, value=available,
                subject=f"{account.name}'s credit balance is low",
                message=f"{available.normalize():f} credits are available, below the {low_line.normalize():f} set.",
                now=as_of,
            ))  # fmt: skip
    return raised


def alert_test_send(*, account: Account, now: datetime | None = None) -> Alert:
    """A test alert from the dashboard's "send test" button: a new one each time."""
    now = now or timezone.now()
    alert = alert_raise(
        account=account, kind=Alert.Kind.TEST, threshold=0, period_key=now.isoformat(), value=Decimal(0),
        subject="Test alert", message="This is a test of your TokenLedger alert channels.", now=now,
    )  # fmt: skip
    assert alert is not None
    return alert
