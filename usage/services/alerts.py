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
from django.db.models import Exists, OuterRef, Q
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import Account, BillingPeriod, Membership, Wallet
from core.egress import EgressRefused, egress_post
from pricing.selectors import plan_terms_version
from usage.models import Alert, AlertDelivery, AlertThreshold

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
    """Raise the quota, overage, low-balance and spend alerts the account's state calls for now. Idempotent."""
    period = (
        BillingPeriod.objects.select_related("terms__plan", "plan")
        .filter(account=account, start__lte=as_of, end__gt=as_of)
        .first()
    )
    lines = account_alert_lines(account=account)
    raised = _balance_alerts(account=account, period=period, lines=lines.balance, as_of=as_of)
    if period is not None:
        raised += _quota_alerts(account=account, period=period, as_of=as_of)
        raised += _spend_alerts(account=account, period=period, lines=lines.spend, as_of=as_of)
    return raised


def _quota_alerts(*, account: Account, period: BillingPeriod, as_of: datetime) -> int:
    terms = plan_terms_version(period.terms)
    used_pct = percent(period.units_used, period.included_units)
    if used_pct is None:
        return 0
    raised = 0
    key = period.start.date().isoformat()
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
    return raised


def _balance_alerts(*, account: Account, period: BillingPeriod | None, lines: list[Decimal], as_of: datetime) -> int:
    """One alert per line the available credits are below, however they got there: crossing it, or starting under
    it (a new account, a line raised past the balance)."""
    if not lines:
        return 0
    wallet = Wallet.objects.get(account=account)
    available = wallet.balance - wallet.held
    key = period.start.date().isoformat() if period else as_of.date().isoformat()
    raised = 0
    for line in (line for line in lines if available < line):
        raised += bool(alert_raise(
            account=account, kind=Alert.Kind.LOW_BALANCE, threshold=line, period_key=key, value=available,
            subject=f"{account.name}'s credit balance is low",
            message=f"{available.normalize():f} credits are available, below the {line.normalize():f} set.",
            now=as_of,
        ))  # fmt: skip
    return raised


def _spend_alerts(*, account: Account, period: BillingPeriod, lines: list[Decimal], as_of: datetime) -> int:
    """One alert per spend line the period's charge (USD) has reached."""
    spent = period.charge_usd
    raised = 0
    for line in (line for line in lines if spent >= line):
        raised += bool(alert_raise(
            account=account, kind=Alert.Kind.SPEND, threshold=line, period_key=period.start.date().isoformat(),
            value=spent, subject=f"{account.name} has spent ${line.normalize():f} this period",
            message=f"${spent.quantize(Decimal('0.01'), ROUND_HALF_UP)} spent in the period ending "
            f"{period.end:%Y-%m-%d}, at or past the ${line.normalize():f} set.",
            now=as_of,
        ))  # fmt: skip
    return raised


@dataclass(frozen=True)
class AlertLines:
    """The account's alert lines: balance lines in credits, spend lines in USD, lowest first."""

    balance: list[Decimal]
    spend: list[Decimal]


def account_alert_lines(*, account: Account) -> AlertLines:
    """The account's own low-balance threshold (0: off) with the owner's extra lines."""
    rows = AlertThreshold.objects.filter(account=account).values_list("kind", "amount")
    balance = {amount for kind, amount in rows if kind == AlertThreshold.Kind.BALANCE}
    if account.low_balance_threshold > 0:
        balance.add(account.low_balance_threshold)
    spend = {amount for kind, amount in rows if kind == AlertThreshold.Kind.SPEND}
    return AlertLines(balance=sorted(balance), spend=sorted(spend))


class AlertThresholdRefused(Exception):
    """An alert line the owner asked for that cannot be kept; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


MAX_THRESHOLDS_PER_ACCOUNT = 20


def alert_threshold_add(*, account: Account, kind: str, amount: Decimal, now: datetime | None = None) -> bool:
    """Add an alert line. The same line twice is kept once (the unique constraint): False the second time."""
    if kind not in AlertThreshold.Kind.values:
        raise AlertThresholdRefused(f"unknown kind of alert {kind!r}")
    if amount <= 0:
        raise AlertThresholdRefused("a threshold must be above 0")
    if AlertThreshold.objects.filter(account=account).count() >= MAX_THRESHOLDS_PER_ACCOUNT:
        raise AlertThresholdRefused(f"an account keeps at most {MAX_THRESHOLDS_PER_ACCOUNT} alert lines")
    try:
        with transaction.atomic():
            AlertThreshold.objects.create(account=account, kind=kind, amount=amount, created_at=now or timezone.now())
    except IntegrityError:
        return False
    _check_on_commit(account)
    return True


def alert_threshold_remove(*, account: Account, threshold_id: int) -> bool:
    """Remove one of the account's lines (another account's id removes nothing)."""
    deleted, _ = AlertThreshold.objects.filter(account=account, pk=threshold_id).delete()
    return bool(deleted)


def _check_on_commit(account: Account) -> None:
    """A new line may already be passed: check now (after the commit) rather than at the next crossing."""
    from usage.tasks import alerts_check_task

    transaction.on_commit(lambda: alerts_check_task.delay(account.pk))


def alert_lines_changed(*, account: Account) -> None:
    """The account's own low-balance threshold changed (alert settings): check it against the balance now."""
    _check_on_commit(account)


def alerts_sweep(*, as_of: datetime) -> int:
    """Check every active account with an alert line, so a balance that is below a line (an account that started
    under it, a line raised past the balance) alerts without waiting for usage to cross it. Idempotent."""
    has_lines = Exists(AlertThreshold.objects.filter(account=OuterRef("pk")))
    accounts = Account.objects.filter(status=Account.Status.ACTIVE).filter(Q(low_balance_threshold__gt=0) | has_lines)
    return sum(alerts_check_account(account=account, as_of=as_of) for account in accounts.iterator(chunk_size=500))


def alert_test_send(*, account: Account, now: datetime | None = None) -> Alert:
    """A test alert from the dashboard's "send test" button: a new one each time."""
    now = now or timezone.now()
    alert = alert_raise(
        account=account, kind=Alert.Kind.TEST, threshold=0, period_key=now.isoformat(), value=Decimal(0),
        subject="Test alert", message="This is a test of your TokenLedger alert channels.", now=now,
    )  # fmt: skip
    assert alert is not None
    return alert
