"""Replaying and discarding refused events: what an admin does with the dead-letter table after fixing the catalog.

A replay sends the stored payload through `usage_record_batch` again, so a replayed event is rated, stored and
counted exactly like one the client sends, and the (account, request_id) constraint keeps it from counting twice.

The time a replay is "received" at: the late-event window is judged against the time the event was first received
(`RejectedEvent.received_at`), not the time of the replay; otherwise an event refused only because the catalog
lacked its model would turn "too old" while the admin fixes the catalog. Recording books every event into the
period containing the receive time, or into an open period containing the event, so the receive time must lie in
an open period: when the period of the first receipt has already closed, the replay is received at the start of
the account's next open period instead (the earliest moment whose period still takes counters). Such an event,
whose time lies in a closed period, is then billed as late usage of that period on the next invoice, as any late
event is (billing/services/late_usage.py). An event sent without `occurred_at`
is replayed with its first receive time as `occurred_at`, since that is when it happened.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.models import Account, BillingPeriod
from billing.services.audit import Actor, audit_record
from billing.services.periods import period_current
from usage.models import RejectedEvent
from usage.services.recording import DUPLICATE, RECORDED, REJECTED, usage_record_batch

# What a replay or a discard did; the admin counts these. REJECTED means "refused again".
SKIPPED = "skipped"
DISCARDED = "discarded"
REPLAY_OUTCOMES = (RECORDED, DUPLICATE, REJECTED, SKIPPED)

RESULT_RECORDED = "recorded"
RESULT_DUPLICATE = "duplicate (already recorded)"
RESULT_MAX = 300  # RejectedEvent.replay_result's length


def replay_received_at(*, account: Account, first_received_at: datetime, now: datetime) -> datetime:
    """The receive time to replay with: the first receipt while its period is open, else the start of the next
    open period (opened now if the account has none yet)."""
    first_period = BillingPeriod.objects.filter(
        account=account, start__lte=first_received_at, end__gt=first_received_at
    ).first()
    if first_period is not None and first_period.status == BillingPeriod.Status.OPEN:
        return first_received_at
    later = (
        BillingPeriod.objects.filter(account=account, status=BillingPeriod.Status.OPEN, start__gt=first_received_at)
        .order_by("start")
        .first()
    )
    if later is None:
        later = period_current(account=account, as_of=now)
    return max(first_received_at, later.start)


def _pending_locked(rejected: RejectedEvent) -> RejectedEvent | None:
    """The row, locked, if it is still pending: two admins replaying it at once are served one after the other."""
    row = RejectedEvent.objects.select_for_update(of=("self",)).select_related("account").get(pk=rejected.pk)
    return row if row.status == RejectedEvent.Status.PENDING else None


def _as_sent(row: RejectedEvent) -> Any:
    """The payload to replay. An event sent without `occurred_at` happened when it was first received; it says so
    explicitly, so a replay received at another time still rates and counts it at its own time."""
    payload = row.payload
    if isinstance(payload, dict) and payload.get("occurred_at") is None:
        return {**payload, "occurred_at": row.received_at.isoformat()}
    return payload


@transaction.atomic
def rejected_event_replay(*, rejected: RejectedEvent, actor: Actor = None, now: datetime | None = None) -> str:
    """Record a refused event again; answer recorded, duplicate, rejected (refused again) or skipped (not pending).

    Recorded or duplicate marks the row replayed. Refused again, the row stays pending with the new code and
    message in `replay_result`, and the dead-letter row the failed attempt wrote is removed: one refused event is
    one row, however often it is replayed.
    """
    now = now or timezone.now()
    # Opening a period may lock the subscription; do it before any other lock (recording does the same).
    received_at = replay_received_at(account=rejected.account, first_received_at=rejected.received_at, now=now)
    row = _pending_locked(rejected)
    if row is None:
        return SKIPPED
    account = row.account
    same_event = RejectedEvent.objects.filter(account=account, request_id=row.request_id, received_at=received_at)
    existing = set(same_event.values_list("pk", flat=True))
    batch = usage_record_batch(
        account=account, raw_events=[_as_sent(row)], received_at=received_at, ip=row.ip, user_agent=row.user_agent
    )
    result = batch.results[0]
    if result.status == REJECTED:
        # the failed attempt's own dead-letter row: same account, request id and receive time, not there before
        RejectedEvent.objects.filter(pk__in=set(same_event.values_list("pk", flat=True)) - existing - {row.pk}).delete()
        error = result.error or {}
        row.replay_result = f"{error.get('code', 'rejected')}: {error.get('message', '')}"[:RESULT_MAX]
        row.save(update_fields=["replay_result"])
    else:
        row.status = RejectedEvent.Status.REPLAYED
        row.replayed_at = now
        row.replay_result = RESULT_RECORDED if result.status == RECORDED else RESULT_DUPLICATE
        row.save(update_fields=["status", "replayed_at", "replay_result"])
    audit_record(
        action="rejected_event_replay", account=account, object_type="RejectedEvent", object_key=str(row.pk),
        actor=actor, before={"status": RejectedEvent.Status.PENDING, "error_code": row.error_code},
        after={"status": row.status, "result": row.replay_result, "received_at": received_at},
    )  # fmt: skip
    return result.status


@transaction.atomic
def rejected_event_discard(
    *, rejected: RejectedEvent, actor: Actor = None, reason: str = "", now: datetime | None = None
) -> str:
    """Set a refused event aside for good (it is kept, marked discarded); answer discarded or skipped."""
    now = now or timezone.now()
    row = _pending_locked(rejected)
    if row is None:
        return SKIPPED
    row.status = RejectedEvent.Status.DISCARDED
    row.replay_result = (f"discarded: {reason.strip()}" if reason.strip() else "discarded")[:RESULT_MAX]
    row.save(update_fields=["status", "replay_result"])
    audit_record(
        action="rejected_event_discard", account=row.account, object_type="RejectedEvent", object_key=str(row.pk),
        actor=actor, before={"status": RejectedEvent.Status.PENDING},
        after={"status": row.status, "result": row.replay_result, "at": now},
    )  # fmt: skip
    return DISCARDED
