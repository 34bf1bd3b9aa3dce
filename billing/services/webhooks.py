"""The Stripe webhook inbox: store each event once, then process it in a task.

`stripe_event_store` inserts the event (the unique event id is the guard: a repeated delivery finds the row and
does nothing) and queues processing on commit. `stripe_event_process` moves it received -> processing ->
succeeded | failed, keeping the error and the attempt count; the handler's writes and the `succeeded` mark commit
together. Failed events are retried with backoff by `stripe_events_retry` (a beat job), events stuck in
`received` or `processing` too, and admins can reprocess from the console.

Only the types in HANDLERS are processed; any other type is stored as `ignored`.

API versions: handlers are written against the pinned version (`stripe_conf.PINNED_API_VERSION`) and read the
few fields they need where each shape keeps them (a subscription's period on its items or on itself, the price as
`price` or the older `plan`, an invoice's subscription at the top or under `parent.subscription_details`). An
event from another version is stored with its `api_version` and processed the same way; if a field a handler needs
is missing, the event fails with an error naming the field and the version, stays visible in the admin, and can be
reprocessed once the handler is taught the shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import stripe_gateway as gateway
from billing.models import Invoice, OverageBilling, StripeEvent, Subscription, TopUp
from billing.services.audit import Actor, audit_record
from billing.services.overage import overage_renewal_add
from billing.services.stripe_customers import account_for_customer
from billing.services.subscriptions_stripe import (
    subscription_payment_failed,
    subscription_payment_recovered,
    subscription_sync_from_stripe,
)
from billing.services.topups import (
    StripeDataError,
    payment_failure_alert,
    recharge_fail,
    recharge_settle,
    topup_checkout_completed,
    topup_checkout_expired,
)
from billing.stripe_conf import stripe_settings
from pricing.money import Money, MoneyError

logger = logging.getLogger("tokenledger.stripe")

RETRY_CAP_SECONDS = 6 * 3600


class WebhookPayloadInvalid(Exception):
    """A signed body that is not a Stripe event (not JSON, no id or type)."""


# --- intake ------------------------------------------------------------------------------------------------------


# What the inbox row can hold: the columns' lengths, and the range of `created` a datetime can take.
EVENT_ID_MAX = StripeEvent._meta.get_field("event_id").max_length or 255
EVENT_TYPE_MAX = StripeEvent._meta.get_field("type").max_length or 100
OBJECT_ID_MAX = StripeEvent._meta.get_field("object_id").max_length or 255
API_VERSION_MAX = StripeEvent._meta.get_field("api_version").max_length or 50
CREATED_MIN = 0
CREATED_MAX = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


def _unstorable_text(value: Any) -> str | None:
    """The first string (key or value) of a JSON value that no database column can hold: a NUL character or a
    lone surrogate. None when every string is storable."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "a NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a lone surrogate"
    return None


def _short_text(event: dict[str, Any], name: str, limit: int) -> None:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise WebhookPayloadInvalid(f"the body is not a Stripe event ({name} must be a non-empty string)")
    if len(value) > limit or not value.isprintable():
        raise WebhookPayloadInvalid(f"the event's {name} is not a Stripe {name} (at most {limit} printable characters)")


def stripe_event_parse(payload: bytes) -> dict[str, Any]:
    """The event in a verified body, or WebhookPayloadInvalid (answered 400, nothing stored) when the body is not
    a Stripe event the inbox can store: not JSON, no id, type, created or data, an id or type longer than its
    column, a `created` outside the years 1970-9999, or text holding a NUL or a lone surrogate."""
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WebhookPayloadInvalid("the body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookPayloadInvalid("the body is not a Stripe event (id and type are required)")
    _short_text(event, "id", EVENT_ID_MAX)
    _short_text(event, "type", EVENT_TYPE_MAX)
    created = event.get("created")
    if not isinstance(created, int) or isinstance(created, bool) or not isinstance(event.get("data"), dict):
        raise WebhookPayloadInvalid("the body is not a Stripe event (created and data are required)")
    if not CREATED_MIN <= created <= CREATED_MAX:
        raise WebhookPayloadInvalid(f"the event's created ({created}) is not a time between 1970 and 9999")
    problem = _unstorable_text(event)
    if problem:
        raise WebhookPayloadInvalid(f"the event holds text with {problem}, which cannot be stored")
    return event


def stripe_event_store(*, event: dict[str, Any], now: datetime | None = None) -> tuple[StripeEvent, bool]:
    """Store a verified event. Returns (event, created); a repeated delivery returns the stored one and False.
    A handled type is queued for processing when the insert commits."""
    now = now or timezone.now()
    handled = event["type"] in HANDLERS
    obj = event["data"].get("object") or {}
    try:
        with transaction.atomic():
            stored = StripeEvent.objects.create(
                event_id=event["id"],
                type=event["type"],
                api_version=str(event.get("api_version") or "")[:API_VERSION_MAX],
                livemode=bool(event.get("livemode")),
                object_id=str(obj.get("id") or "")[:OBJECT_ID_MAX] if isinstance(obj, dict) else "",
                stripe_created_at=datetime.fromtimestamp(event["created"], tz=UTC),
                payload=event,
                status=StripeEvent.Status.RECEIVED if handled else StripeEvent.Status.IGNORED,
                outcome="" if handled else "type not handled",
                received_at=now,
            )
            if handled:
                transaction.on_commit(lambda: stripe_event_queue(stored.pk))
    except IntegrityError:
        return StripeEvent.objects.get(event_id=event["id"]), False
    return stored, True


def stripe_event_queue(stripe_event_pk: int) -> None:
    from billing.tasks import stripe_event_process_task

    stripe_event_process_task.delay(stripe_event_pk)


# --- processing --------------------------------------------------------------------------------------------------


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), RETRY_CAP_SECONDS))


def _claim(*, stripe_event_pk: int, now: datetime, force: bool) -> StripeEvent | None:
    stuck = timedelta(seconds=stripe_settings().event_stuck_seconds)
    with transaction.atomic():
        event = StripeEvent.objects.select_for_update().get(pk=stripe_event_pk)
        if event.status in (StripeEvent.Status.SUCCEEDED, StripeEvent.Status.IGNORED):
            return None
        started = event.processing_started_at
        if event.status == StripeEvent.Status.PROCESSING and started and started > now - stuck and not force:
            return None  # another worker has it
        event.status, event.attempts, event.processing_started_at = (
            StripeEvent.Status.PROCESSING,
            event.attempts + 1,
            now,
        )
        event.save(update_fields=["status", "attempts", "processing_started_at"])
        return event


def stripe_event_process(
    *, stripe_event_pk: int, now: datetime | None = None, raise_transient: bool = False, force: bool = False
) -> StripeEvent:
    """Process one stored event once: its handler's writes and the `succeeded` mark commit together; a failure
    rolls them back and records `failed` with the error and when to try again. With `raise_transient`, a
    transient Stripe error is raised after it is recorded (so the task can retry with backoff)."""
    now = now or timezone.now()
    event = _claim(stripe_event_pk=stripe_event_pk, now=now, force=force)
    if event is None:
        return StripeEvent.objects.get(pk=stripe_event_pk)
    handler = HANDLERS[event.type]
    try:
        with transaction.atomic():
            outcome = handler(event, now)
            event.status, event.outcome, event.last_error = StripeEvent.Status.SUCCEEDED, outcome[:500], ""
            event.processed_at, event.next_attempt_at = now, None
            event.save(update_fields=["status", "outcome", "last_error", "processed_at", "next_attempt_at"])
    except Exception as exc:  # every failure is kept on the event; none is lost
        event.status = StripeEvent.Status.FAILED
        event.last_error = f"{type(exc).__name__}: {exc}"[:4000]
        if event.api_version and event.api_version != stripe_settings().api_version:
            event.last_error += f" (event API version {event.api_version}, pinned {stripe_settings().api_version})"
        event.next_attempt_at = now + _backoff(event.attempts)
        event.save(update_fields=["status", "last_error", "next_attempt_at"])
        logger.warning("Stripe event %s (%s) failed, attempt %s: %s", event.event_id, event.type, event.attempts,
                       event.last_error)  # fmt: skip
        if raise_transient and isinstance(exc, gateway.StripeTransientError):
            raise
        if not isinstance(exc, gateway.StripeGatewayError | StripeDataError | KeyError | ValueError | TypeError):
            logger.exception("Stripe event %s handler crashed", event.event_id)
    return event


def stripe_events_retry(*, as_of: datetime) -> dict[str, int]:
    """The retry job: failed events whose next attempt is due (up to STRIPE_EVENT_MAX_ATTEMPTS), and events stuck
    in received (the queued task never ran) or processing (the worker died) for STRIPE_EVENT_STUCK_SECONDS."""
    conf = stripe_settings()
    stuck_before = as_of - timedelta(seconds=conf.event_stuck_seconds)
    failed = StripeEvent.objects.filter(
        status=StripeEvent.Status.FAILED, next_attempt_at__lte=as_of, attempts__lt=conf.event_max_attempts
    )
    received = StripeEvent.objects.filter(status=StripeEvent.Status.RECEIVED, received_at__lt=stuck_before)
    processing = StripeEvent.objects.filter(
        status=StripeEvent.Status.PROCESSING, processing_started_at__lt=stuck_before
    )
    ids = sorted(
        {*failed.values_list("pk", flat=True), *received.values_list("pk", flat=True),
         *processing.values_list("pk", flat=True)}
    )  # fmt: skip
    counts = {"retried": 0, "succeeded": 0, "failed": 0}
    for pk in ids:
        event = stripe_event_process(stripe_event_pk=pk, now=as_of)
        counts["retried"] += 1
        if event.status == StripeEvent.Status.SUCCEEDED:
            counts["succeeded"] += 1
        elif event.status == StripeEvent.Status.FAILED:
            counts["failed"] += 1
    return counts


def stripe_event_reprocess(*, event: StripeEvent, actor: Actor = None, now: datetime | None = None) -> StripeEvent:
    """An admin's "process again" (failed, stuck or never processed events; succeeded and ignored ones stay)."""
    if event.status in (StripeEvent.Status.SUCCEEDED, StripeEvent.Status.IGNORED):
        return event
    audit_record(action="stripe_event_reprocessed", account=None, object_type="StripeEvent",
                 object_key=event.event_id, actor=actor, before={"status": event.status, "attempts": event.attempts})  # fmt: skip
    return stripe_event_process(stripe_event_pk=event.pk, now=now, force=True)


# --- handlers: (event, now) -> what was done ---------------------------------------------------------------------


def _object(event: StripeEvent) -> dict[str, Any]:
    obj = (event.payload.get("data") or {}).get("object")
    if not isinstance(obj, dict) or not obj.get("id"):
        raise StripeDataError(f"{event.type} {event.event_id}: data.object with an id is missing")
    return obj


def _checkout_session_completed(event: StripeEvent, now: datetime) -> str:
    session = _object(event)
    if session.get("mode") == "subscription":
        return f"subscription checkout {session['id']} completed; the subscription events bring it in step"
    return topup_checkout_completed(session=session, at=event.stripe_created_at)


def _checkout_session_expired(event: StripeEvent, now: datetime) -> str:
    session = _object(event)
    if session.get("mode") != "payment":
        return f"{session.get('mode')} checkout {session['id']} expired"
    return topup_checkout_expired(session=session)


def _auto_recharge_topup(intent: dict[str, Any]) -> TopUp | None:
    metadata = intent.get("metadata") or {}
    raw = str(metadata.get("topup_id") or "")
    if metadata.get("kind") != "auto_recharge" or not raw.isdigit():
        return None
    return TopUp.objects.filter(pk=int(raw), source=TopUp.Source.AUTO_RECHARGE).first()


def _payment_intent_succeeded(event: StripeEvent, now: datetime) -> str:
    intent = _object(event)
    topup = _auto_recharge_topup(intent)
    if topup is None:
        return f"{intent['id']}: not an auto-recharge (Checkout top-ups are credited from their session)"
    return recharge_settle(
        topup_id=topup.pk, intent={**intent, "status": "succeeded"}, now=event.stripe_created_at
    ).message


def _payment_intent_failed(event: StripeEvent, now: datetime) -> str:
    intent = _object(event)
    topup = _auto_recharge_topup(intent)
    if topup is None:
        return f"{intent['id']}: not an auto-recharge"
    error = intent.get("last_payment_error") or {}
    return recharge_fail(topup_id=topup.pk, message=error.get("message") or "payment failed", now=now).message


def _subscription_changed(event: StripeEvent, now: datetime) -> str:
    return subscription_sync_from_stripe(
        subscription=_object(event), event_id=event.event_id, event_created=event.stripe_created_at,
        deleted=event.type == "customer.subscription.deleted",
    )  # fmt: skip


def invoice_subscription_id(invoice: dict[str, Any]) -> str:
    """An invoice's subscription: at the top (before 2025-03-31) or under parent.subscription_details."""
    value = invoice.get("subscription")
    if not value:
        details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
        value = details.get("subscription")
    return value if isinstance(value, str) else (value or {}).get("id", "")


def _invoice_account_and_local(invoice: dict[str, Any]) -> tuple[Any, Invoice | None]:
    local = Invoice.objects.select_related("account").filter(stripe_invoice_id=invoice.get("id") or "-").first()
    customer = invoice.get("customer")
    customer_id = customer if isinstance(customer, str) else (customer or {}).get("id", "")
    account = local.account if local is not None else account_for_customer(customer_id=customer_id)
    if account is None:
        raise StripeDataError(f"invoice {invoice.get('id')}: no account has Stripe customer {customer_id!r}")
    return account, local


def _amount(cents: Any, currency: Any) -> str:
    try:
        return str(Money.from_minor_units(int(cents), str(currency or "usd").upper()).rounded())
    except (MoneyError, TypeError, ValueError):
        return f"{cents} {currency}"


def _invoice_payment_succeeded(event: StripeEvent, now: datetime) -> str:
    invoice = _object(event)
    account, local = _invoice_account_and_local(invoice)
    done = []
    if local is not None and local.status != Invoice.Status.PAID:
        paid_at = (invoice.get("status_transitions") or {}).get("paid_at")
        moment = datetime.fromtimestamp(paid_at, tz=UTC) if isinstance(paid_at, int) else event.stripe_created_at
        Invoice.objects.filter(pk=local.pk).update(
            status=Invoice.Status.PAID, paid_at=moment,
            hosted_invoice_url=invoice.get("hosted_invoice_url") or local.hosted_invoice_url,
        )  # fmt: skip
        OverageBilling.objects.filter(invoice=local).exclude(step=OverageBilling.Step.NOTHING_DUE).update(
            step=OverageBilling.Step.PAID
        )
        done.append(f"invoice #{local.pk} paid")
    if subscription_payment_recovered(account=account):
        done.append("subscription active again")
    paid = _amount(invoice.get("amount_paid"), invoice.get("currency"))
    return f"{invoice['id']} paid {paid} by account {account.pk}" + (": " + ", ".join(done) if done else "")


def _invoice_payment_failed(event: StripeEvent, now: datetime) -> str:
    invoice = _object(event)
    account, local = _invoice_account_and_local(invoice)
    subscription_payment_failed(account=account, failed_at=event.stripe_created_at)
    if local is not None:
        OverageBilling.objects.filter(invoice=local, step__in=[OverageBilling.Step.FINALIZED]).update(
            step=OverageBilling.Step.PAYMENT_FAILED
        )
    due = _amount(invoice.get("amount_due"), invoice.get("currency"))
    attempt = invoice.get("attempt_count")
    next_attempt = invoice.get("next_payment_attempt")
    when = (
        f" Stripe will try again on {datetime.fromtimestamp(next_attempt, tz=UTC):%Y-%m-%d %H:%M} UTC."
        if isinstance(next_attempt, int)
        else ""
    )
    message = (
        f"The payment of {due} for invoice {invoice['id']} failed (attempt {attempt}).{when} Please update your card."
    )
    since = Subscription.objects.filter(account=account).values_list("past_due_since", flat=True).first()
    if since is not None:
        grace_days = getattr(settings, "PAST_DUE_GRACE_DAYS", 7)
        message += f" If it stays unpaid, usage stops {grace_days} days after {since:%Y-%m-%d}."
    payment_failure_alert(
        account=account, reference=str(invoice["id"]), subject="Payment failed", message=message,
        at=event.stripe_created_at,
    )  # fmt: skip
    return f"{invoice['id']}: payment of {due} failed (attempt {attempt}); account {account.pk} past due, alerted"


def _invoice_upcoming(event: StripeEvent, now: datetime) -> str:
    invoice = (event.payload.get("data") or {}).get("object") or {}
    subscription_id = invoice_subscription_id(invoice)
    if not subscription_id:
        return "upcoming invoice without a subscription: nothing to add"
    local = Subscription.objects.filter(stripe_subscription_id=subscription_id).select_related("account").first()
    if local is None:
        raise StripeDataError(f"invoice.upcoming for {subscription_id}: no local subscription has it yet")
    period_end = invoice.get("period_end")
    end = datetime.fromtimestamp(period_end, tz=UTC) if isinstance(period_end, int) else None
    return overage_renewal_add(account=local.account, subscription_id=subscription_id, period_end=end, now=now)


Handler = Callable[[StripeEvent, datetime], str]

HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _checkout_session_completed,
    "checkout.session.async_payment_succeeded": _checkout_session_completed,
    "checkout.session.expired": _checkout_session_expired,
    "payment_intent.succeeded": _payment_intent_succeeded,
    "payment_intent.payment_failed": _payment_intent_failed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "invoice.payment_succeeded": _invoice_payment_succeeded,
    "invoice.payment_failed": _invoice_payment_failed,
    "invoice.upcoming": _invoice_upcoming,
}
HANDLED_EVENT_TYPES = tuple(HANDLERS)
