"""Recording usage: rate each event, store the batch once, move the counters and the wallet in one transaction.

A batch of up to USAGE_MAX_BATCH events is inserted in bulk, ignoring request ids the account already has; the
events this batch inserted are told apart by their `batch_id`. Then, under the account's locks, each touched
period's counters move by one update, the wallet by one ledger entry (reference `usage:<batch id>`), reservations
of the recorded requests are settled, and the daily rollups are upserted. A refused event is kept in
RejectedEvent with its code, whatever text it holds (see `_dead_letter`).

Each event is judged on its own: a bad one is rejected and the good ones of its batch are recorded. Should the
database still refuse a row that passed the checks, the rows are inserted again in halves, each in its own
savepoint, until the refused row is alone; it is rejected (`not_storable`) and the rest are recorded. Rows are
inserted in one fixed order (by request id, bytewise) and the account, wallet and period rows are locked after
them in one fixed order, so two batches with overlapping request ids never wait on each other in a circle.

Usage that happened is always recorded, even past the quota or below zero credits: such events are flagged
`over_limit` and the next authorization is refused.

On PostgreSQL a batch of one event costs two round trips: BEGIN, the insert, the locks and the batch's active
reservations; the counters, the settle and rollups, the ledger entry and COMMIT. The period in force is read before
an account's first batch and remembered for the next ones (checked under its lock: `_Periods.check`).
"""

from __future__ import annotations

import json
import operator
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from billing.models import Account, BillingPeriod, Wallet
from billing.services.late_usage import LateCounters, late_usage_add
from billing.services.locks import (
    LockedRows,
    account_rows_lock,
    account_rows_lock_statement,
    account_rows_locked,
    raw_sql_enabled,
)
from billing.services.periods import period_counters_save, period_counters_statement, period_current
from billing.services.topups import auto_recharge_check
from billing.services.wallet import (
    Posting,
    wallet_held_release,
    wallet_held_release_statement,
    wallet_post,
    wallet_post_statement,
)
from core.statements import Statement, statements_run, transaction_in_round_trips
from pricing.catalog import CatalogSnapshot, PlanTermsVersion
from pricing.errors import PricingError
from pricing.plans import debits_wallet, event_units, quota_allowed_units
from pricing.rating import Rating, plan_charge, rate_usage
from pricing.selectors import catalog_snapshot, plan_terms_by_id
from usage.event_dimensions import event_dimension_columns
from usage.event_store import (
    EVENT_ATTNAMES,
    RollupBucket,
    events_insert,
    reservations_active_statement,
    reservations_settle_and_rollup_statement,
)
from usage.events import EventRefused, ParsedEvent, event_parse, request_id_of, storable_json, storable_text
from usage.models import DailyUsage, RejectedEvent, Reservation, UsageEvent
from usage.services.alerts import Crossing, percent

RECORDED, DUPLICATE, REJECTED = "recorded", "duplicate", "rejected"
AMOUNT_LIMIT = Decimal(10) ** 16  # PreciseDecimalField holds 16 digits before the point


@dataclass
class EventResult:
    request_id: str
    status: str
    cost_usd: Decimal | None = None
    charge_usd: Decimal | None = None
    credits: Decimal | None = None
    error: dict[str, str] | None = None
    over_reservation: bool = False


@dataclass
class BatchResult:
    batch_id: uuid.UUID
    results: list[EventResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


# The open period in force of each account this process recorded for lately, so that a batch need not read it
# before its transaction while it lasts. It is never trusted blindly: under the period's lock the batch checks that
# the period is still open with the same bounds and terms (_StalePeriod), and is recorded again from a fresh read
# when a close or a plan change moved it meanwhile.
_IN_FORCE_MAX = 10_000  # accounts; past it the memo starts afresh
_in_force: dict[int, BillingPeriod] = {}


def periods_in_force_forget() -> None:
    """Forget every remembered period (tests: a rolled-back test leaves ids another test reuses)."""
    _in_force.clear()


class _StalePeriod(Exception):
    """The period a batch took from _in_force was closed or changed since: the batch is recorded again."""


@dataclass
class _Periods:
    """The open period each event belongs to: the one containing it, or the current one when that has closed."""

    account: Account
    received_at: datetime
    snapshot: CatalogSnapshot
    remembered: bool = True  # whether the current period may come from _in_force
    by_id: dict[int, BillingPeriod] = field(default_factory=dict)
    terms: dict[int, PlanTermsVersion] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = _in_force.get(self.account.pk) if self.remembered else None
        if known is not None and known.start <= self.received_at < known.end:
            current = known
        else:
            current, self.remembered = period_current(account=self.account, as_of=self.received_at), False
        self.current = self._remember(current)

    def check(self, *, period_ids: list[int], locked: dict[int, BillingPeriod]) -> None:
        """Under the periods' locks: raise _StalePeriod when the remembered period, which events of the batch were
        inserted in, is gone, closed or changed (its bounds, its terms)."""
        if not self.remembered or self.current.pk not in period_ids:
            return  # read in this batch (as before its transaction), or none of its events is in it
        now, then = locked.get(self.current.pk), self.current
        if now is None or (now.status, now.start, now.end, now.terms_id) != (
            BillingPeriod.Status.OPEN, then.start, then.end, then.terms_id,
        ):  # fmt: skip
            _in_force.pop(self.account.pk, None)
            raise _StalePeriod

    def keep(self) -> None:
        """Remember the current period for the account's next batch, once this one is recorded in it."""
        if self.current.status == BillingPeriod.Status.OPEN and not self.remembered:
            if len(_in_force) >= _IN_FORCE_MAX:
                _in_force.clear()
            _in_force[self.account.pk] = self.current

    def _remember(self, period: BillingPeriod) -> BillingPeriod:
        if period.pk not in self.by_id:
            self.by_id[period.pk] = period
            self.terms[period.pk] = plan_terms_by_id(terms_id=period.terms_id, snapshot=self.snapshot)
        return self.by_id[period.pk]

    def for_time(self, at: datetime) -> BillingPeriod:
        """The period containing `at`, open or closed (a closed one makes the event late usage, see _apply)."""
        if self.current.start <= at < self.current.end:
            return self.current
        for period in self.by_id.values():
            if period.start <= at < period.end:
                return period
        earlier = (
            BillingPeriod.objects.select_related("terms__plan", "plan")
            .filter(account=self.account, start__lte=at, end__gt=at)
            .first()
        )
        return self._remember(earlier) if earlier is not None else self.current


def _refuse(raw: Any, code: str, message: str) -> EventResult:
    message = storable_text(message)
    return EventResult(request_id=request_id_of(raw), status=REJECTED, error={"code": code, "message": message})


def _rate(parsed: ParsedEvent, snapshot: CatalogSnapshot, terms: PlanTermsVersion) -> Rating:
    rating = rate_usage(parsed.line, snapshot, tier=terms.plan_code, terms=terms)
    if not (
        abs(rating.cost_usd) < AMOUNT_LIMIT
        and abs(rating.charge_usd) < AMOUNT_LIMIT
        and abs(rating.credits) < AMOUNT_LIMIT
    ):
        raise EventRefused("out_of_range", "the event's amounts are too large to store; check its counts")
    return rating


def _dead_letter(
    *, account: Account, raw: Any, result: EventResult, received_at: datetime, ip: str | None, user_agent: str
) -> RejectedEvent:
    """The dead-letter row of a refused event. It stores whatever came in: `payload` is the event with every
    NUL and lone surrogate replaced by U+FFFD (what the console shows and a replay sends); when that changed
    anything, `raw_payload` keeps the event exactly as sent, as JSON text with every non-ASCII character escaped."""
    payload = storable_json(raw if isinstance(raw, dict) else {"raw": raw})
    raw_payload = ""
    if payload != raw:
        try:
            raw_payload = json.dumps(raw, ensure_ascii=True, cls=DjangoJSONEncoder)
        except (TypeError, ValueError, RecursionError):
            raw_payload = ascii(raw)
    error = result.error or {}
    return RejectedEvent(
        account=account,
        request_id=result.request_id,
        payload=payload,
        raw_payload=raw_payload,
        error_code=error.get("code", ""),
        error_message=error.get("message", ""),
        received_at=received_at,
        ip=ip,
        user_agent=user_agent,
    )


class _InsertRefused(Exception):
    """The database refused a row of a batch inserted without a savepoint: the batch is recorded again, carefully."""


def usage_record_batch(
    *,
    account: Account,
    raw_events: list[Any],
    received_at: datetime | None = None,
    ip: str | None = None,
    user_agent: str = "",
    api_key_id: int | None = None,
) -> BatchResult:
    """Record a batch of raw events for one account; answer each with recorded, duplicate or rejected.
    `api_key_id`: the account API key that sent it, stored on each event (spend by key).

    A batch in a transaction of its own inserts its rows without a savepoint; should the database refuse one, the
    whole batch is rolled back and recorded again with savepoints, so the refused row can be told apart.
    """
    intake = _Intake(
        account=account,
        received_at=received_at or timezone.now(),
        ip=ip,
        user_agent=storable_text(user_agent[:300]),
        api_key_id=api_key_id,
    )
    try:
        return _record(intake=intake, raw_events=raw_events, careful=connection.in_atomic_block)
    except _InsertRefused:
        return _record(intake=intake, raw_events=raw_events, careful=True)


@dataclass(frozen=True)
class _Intake:
    """Who sent a batch, when and from where: what every row and dead letter of it carries."""

    account: Account
    received_at: datetime
    ip: str | None
    user_agent: str
    api_key_id: int | None = None

    def dead_letter(self, raw: Any, result: EventResult) -> RejectedEvent:
        return _dead_letter(account=self.account, raw=raw, result=result, received_at=self.received_at, ip=self.ip,
                            user_agent=self.user_agent)  # fmt: skip


@dataclass
class _Parsed:
    """A batch after parsing and rating: the rows to insert (one per request id), the refusals, the raw events."""

    rows: list[_Row] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)
    raws: dict[str, Any] = field(default_factory=dict)  # the first raw event of each request id


def _record(*, intake: _Intake, raw_events: list[Any], careful: bool) -> BatchResult:
    # the period is read (and opened, on the first use of a new period) before the batch's transaction: opening
    # locks the account, and a lock taken before the inserts, held while they wait on another batch's rows that
    # waits for that same lock, would be a deadlock (the one lock order is: insert, then account, wallet, periods)
    snapshot = catalog_snapshot()
    periods = _Periods(account=intake.account, received_at=intake.received_at, snapshot=snapshot)
    # the ledger entry, the batch's last write, carries the COMMIT where it can (transaction_in_round_trips)
    try:
        with transaction_in_round_trips():
            batch = _record_in_transaction(intake=intake, raw_events=raw_events, careful=careful, periods=periods)
    except _StalePeriod:  # nothing of the batch was kept: recorded again, its period read afresh
        periods = _Periods(account=intake.account, received_at=intake.received_at, snapshot=snapshot,
                           remembered=False)  # fmt: skip
        with transaction_in_round_trips():
            batch = _record_in_transaction(intake=intake, raw_events=raw_events, careful=careful, periods=periods)
    periods.keep()
    return batch


def _record_in_transaction(*, intake: _Intake, raw_events: list[Any], careful: bool, periods: _Periods) -> BatchResult:
    batch = BatchResult(batch_id=uuid.uuid4())
    parsed = _events_parse(intake=intake, raw_events=raw_events, batch=batch, periods=periods)
    rows = parsed.rows
    stored: dict[str, dict[str, Any]] = {}
    locked: _Locked | None = None
    if rows:
        stored, refused, locked = _events_insert_each(account=intake.account, rows=rows, batch_id=batch.batch_id,
                                                      careful=careful)  # fmt: skip
        for request_id, message in refused.items():
            for result in batch.results:
                if result.status == RECORDED and result.request_id == request_id:
                    result.status, result.error = REJECTED, {"code": "not_storable", "message": message}
            raw = parsed.raws[request_id]
            parsed.rejected.append(intake.dead_letter(raw, _refuse(raw, "not_storable", message)))
        rows = [r for r in rows if r.request_id not in refused]
    if parsed.rejected:
        RejectedEvent.objects.bulk_create(parsed.rejected)
    if rows:
        new_rows = [r for r in rows if stored[r.request_id]["batch_id"] == batch.batch_id]
        for row in new_rows:
            row.pk = stored[row.request_id]["id"]
        over_reservation: set[str] = set()
        if new_rows:
            # the ledger and reservations move now, even when the events were received earlier (a replay)
            over_reservation = _apply(
                account=intake.account, batch_id=batch.batch_id, rows=new_rows, periods=periods, at=timezone.now(),
                locked=locked,
            )  # fmt: skip
        _answer(batch=batch, stored=stored, over_reservation=over_reservation)
    return batch


def _events_parse(*, intake: _Intake, raw_events: list[Any], batch: BatchResult, periods: _Periods) -> _Parsed:
    """Parse and rate each event; a refused one is answered rejected and kept as a dead letter."""
    late_window = timedelta(days=settings.USAGE_LATE_EVENT_WINDOW_DAYS)
    future_skew = timedelta(seconds=settings.USAGE_FUTURE_SKEW_SECONDS)
    out = _Parsed()
    for raw in raw_events:
        try:
            parsed = event_parse(raw, received_at=intake.received_at, late_window=late_window, future_skew=future_skew,
                                 metadata_max_bytes=settings.USAGE_METADATA_MAX_BYTES)  # fmt: skip
            period = periods.for_time(parsed.line.occurred_at)
            terms = periods.terms[period.pk]
            rating = _rate(parsed, periods.snapshot, terms)
        except (EventRefused, PricingError) as exc:
            result = _refuse(raw, exc.code, exc.message)
            batch.results.append(result)
            out.rejected.append(intake.dead_letter(raw, result))
            continue
        batch.results.append(EventResult(request_id=parsed.request_id, status=RECORDED))
        if parsed.request_id in out.raws:
            continue  # repeated inside the batch: it counts once, and answers duplicate below
        out.raws[parsed.request_id] = raw
        out.rows.append(_row(intake=intake, batch_id=batch.batch_id, parsed=parsed, period=period, terms=terms,
                             rating=rating))  # fmt: skip
    return out


def _row(*, intake: _Intake, batch_id: uuid.UUID, parsed: ParsedEvent, period: BillingPeriod,
         terms: PlanTermsVersion, rating: Rating) -> _Row:  # fmt: skip
    line = parsed.line
    return _Row(
        account_id=intake.account.pk, period_id=period.pk, request_id=parsed.request_id, batch_id=batch_id,
        model_id=rating.model_id, model_requested=line.model, input_tokens=line.input_tokens,
        output_tokens=line.output_tokens, cached_input_tokens=line.cached_input_tokens,
        reasoning_tokens=line.reasoning_tokens, images=line.images, features=parsed.features_raw,
        multiplier=line.multiplier, operation_type=parsed.operation_type, user=parsed.user,
        conversation_id=parsed.conversation_id, metadata=parsed.metadata, occurred_at=line.occurred_at,
        received_at=intake.received_at, cost_usd=rating.cost_usd, charge_usd=rating.charge_usd,
        credits=rating.credits,
        units=event_units(unit=terms.unit, line_input=line.input_tokens, line_output=line.output_tokens,
                          credits=rating.credits),
        breakdown=rating.breakdown, price_version_id=rating.price_version_id or None,
        feature_version_ids=rating.feature_version_ids, credits_rate=rating.credits_rate, plan_code=terms.plan_code,
        ip=intake.ip or None,  # as Django stores a blank address: the column is inet
        user_agent=intake.user_agent, api_key_id=intake.api_key_id,
        **event_dimension_columns(line, provider_request_id=parsed.provider_request_id),
    )  # fmt: skip


def _answer(*, batch: BatchResult, stored: dict[str, dict[str, Any]], over_reservation: set[str]) -> None:
    """Each accepted event answers recorded (the first of its request id, stored now) or duplicate, with the
    amounts of the first result."""
    answered: set[str] = set()
    for result in batch.results:
        if result.status != RECORDED:
            continue
        first = stored[result.request_id]
        is_new = first["batch_id"] == batch.batch_id and result.request_id not in answered
        answered.add(result.request_id)
        result.status = RECORDED if is_new else DUPLICATE
        result.cost_usd, result.charge_usd, result.credits = first["cost_usd"], first["charge_usd"], first["credits"]
        result.over_reservation = result.request_id in over_reservation or bool(first.get("over_reservation"))


@dataclass(slots=True, kw_only=True)
class _Row:
    """One event as it is stored: the columns of UsageEvent, without the cost of a model instance per event."""

    account_id: int
    period_id: int
    request_id: str
    batch_id: uuid.UUID
    model_id: str
    model_requested: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    images: int
    features: list[Any]
    multiplier: Decimal
    operation_type: str
    user: str
    conversation_id: str
    metadata: dict[str, Any]
    occurred_at: datetime
    received_at: datetime
    cost_usd: Decimal
    charge_usd: Decimal
    credits: Decimal
    units: Decimal
    breakdown: dict[str, Any]
    price_version_id: int | None
    feature_version_ids: dict[str, int]
    credits_rate: Decimal | None
    plan_code: str
    ip: str | None
    user_agent: str
    api_key_id: int | None
    over_limit: bool = False
    late: bool = False
    over_reservation: bool = False
    actual_cost_usd: Decimal | None = None
    reconciliation_status: str = UsageEvent.Reconciliation.PENDING
    reconciled_at: datetime | None = None
    # the price dimensions (usage.event_dimensions.event_dimension_columns)
    cache_write_input_tokens: int = 0
    cache_write_1h_input_tokens: int = 0
    image_input_tokens: int = 0
    image_output_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    image_size: str = ""
    image_quality: str = ""
    seconds: Decimal = Decimal(0)
    characters: int = 0
    requests: int = 0
    service_tier: str = "default"
    provider_request_id: str = ""
    pk: int = 0  # the id, once inserted


_STORED = ("id", "request_id", "batch_id", "cost_usd", "charge_usd", "credits", "over_reservation")


Held = dict[str, tuple[Decimal, Decimal]]  # request id -> (credits its active reservation held, units authorized)


@dataclass(frozen=True)
class _Locked:
    """What the insert's round trip locked after the rows (PostgreSQL): the account's rows; and the active
    reservations of the batch's requests, read under that lock, as (credits held, units authorized) by request id."""

    rows: LockedRows | None
    held: Held


def _events_insert_each(
    *, account: Account, rows: list[_Row], batch_id: uuid.UUID, careful: bool = True
) -> tuple[dict[str, dict[str, Any]], dict[str, str], _Locked | None]:
    """Insert the rows as `_events_insert` does; should the database refuse one (any error but the idempotency
    conflict, which the insert skips), find it by inserting halves in savepoints, so every other row is stored.
    Answer the stored rows and, per refused request id, the database's reason.

    Not `careful`: no savepoint, and a refusal raises _InsertRefused (the caller's transaction is lost and the
    batch starts again, carefully); on PostgreSQL the account's rows are then locked in the insert's round trip,
    right after it (the one lock order: the inserts, then the account, wallet and periods), and the active
    reservations of the batch's requests read under that lock; both are answered too."""
    if not careful:
        then: list[Statement] = []
        if raw_sql_enabled():
            then = [
                account_rows_lock_statement(account_id=account.pk, period_ids=sorted({r.period_id for r in rows})),
                reservations_active_statement(account_id=account.pk, request_ids=[r.request_id for r in rows]),
            ]
        try:
            stored, then_rows = _events_insert(account=account, rows=rows, batch_id=batch_id, then=then)
        except (DataError, IntegrityError, UnicodeError) as exc:
            raise _InsertRefused from exc
        if not then:
            return stored, {}, None
        lock_rows, held_rows = then_rows
        held = {request_id: (credits, units) for request_id, credits, units in held_rows}
        return stored, {}, _Locked(rows=account_rows_locked(lock_rows), held=held)
    try:
        with transaction.atomic():
            return _events_insert(account=account, rows=rows, batch_id=batch_id)[0], {}, None
    except (DataError, IntegrityError, UnicodeError) as exc:
        if len(rows) == 1:
            reason = storable_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            return {}, {rows[0].request_id: f"the database refused this event: {reason[:200]}"}, None
    middle = len(rows) // 2
    stored, refused, _ = _events_insert_each(account=account, rows=rows[:middle], batch_id=batch_id)
    more_stored, more_refused, _ = _events_insert_each(account=account, rows=rows[middle:], batch_id=batch_id)
    return stored | more_stored, refused | more_refused, None


def _events_insert(
    *, account: Account, rows: list[_Row], batch_id: uuid.UUID, then: Sequence[Statement] = ()
) -> tuple[dict[str, dict[str, Any]], list[list[tuple[Any, ...]]]]:
    """Insert the rows, skipping request ids the account already has; answer the first result of each request id,
    and the rows of each of `then`, statements sent right after the insert (PostgreSQL only).

    The unique (account, request_id) constraint decides which rows are new. On PostgreSQL the event store's insert
    names the rows inserted now (usage.event_store.events_insert), so only request ids recorded before are read
    back. Elsewhere (SQLite) the ORM inserts with ignore_conflicts and the batch is read back.
    """
    rows = sorted(rows, key=operator.attrgetter("request_id"))  # one order for every batch: no deadlock cycle
    if connection.vendor != "postgresql":
        UsageEvent.objects.bulk_create(
            [UsageEvent(**{name: getattr(r, name) for name in EVENT_ATTNAMES}) for r in rows],
            ignore_conflicts=True,
            batch_size=500,
        )
        found = UsageEvent.objects.filter(account=account, request_id__in=[r.request_id for r in rows])
        return {e["request_id"]: e for e in found.values(*_STORED)}, []
    inserted, then_rows = events_insert(rows=rows, then=then)
    stored: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.request_id in inserted:
            stored[row.request_id] = {
                "id": inserted[row.request_id], "request_id": row.request_id, "batch_id": batch_id,
                "cost_usd": row.cost_usd, "charge_usd": row.charge_usd, "credits": row.credits,
            }  # fmt: skip
    earlier = [row.request_id for row in rows if row.request_id not in inserted]
    if earlier:
        found = UsageEvent.objects.filter(account=account, request_id__in=earlier)
        stored.update((e["request_id"], e) for e in found.values(*_STORED))
    return stored, then_rows


@dataclass
class _Moves:
    """What a batch moves, counted under the locks: the wallet's debit and the events past their limits."""

    balance: Decimal
    credits: Decimal = Decimal(0)
    usd: Decimal = Decimal(0)
    over_limit: list[int] = field(default_factory=list)
    late: list[_Row] = field(default_factory=list)


def _apply(
    *, account: Account, batch_id: uuid.UUID, rows: list[_Row], periods: _Periods, at: datetime,
    locked: _Locked | None,
) -> set[str]:  # fmt: skip
    """Move counters, wallet, reservations and rollups for the events this batch inserted, under the locks (taken
    here unless the insert took them: `locked`); answer the request ids that used more than their reservation was
    authorized for (flagged `over_reservation`). On PostgreSQL the writes go in one round trip with the COMMIT."""
    period_ids = sorted({r.period_id for r in rows})
    found = locked.rows if locked is not None else account_rows_lock(account_id=account.pk, period_ids=period_ids)
    periods.check(period_ids=period_ids, locked=found.periods if found is not None else {})
    assert found is not None  # the rows' periods exist: the events were just inserted with them
    # locked with every row of the batch (the insert's round trip), some of which may be another period's duplicates
    found = replace(found, periods={pk: found.periods[pk] for pk in period_ids})
    wallet = found.wallet
    units_before = {pk: p.units_used for pk, p in found.periods.items()}
    moves = _counters_move(rows=rows, locked=found.periods, periods=periods, balance=wallet.balance)
    if moves.late:
        late_credits, late_usd = _late_usage_record(rows=moves.late, locked=found.periods, periods=periods, at=at)
        moves.balance -= late_credits
        moves.credits += late_credits
        moves.usd += late_usd
    counted = _periods_counted(locked=found.periods, periods=periods)
    if moves.over_limit:
        UsageEvent.objects.filter(pk__in=moves.over_limit).update(over_limit=True)
    writes = _Writes(account=account, batch_id=batch_id, rows=rows, at=at, counted=counted, wallet=wallet,
                     moves=moves)  # fmt: skip
    raw = raw_sql_enabled()
    if raw:
        held = _held_of(rows, locked.held if locked is not None else _reservations_read(account, rows))
    else:
        held = _counters_settle_and_rollup(account=account, rows=rows, at=at, counted=counted)
    over_reservation, released = _over_reservation(rows, held), _released(held)
    posting = writes.in_one_round_trip(released=released) if raw else writes.one_by_one(released=released)
    if posting is not None:
        # a debit that crosses below the account's recharge threshold queues an off-session top-up on commit
        auto_recharge_check(account=account, balance_before=wallet.balance, balance_after=posting.balance)
    crossing = _crossing(
        periods={pk: (units_before[pk], p.units_used, p.included_units, periods.terms[pk])
                 for pk, p in found.periods.items()},
        # before this call's hold too, so a drop the hold made at authorize time is seen now
        available_before=wallet.balance - (wallet.held - released),
        available_after=moves.balance - (wallet.held - released),
        low_balance_threshold=found.low_balance_threshold,
    )  # fmt: skip
    if crossing:
        from usage.tasks import alerts_check_task

        transaction.on_commit(lambda: alerts_check_task.delay(account.pk))
    return {r.request_id for r in over_reservation}


def _reservations_read(account: Account, rows: list[_Row]) -> Held:
    """The active reservations of the rows' requests, under the account's lock (the careful path, whose insert's
    round trip locked nothing)."""
    statement = reservations_active_statement(account_id=account.pk, request_ids=[r.request_id for r in rows])
    (found,) = statements_run(statement)
    return {request_id: (credits, units) for request_id, credits, units in found}


def _held_of(rows: list[_Row], held: Held) -> Held:
    """Those of the rows this batch inserted (a duplicate's reservation was settled when it was recorded)."""
    new = {r.request_id for r in rows}
    return {request_id: pair for request_id, pair in held.items() if request_id in new}


def _released(held: Held) -> Decimal:
    return sum((credits for credits, _ in held.values()), Decimal(0))


def _over_reservation(rows: list[_Row], held: Held) -> list[_Row]:
    """The rows that used more units than their reservation authorized: flagged now, inside the transaction."""
    over = [r for r in rows if r.request_id in held and r.units > held[r.request_id][1]]
    if over:
        UsageEvent.objects.filter(pk__in=[r.pk for r in over]).update(over_reservation=True)
    return over


@dataclass
class _Writes:
    """What a batch writes once its moves are counted: the periods' counters, the settled reservations, the
    rollups, and the wallet's debit (a ledger entry) or the release of what the reservations held."""

    account: Account
    batch_id: uuid.UUID
    rows: list[_Row]
    at: datetime
    counted: list[BillingPeriod]
    wallet: Wallet
    moves: _Moves

    def _posting_needed(self) -> bool:
        return self.moves.credits > 0

    def _reason(self) -> str:
        return f"{len(self.rows)} usage events"

    def in_one_round_trip(self, *, released: Decimal) -> Posting | None:
        """PostgreSQL: every write in one round trip, which carries the transaction's COMMIT (when the batch's
        transaction is its own: transaction_in_round_trips). The reservations were read under the account's lock,
        so the settle frees exactly what `released` says."""
        statements = [period_counters_statement(p) for p in self.counted]
        statements.append(reservations_settle_and_rollup_statement(
            account_id=self.account.pk, request_ids=[r.request_id for r in self.rows], at=self.at,
            buckets=_rollup_buckets(self.rows),
        ))  # fmt: skip
        posted = None
        if self._posting_needed():
            statement, posted = wallet_post_statement(
                wallet=self.wallet, kind="usage", credits=-self.moves.credits, reference=f"usage:{self.batch_id}",
                usd_amount=-self.moves.usd, reason=self._reason(), at=self.at, release_held=released,
            )  # fmt: skip
            statements.append(statement)
        elif released:
            statements.append(wallet_held_release_statement(wallet=self.wallet, credits=released))
        results = statements_run(*statements, commit=True)
        return posted(results[-1]) if posted is not None else None

    def one_by_one(self, *, released: Decimal) -> Posting | None:
        """Elsewhere (the counters, reservations and rollups were written by _counters_settle_and_rollup)."""
        if self._posting_needed():
            return wallet_post(
                wallet=self.wallet, release_held=released, account=self.account, kind="usage",
                credits=-self.moves.credits, reference=f"usage:{self.batch_id}", usd_amount=-self.moves.usd,
                reason=self._reason(), at=self.at,
            )  # fmt: skip
        if released:
            wallet_held_release(wallet=self.wallet, credits=released)
        return None


def _counters_move(
    *, rows: list[_Row], locked: dict[int, BillingPeriod], periods: _Periods, balance: Decimal
) -> _Moves:
    """Add each event to its open period's counters, in the order they happened; on credit plans, what lies beyond
    the included credits comes from the wallet. Events of closed periods are set apart as late usage."""
    moves = _Moves(balance=balance)
    open_status = BillingPeriod.Status.OPEN
    for row in sorted(rows, key=lambda r: (r.occurred_at, r.pk)):
        period = locked[row.period_id]
        if period.status != open_status:
            moves.late.append(row)  # checked under the period's lock: a close that committed first makes it late
            continue
        terms = periods.terms[row.period_id]
        before = period.units_used
        period.units_used += row.units
        period.input_tokens += row.input_tokens
        period.output_tokens += row.output_tokens
        period.messages += 1
        period.provider_cost_usd += row.cost_usd
        period.charge_usd += row.charge_usd
        period.credits_used += row.credits
        included = period.included_units
        if debits_wallet(terms):
            beyond = row.units if included is None else max(Decimal(0), period.units_used - max(included, before))
            if beyond > 0:
                moves.balance -= beyond
                moves.credits += beyond
                moves.usd += row.charge_usd * beyond / row.units if row.units else Decimal(0)
                if moves.balance < 0:
                    moves.over_limit.append(row.pk)
        elif included is not None and period.units_used > quota_allowed_units(terms, included):
            moves.over_limit.append(row.pk)
    return moves


def _periods_counted(*, locked: dict[int, BillingPeriod], periods: _Periods) -> list[BillingPeriod]:
    """Each open period, its counters moved, with its overage so far set: what is to be written."""
    counted = []
    for period in locked.values():
        if period.status != BillingPeriod.Status.OPEN:
            continue
        terms = periods.terms[period.pk]
        charge = plan_charge(terms, period.units_used)
        period.overage_units = charge.overage_units if not debits_wallet(terms) else Decimal(0)
        period.overage_usd = max(Decimal(0), charge.total.amount - charge.base.amount)
        counted.append(period)
    return counted


def _late_usage_record(
    *, rows: list[_Row], locked: dict[int, BillingPeriod], periods: _Periods, at: datetime
) -> tuple[Decimal, Decimal]:
    """Events of closed periods: flagged late and added to each period's late-usage adjustment, which the next
    close bills. On wallet-debiting plans the credits beyond the period's included credits are debited now.
    Returns the (credits, usd) to debit."""
    credits = usd = Decimal(0)
    for period_id in sorted({r.period_id for r in rows}):
        own = [r for r in rows if r.period_id == period_id]
        counters = LateCounters(
            units=sum((r.units for r in own), Decimal(0)), messages=len(own),
            input_tokens=sum(r.input_tokens for r in own), output_tokens=sum(r.output_tokens for r in own),
            provider_cost_usd=sum((r.cost_usd for r in own), Decimal(0)),
            charge_usd=sum((r.charge_usd for r in own), Decimal(0)), credits_used=sum((r.credits for r in own), Decimal(0)),
        )  # fmt: skip
        units = late_usage_add(period=locked[period_id], counters=counters, at=at)
        if not debits_wallet(periods.terms[period_id]):
            continue
        running = units.before
        for row in own:
            after = running + row.units
            beyond = row.units if units.included is None else max(Decimal(0), after - max(units.included, running))
            running = after
            if beyond > 0:
                credits += beyond
                usd += row.charge_usd * beyond / row.units if row.units else Decimal(0)
    UsageEvent.objects.filter(pk__in=[r.pk for r in rows]).update(late=True)
    return credits, usd


def _crossing(
    *,
    periods: dict[int, tuple[Decimal, Decimal, Decimal | None, PlanTermsVersion]],
    available_before: Decimal,
    available_after: Decimal,
    low_balance_threshold: Decimal,
) -> Crossing:
    """Whether this batch moved the account past an alert line, so the alert check runs only when it matters."""
    quota = overage = False
    for before, after, included, terms in periods.values():
        before_pct, after_pct = percent(before, included), percent(after, included)
        if before_pct is None or after_pct is None:
            continue
        quota = quota or any(before_pct < t <= after_pct for t in terms.alert_thresholds)
        overage = overage or before_pct <= 100 < after_pct
    low = low_balance_threshold > 0 and available_before >= low_balance_threshold > available_after
    return Crossing(quota=quota, overage=overage, low_balance=low)


def _counters_settle_and_rollup(
    *, account: Account, rows: list[_Row], at: datetime, counted: list[BillingPeriod]
) -> Held:
    """Write the periods' counters, settle the active reservations of these requests and add the batch to the
    daily rollups, through the ORM (SQLite, GATE_RAW_SQL off). Answers what each settled reservation held."""
    request_ids = [r.request_id for r in rows]
    for period in counted:
        period_counters_save(period=period)
    settled = list(
        Reservation.objects.select_for_update()
        .filter(account=account, request_id__in=request_ids, status=Reservation.Status.ACTIVE)
        .values_list("pk", "request_id", "held_credits", "estimated_units")
    )
    if settled:
        Reservation.objects.filter(pk__in=[row[0] for row in settled]).update(
            status=Reservation.Status.SETTLED, closed_at=at
        )
    _rollup(rows)
    return {request_id: (credits, units) for _, request_id, credits, units in settled}


def _rollup_buckets(rows: list[_Row]) -> list[RollupBucket]:
    """The batch summed per (account, day, model, operation), in that order."""
    buckets: dict[tuple[int, Any, str, str], list[Any]] = defaultdict(
        lambda: [0, 0, 0, Decimal(0), Decimal(0), Decimal(0)]
    )
    for row in rows:
        bucket = buckets[(row.account_id, row.occurred_at.astimezone(UTC).date(), row.model_id, row.operation_type)]
        bucket[0] += 1
        bucket[1] += row.input_tokens
        bucket[2] += row.output_tokens
        bucket[3] += row.cost_usd
        bucket[4] += row.charge_usd
        bucket[5] += row.credits
    return [(*key, *sums) for key, sums in sorted(buckets.items())]


def _rollup(rows: list[_Row]) -> None:
    """Add the batch to the daily rollups: one upsert per (account, day, model, operation)."""
    table = DailyUsage._meta.db_table
    ops = connection.ops
    adapt = ops.adapt_decimalfield_value
    sql = (
        f"INSERT INTO {table} (account_id, day, model_id, operation_type, events, input_tokens, output_tokens, "  # noqa: S608
        "cost_usd, charge_usd, credits) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (account_id, day, model_id, operation_type) DO UPDATE SET "
        f"events = {table}.events + excluded.events, "
        f"input_tokens = {table}.input_tokens + excluded.input_tokens, "
        f"output_tokens = {table}.output_tokens + excluded.output_tokens, "
        f"cost_usd = {table}.cost_usd + excluded.cost_usd, "
        f"charge_usd = {table}.charge_usd + excluded.charge_usd, "
        f"credits = {table}.credits + excluded.credits"
    )
    params = [
        (account_id, ops.adapt_datefield_value(day), model_id, operation, events, tokens_in, tokens_out,
         adapt(cost, 28, 12), adapt(charge, 28, 12), adapt(credits, 28, 12))
        for account_id, day, model_id, operation, events, tokens_in, tokens_out, cost, charge, credits
        in _rollup_buckets(rows)
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
