"""Recording usage: rate each event, store the batch once, move the counters and the wallet in one transaction.

A batch of up to USAGE_MAX_BATCH events is inserted in bulk, ignoring request ids the account already has; the
events this batch inserted are told apart by their `batch_id`. Then, under the account's locks, each touched
period's counters move by one update, the wallet by one ledger entry (reference `usage:<batch id>`), reservations
of the recorded requests are settled, and the daily rollups are upserted. A refused event is kept in
RejectedEvent with its code. Usage that happened is always recorded, even past the quota or below zero credits:
such events are flagged `over_limit` and the next authorization is refused.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.models import Account, BillingPeriod, Wallet
from billing.services.periods import period_current
from billing.services.topups import auto_recharge_check
from billing.services.wallet import wallet_lock, wallet_post
from pricing.catalog import CatalogSnapshot, PlanTermsVersion
from pricing.errors import PricingError
from pricing.models import PlanUnit
from pricing.rating import Rating, plan_charge, rate_usage
from pricing.selectors import catalog_snapshot, plan_terms_by_id
from usage.event_dimensions import event_dimension_columns
from usage.events import EventRefused, ParsedEvent, event_parse, request_id_of
from usage.models import DailyUsage, RejectedEvent, Reservation, UsageEvent
from usage.services.alerts import Crossing, percent

RECORDED, DUPLICATE, REJECTED = "recorded", "duplicate", "rejected"


@dataclass
class EventResult:
    request_id: str
    status: str
    cost_usd: Decimal | None = None
    charge_usd: Decimal | None = None
    credits: Decimal | None = None
    error: dict[str, str] | None = None


@dataclass
class BatchResult:
    batch_id: uuid.UUID
    results: list[EventResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def event_units(*, unit: str, line_input: int, line_output: int, credits: Decimal) -> Decimal:
    """What one event counts against a plan: tokens = input + output, messages = 1, credits = its credits."""
    if unit == PlanUnit.TOKENS:
        return Decimal(line_input + line_output)
    if unit == PlanUnit.MESSAGES:
        return Decimal(1)
    return credits


def debits_wallet(terms: PlanTermsVersion) -> bool:
    """Credit plans spend from the wallet beyond their included credits (all of it when none are included)."""
    return terms.unit == PlanUnit.CREDITS


@dataclass
class _Periods:
    """The open period each event belongs to: the one containing it, or the current one when that has closed."""

    account: Account
    received_at: datetime
    snapshot: CatalogSnapshot
    by_id: dict[int, BillingPeriod] = field(default_factory=dict)
    terms: dict[int, PlanTermsVersion] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.current = self._remember(period_current(account=self.account, as_of=self.received_at))

    def _remember(self, period: BillingPeriod) -> BillingPeriod:
        if period.pk not in self.by_id:
            self.by_id[period.pk] = period
            self.terms[period.pk] = plan_terms_by_id(terms_id=period.terms_id, snapshot=self.snapshot)
        return self.by_id[period.pk]

    def for_time(self, at: datetime) -> BillingPeriod:
        if self.current.start <= at < self.current.end:
            return self.current
        for period in self.by_id.values():
            if period.start <= at < period.end:
                return period
        earlier = (
            BillingPeriod.objects.select_related("terms__plan", "plan")
            .filter(account=self.account, start__lte=at, end__gt=at, status=BillingPeriod.Status.OPEN)
            .first()
        )
        return self._remember(earlier) if earlier is not None else self.current


def _refuse(raw: Any, code: str, message: str) -> EventResult:
    return EventResult(request_id=request_id_of(raw), status=REJECTED, error={"code": code, "message": message})


def _rate(parsed: ParsedEvent, snapshot: CatalogSnapshot, terms: PlanTermsVersion) -> Rating:
    return rate_usage(parsed.line, snapshot, tier=terms.plan_code, terms=terms)


@transaction.atomic
def usage_record_batch(
    *,
    account: Account,
    raw_events: list[Any],
    received_at: datetime | None = None,
    ip: str | None = None,
    user_agent: str = "",
) -> BatchResult:
    """Record a batch of raw events for one account; answer each with recorded, duplicate or rejected."""
    received_at = received_at or timezone.now()
    batch = BatchResult(batch_id=uuid.uuid4())
    snapshot = catalog_snapshot()
    periods = _Periods(account=account, received_at=received_at, snapshot=snapshot)
    late_window = timedelta(days=settings.USAGE_LATE_EVENT_WINDOW_DAYS)
    future_skew = timedelta(seconds=settings.USAGE_FUTURE_SKEW_SECONDS)

    rows: list[_Row] = []
    first_seen: set[str] = set()
    rejected: list[RejectedEvent] = []
    for raw in raw_events:
        try:
            parsed = event_parse(
                raw,
                received_at=received_at,
                late_window=late_window,
                future_skew=future_skew,
                metadata_max_bytes=settings.USAGE_METADATA_MAX_BYTES,
            )
            period = periods.for_time(parsed.line.occurred_at)
            terms = periods.terms[period.pk]
            rating = _rate(parsed, snapshot, terms)
        except (EventRefused, PricingError) as exc:
            result = _refuse(raw, exc.code, exc.message)
            batch.results.append(result)
            rejected.append(
                RejectedEvent(
                    account=account,
                    request_id=result.request_id,
                    payload=raw if isinstance(raw, dict) else {"raw": raw},
                    error_code=exc.code,
                    error_message=exc.message,
                    received_at=received_at,
                    ip=ip,
                    user_agent=user_agent[:300],
                )
            )
            continue
        batch.results.append(EventResult(request_id=parsed.request_id, status=RECORDED))
        if parsed.request_id in first_seen:
            continue  # repeated inside the batch: it counts once, and answers duplicate below
        first_seen.add(parsed.request_id)
        line = parsed.line
        rows.append(
            _Row(
                account_id=account.pk,
                period_id=period.pk,
                request_id=parsed.request_id,
                batch_id=batch.batch_id,
                model_id=rating.model_id,
                model_requested=line.model,
                input_tokens=line.input_tokens,
                output_tokens=line.output_tokens,
                cached_input_tokens=line.cached_input_tokens,
                reasoning_tokens=line.reasoning_tokens,
                images=line.images,
                features=parsed.features_raw,
                multiplier=line.multiplier,
                operation_type=parsed.operation_type,
                user=parsed.user,
                conversation_id=parsed.conversation_id,
                metadata=parsed.metadata,
                occurred_at=line.occurred_at,
                received_at=received_at,
                cost_usd=rating.cost_usd,
                charge_usd=rating.charge_usd,
                credits=rating.credits,
                units=event_units(
                    unit=terms.unit,
                    line_input=line.input_tokens,
                    line_output=line.output_tokens,
                    credits=rating.credits,
                ),
                breakdown=rating.breakdown,
                price_version_id=rating.price_version_id or None,
                feature_version_ids=rating.feature_version_ids,
                credits_rate=rating.credits_rate,
                plan_code=terms.plan_code,
                ip=ip or None,  # as Django stores a blank address: the column is inet
                user_agent=user_agent[:300],
                **event_dimension_columns(line, provider_request_id=parsed.provider_request_id),
            )
        )
    if rejected:
        RejectedEvent.objects.bulk_create(rejected)
    if rows:
        stored = _events_insert(account=account, rows=rows, batch_id=batch.batch_id)
        new_rows = [r for r in rows if stored[r.request_id]["batch_id"] == batch.batch_id]
        for row in new_rows:
            row.pk = stored[row.request_id]["id"]
        if new_rows:
            # the ledger and reservations move now, even when the events were received earlier (a replay)
            _apply(account=account, batch_id=batch.batch_id, rows=new_rows, periods=periods, at=timezone.now())
        answered: set[str] = set()
        for result in batch.results:
            if result.status != RECORDED:
                continue
            first = stored[result.request_id]
            is_new = first["batch_id"] == batch.batch_id and result.request_id not in answered
            answered.add(result.request_id)
            result.status = RECORDED if is_new else DUPLICATE
            result.cost_usd, result.charge_usd, result.credits = (
                first["cost_usd"],
                first["charge_usd"],
                first["credits"],
            )
    return batch


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
    over_limit: bool = False
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


_FIELDS = [f for f in UsageEvent._meta.concrete_fields if not f.primary_key]
_ATTNAMES = [f.attname for f in _FIELDS]
_COLUMNS = ", ".join(f'"{f.column}"' for f in _FIELDS)
# JSON columns travel as text, encoded the way the model field encodes them (one encoder each, made once)
_JSON_ENCODE = {
    i: (getattr(f, "encoder", None) or json.JSONEncoder)().encode
    for i, f in enumerate(_FIELDS)
    if f.get_internal_type() == "JSONField"
}
_row_values = operator.attrgetter(*_ATTNAMES)
_STORED = ("id", "request_id", "batch_id", "cost_usd", "charge_usd", "credits")
COPY_FROM_ROWS = 20  # on PostgreSQL, a batch this large goes through COPY; a smaller one in one INSERT


def _db_values(row: _Row) -> list[Any]:
    values = list(_row_values(row))
    for i, encode in _JSON_ENCODE.items():
        value = values[i]
        values[i] = "{}" if value == {} else "[]" if value == [] else encode(value)
    return values


def _events_insert(*, account: Account, rows: list[_Row], batch_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """Insert the rows, skipping request ids the account already has; answer the first result of each request id.

    The unique (account, request_id) constraint decides which rows are new. On PostgreSQL one
    `INSERT ... ON CONFLICT DO NOTHING RETURNING` names the rows inserted now (fed by COPY into a temporary table
    for larger batches), so only request ids recorded before are read back. Elsewhere (SQLite) the ORM inserts
    with ignore_conflicts and the batch is read back.
    """
    if connection.vendor != "postgresql":
        UsageEvent.objects.bulk_create(
            [UsageEvent(**{name: getattr(r, name) for name in _ATTNAMES}) for r in rows],
            ignore_conflicts=True,
            batch_size=500,
        )
        found = UsageEvent.objects.filter(account=account, request_id__in=[r.request_id for r in rows])
        return {e["request_id"]: e for e in found.values(*_STORED)}
    table = UsageEvent._meta.db_table
    conflict = "ON CONFLICT (account_id, request_id) DO NOTHING RETURNING id, request_id"
    staged = len(rows) >= COPY_FROM_ROWS
    with connection.cursor() as cursor:
        if not staged:
            one = "(" + ", ".join(["%s"] * len(_ATTNAMES)) + ")"
            cursor.execute(
                f"INSERT INTO {table} ({_COLUMNS}) VALUES {', '.join([one] * len(rows))} {conflict}",  # noqa: S608 - names from the model
                [value for row in rows for value in _db_values(row)],
            )
        else:
            cursor.execute(
                f"CREATE TEMPORARY TABLE usage_event_stage ON COMMIT DROP AS SELECT {_COLUMNS} FROM {table} WITH NO DATA"  # noqa: S608 - names from the model
            )
            with cursor.cursor.copy(f"COPY usage_event_stage ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(_db_values(row))
            cursor.execute(f"INSERT INTO {table} ({_COLUMNS}) SELECT {_COLUMNS} FROM usage_event_stage {conflict}")  # noqa: S608 - names from the model
        inserted = {request_id: pk for pk, request_id in cursor.fetchall()}
        if staged:
            cursor.execute("DROP TABLE usage_event_stage")  # a second batch in the same transaction makes its own
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
    return stored


def _apply(*, account: Account, batch_id: uuid.UUID, rows: list[_Row], periods: _Periods, at: datetime) -> None:
    """Move counters, wallet, reservations and rollups for the events this batch inserted, under the locks."""
    low_balance_threshold = (
        Account.objects.select_for_update().filter(pk=account.pk).values_list("low_balance_threshold", flat=True).get()
    )
    wallet: Wallet = wallet_lock(account=account)
    period_ids = sorted({r.period_id for r in rows})
    locked = {p.pk: p for p in BillingPeriod.objects.select_for_update().filter(pk__in=period_ids).order_by("pk")}
    units_before = {pk: p.units_used for pk, p in locked.items()}

    balance = wallet.balance
    wallet_credits = Decimal(0)
    wallet_usd = Decimal(0)
    over_limit: list[int] = []
    for row in sorted(rows, key=lambda r: (r.occurred_at, r.pk)):
        period = locked[row.period_id]
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
            # included credits are used first; what lies beyond them comes from the wallet
            beyond = row.units if included is None else max(Decimal(0), period.units_used - max(included, before))
            if beyond > 0:
                balance -= beyond
                wallet_credits += beyond
                wallet_usd += row.charge_usd * beyond / row.units if row.units else Decimal(0)
                if balance < 0:
                    over_limit.append(row.pk)
        elif included is not None and period.units_used > quota_allowed_units(terms, included):
            over_limit.append(row.pk)
    for period in locked.values():
        terms = periods.terms[period.pk]
        charge = plan_charge(terms, period.units_used)
        period.overage_units = charge.overage_units if not debits_wallet(terms) else Decimal(0)
        period.overage_usd = max(Decimal(0), charge.total.amount - charge.base.amount)
        period.save(
            update_fields=[
                "units_used",
                "input_tokens",
                "output_tokens",
                "messages",
                "provider_cost_usd",
                "charge_usd",
                "credits_used",
                "overage_units",
                "overage_usd",
            ]
        )
    if over_limit:
        UsageEvent.objects.filter(pk__in=over_limit).update(over_limit=True)
    released = _settle_reservations(account=account, request_ids=[r.request_id for r in rows], at=at)
    if wallet_credits > 0:
        posting = wallet_post(
            wallet=wallet,
            release_held=released,
            account=account,
            kind="usage",
            credits=-wallet_credits,
            reference=f"usage:{batch_id}",
            usd_amount=-wallet_usd,
            reason=f"{len(rows)} usage events",
            at=at,
        )
        # a debit that crosses below the account's recharge threshold queues an off-session top-up on commit
        auto_recharge_check(account=account, balance_before=wallet.balance, balance_after=posting.balance)
    elif released:
        Wallet.objects.filter(pk=wallet.pk).update(held=F("held") - released)
    _rollup(rows)
    crossing = _crossing(
        periods={pk: (units_before[pk], p.units_used, p.included_units, periods.terms[pk]) for pk, p in locked.items()},
        # before this call's hold too, so a drop the hold made at authorize time is seen now
        available_before=wallet.balance - (wallet.held - released),
        available_after=balance - (wallet.held - released),
        low_balance_threshold=low_balance_threshold,
    )
    if crossing:
        from usage.tasks import alerts_check_task

        transaction.on_commit(lambda: alerts_check_task.delay(account.pk))


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


def quota_allowed_units(terms: PlanTermsVersion, included: Decimal) -> Decimal:
    """Units a quota plan may use before an event is over its limit: the included units, plus the allowed
    overage (unbounded when overage is allowed without a maximum)."""
    if terms.hard_limit or not terms.overage_allowed:
        return included
    if terms.max_overage_pct is None:
        return Decimal("Infinity")
    return included * (1 + terms.max_overage_pct / 100)


def _settle_reservations(*, account: Account, request_ids: list[str], at: datetime) -> Decimal:
    """Settle the active reservations of these requests; answer the credits they held, for the caller to release."""
    if connection.vendor == "postgresql":  # one statement: update and read what was held
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Reservation._meta.db_table} SET status = %s, closed_at = %s "  # noqa: S608 - names from the model
                "WHERE account_id = %s AND status = %s AND request_id = ANY(%s) RETURNING held_credits",
                [Reservation.Status.SETTLED, at, account.pk, Reservation.Status.ACTIVE, request_ids],
            )
            return sum((held for (held,) in cursor.fetchall()), Decimal(0))
    held = list(
        Reservation.objects.select_for_update()
        .filter(account=account, request_id__in=request_ids, status=Reservation.Status.ACTIVE)
        .values_list("pk", "held_credits")
    )
    if held:
        Reservation.objects.filter(pk__in=[pk for pk, _ in held]).update(
            status=Reservation.Status.SETTLED, closed_at=at
        )
    return sum((credits for _, credits in held), Decimal(0))


def _rollup(rows: list[_Row]) -> None:
    """Add the batch to the daily rollups: one upsert per (account, day, model, operation)."""
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
        (
            account_id,
            ops.adapt_datefield_value(day),
            model_id,
            operation,
            events,
            tokens_in,
            tokens_out,
            adapt(cost, 28, 12),
            adapt(charge, 28, 12),
            adapt(credits, 28, 12),
        )
        for (account_id, day, model_id, operation), (events, tokens_in, tokens_out, cost, charge, credits) in sorted(
            buckets.items(), key=lambda item: (item[0][0], item[0][1], item[0][2], item[0][3])
        )
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
