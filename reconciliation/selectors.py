"""Reads for reconciliation: our rated costs per bucket, runs and their lines, and the admin reports."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from billing.models import Account
from core.decimals import decimal_string
from pricing.models import AIModel, ModelPrice
from reconciliation.matching import Tokens
from reconciliation.models import ReconciliationLine, ReconciliationRun
from usage.models import DailyUsage, UsageEvent

ZERO = Decimal(0)
RATE_PLACES = Decimal("0.0001")


# --- our side of a run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectMap:
    """Provider project (or workspace) ids -> the account they belong to, from Account.provider_project_ids.

    A project listed by two accounts belongs to the older one.
    """

    account_of_project: dict[str, int]
    projects_of_account: dict[int, tuple[str, ...]]

    def label(self, account_id: int) -> str:
        return "+".join(self.projects_of_account.get(account_id, ())) or f"account {account_id}"


def project_map() -> ProjectMap:
    account_of_project: dict[str, int] = {}
    projects_of_account: dict[int, tuple[str, ...]] = {}
    for account_id, projects in Account.objects.order_by("id").values_list("id", "provider_project_ids"):
        names = tuple(sorted({str(p).strip() for p in projects or () if str(p).strip()}))
        if not names:
            continue
        projects_of_account[account_id] = names
        for name in names:
            account_of_project.setdefault(name, account_id)
    return ProjectMap(account_of_project=account_of_project, projects_of_account=projects_of_account)


@dataclass(frozen=True, slots=True)
class UsageBucket:
    day: date
    model_id: str
    account_id: int | None  # None when not grouped by account
    cost_usd: Decimal
    tokens: Tokens


def usage_cost_buckets(
    *, start: datetime, end: datetime, model_ids: Iterable[str], by_account: bool
) -> list[UsageBucket]:
    """Our rated provider cost (not the customer charge) and tokens of the events in [start, end), per UTC day x
    model (x account): one aggregate query."""
    names = ["day", "model_id", *(["account_id"] if by_account else [])]
    rows = (
        UsageEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end, model_id__in=list(model_ids))
        .annotate(day=TruncDate("occurred_at", tzinfo=UTC))
        .values(*names)
        .annotate(
            cost=Sum("cost_usd"),
            input=Sum("input_tokens"),
            cached=Sum("cached_input_tokens"),
            cache_write=Sum("cache_write_input_tokens") + Sum("cache_write_1h_input_tokens"),
            output=Sum("output_tokens"),
            events=Count("id"),
        )
        .order_by()
    )
    return [
        UsageBucket(
            day=row["day"],
            model_id=row["model_id"],
            account_id=row.get("account_id"),
            cost_usd=row["cost"] or ZERO,
            tokens=Tokens(
                input=row["input"] or 0,
                cached=row["cached"] or 0,
                output=row["output"] or 0,
                events=row["events"],
                cache_write=row["cache_write"] or 0,
            ),
        )
        for row in rows
    ]


def catalog_model(*, model_id: str) -> AIModel | None:
    return AIModel.objects.filter(model_id=model_id).first()


def catalog_price_in_force(*, model: AIModel, at: datetime) -> ModelPrice | None:
    """The model's price version in force at `at`, as stored (cached input may be empty: the input price)."""
    return ModelPrice.objects.filter(model=model, effective_from__lte=at).order_by("-effective_from", "-id").first()


# --- runs -------------------------------------------------------------------------------------------------------------


def run_earlier_same_file(*, sha256: str) -> ReconciliationRun | None:
    """The latest run of a file with this SHA-256, whatever its outcome."""
    return ReconciliationRun.objects.filter(sha256=sha256).order_by("-started_at", "-id").first()


def run_completed_same_file(*, sha256: str) -> ReconciliationRun | None:
    return (
        ReconciliationRun.objects.filter(sha256=sha256, status=ReconciliationRun.Status.COMPLETED)
        .order_by("-started_at", "-id")
        .first()
    )


def run_by_id(*, run_id: int) -> ReconciliationRun | None:
    return ReconciliationRun.objects.select_related("actor", "same_file_as").filter(pk=run_id).first()


def decimal_text(value: Decimal | None) -> str | None:
    """The API's decimal string (core.decimals), or None for a value the run does not have (a match rate of no rows)."""
    return None if value is None else decimal_string(value)


def run_summary(run: ReconciliationRun) -> dict[str, Any]:
    """The run summary of CONTRACT.md, plus `not_in_export`."""
    return {
        "run_id": run.pk,
        "source": run.source,
        "rows": run.rows,
        "matched": run.matched,
        "discrepancy": run.discrepancy,
        "not_found": run.not_found,
        "errors": run.errors,
        "total_calculated_usd": decimal_text(run.total_calculated_usd),
        "total_actual_usd": decimal_text(run.total_actual_usd),
        "difference_usd": decimal_text(run.difference_usd),
        "match_rate": decimal_text(run.match_rate),
        "not_in_export": run.not_in_export,
    }


def run_detail(run: ReconciliationRun) -> dict[str, Any]:
    """The summary with what the run read and how: file, hash, period, status, settings and timing."""
    return {
        **run_summary(run),
        "status": run.status,
        "failure": run.failure,
        "file_name": run.file_name,
        "file_format": run.file_format,
        "sha256": run.sha256,
        "size_bytes": run.size_bytes,
        "same_file_as_run_id": run.same_file_as_id,
        "trigger": run.trigger,
        "actor": run.actor.get_username() if run.actor else None,
        "as_of": run.as_of.isoformat(),
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_ms": run.duration_ms,
        "period_start": run.period_start.isoformat() if run.period_start else None,
        "period_end": run.period_end.isoformat() if run.period_end else None,
        "empty_buckets": run.empty_buckets,
        "events_updated": run.events_updated,
        "settings": run.options,
    }


def run_lines(*, run: ReconciliationRun, status: str | None = None) -> QuerySet[ReconciliationLine]:
    lines = ReconciliationLine.objects.filter(run=run)
    return (lines.filter(status=status) if status else lines).order_by("id")


LINE_EXPORT_FIELDS = (
    "key", "status", "calculated_usd", "actual_usd", "difference_usd", "reason", "reason_code", "line_number",
    "day", "model_name", "model_id", "project", "request_id", "usage_event_id", "currency", "events",
    "input_tokens", "cached_input_tokens", "output_tokens", "provider_input_tokens",
    "provider_cached_input_tokens", "provider_output_tokens", "implied_input_per_million",
    "implied_cached_input_per_million", "implied_output_per_million",
)  # fmt: skip


def line_as_json(line: ReconciliationLine) -> dict[str, Any]:
    """A line as the API shows it: money as decimal strings, the day as ISO text."""
    values: dict[str, Any] = {}
    for name in LINE_EXPORT_FIELDS:
        value = getattr(line, name)
        if isinstance(value, Decimal):
            value = decimal_text(value)
        elif isinstance(value, date):
            value = value.isoformat()
        values[name] = value
    return values


def run_large_discrepancies(*, run: ReconciliationRun, above: Decimal, limit: int = 10) -> list[ReconciliationLine]:
    """Discrepancy lines whose |difference| exceeds `above`, largest first (at most `limit`)."""
    lines = run_lines(run=run, status=ReconciliationLine.Status.DISCREPANCY).filter(
        Q(difference_usd__gt=above) | Q(difference_usd__lt=-above)
    )
    return sorted(lines[: limit * 10], key=lambda line: abs(line.difference_usd or ZERO), reverse=True)[:limit]


def staff_emails() -> list[str]:
    users = get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


# --- reports ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarginRow:
    label: str
    charge_usd: Decimal
    cost_usd: Decimal
    events: int
    account_id: int | None = None

    @property
    def margin_usd(self) -> Decimal:
        return self.charge_usd - self.cost_usd

    @property
    def margin_pct(self) -> Decimal | None:
        if not self.charge_usd:
            return None
        return (self.margin_usd / self.charge_usd * 100).quantize(Decimal("0.1"))


def _margin_rows(rows: Iterable[Any], label: str) -> list[MarginRow]:
    return [
        MarginRow(
            label=str(row[label]),
            charge_usd=row["charge"] or ZERO,
            cost_usd=row["cost"] or ZERO,
            events=row["events"] or 0,
            account_id=row.get("account_id"),
        )
        for row in rows
    ]


def margin_by_model(*, start: date, end: date) -> list[MarginRow]:
    """Customer charge minus provider cost per model over the UTC days [start, end], from the daily rollups."""
    rows = (
        DailyUsage.objects.filter(day__gte=start, day__lte=end)
        .values("model_id")
        .annotate(charge=Sum("charge_usd"), cost=Sum("cost_usd"), events=Sum("events"))
        .order_by("model_id")
    )
    return sorted(_margin_rows(rows, "model_id"), key=lambda r: r.margin_usd, reverse=True)


def margin_by_account(*, start: date, end: date) -> list[MarginRow]:
    rows = (
        DailyUsage.objects.filter(day__gte=start, day__lte=end)
        .values("account_id", "account__name")
        .annotate(charge=Sum("charge_usd"), cost=Sum("cost_usd"), events=Sum("events"))
        .order_by("account_id")
    )
    return sorted(_margin_rows(rows, "account__name"), key=lambda r: r.margin_usd, reverse=True)


def margin_total(rows: Iterable[MarginRow]) -> MarginRow:
    rows = list(rows)
    return MarginRow(
        label="Total",
        charge_usd=sum((r.charge_usd for r in rows), ZERO),
        cost_usd=sum((r.cost_usd for r in rows), ZERO),
        events=sum(r.events for r in rows),
    )


def month_starts(*, last: date, count: int) -> list[date]:
    """The first days of the `count` months ending with `last`'s month, oldest first."""
    months = []
    year, month = last.year, last.month
    for _ in range(count):
        months.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def _month_key(day: date) -> date:
    return day.replace(day=1)


def margin_by_month(*, months: list[date]) -> list[MarginRow]:
    """Charge, cost and margin per month (label YYYY-MM) for the given month starts."""
    if not months:
        return []
    last = months[-1]
    end = date(last.year + last.month // 12, last.month % 12 + 1, 1)
    sums: dict[date, list[Decimal | int]] = {m: [ZERO, ZERO, 0] for m in months}
    rows = (
        DailyUsage.objects.filter(day__gte=months[0], day__lt=end)
        .values("day")
        .annotate(charge=Sum("charge_usd"), cost=Sum("cost_usd"), events=Sum("events"))
        .order_by()
    )
    for row in rows:
        bucket = sums.get(_month_key(row["day"]))
        if bucket is not None:
            bucket[0] += row["charge"] or ZERO
            bucket[1] += row["cost"] or ZERO
            bucket[2] += row["events"] or 0
    return [
        MarginRow(label=f"{m:%Y-%m}", charge_usd=Decimal(v[0]), cost_usd=Decimal(v[1]), events=int(v[2]))
        for m, v in sums.items()
    ]


@dataclass(frozen=True, slots=True)
class TrendRow:
    month: date
    actual_usd: Decimal
    calculated_usd: Decimal
    runs: int

    @property
    def difference_usd(self) -> Decimal:
        return self.actual_usd - self.calculated_usd


def provider_trend(*, months: list[date]) -> list[TrendRow]:
    """Per month: what the providers billed against what we calculated, from completed runs of the cost files
    (usage exports carry no amounts of their own). Where several runs of one source cover the same day, the latest
    counts, so a file reconciled twice is not counted twice."""
    if not months:
        return []
    last = months[-1]
    end = date(last.year + last.month // 12, last.month % 12 + 1, 1)
    rows = (
        ReconciliationLine.objects.filter(
            run__status=ReconciliationRun.Status.COMPLETED, day__gte=months[0], day__lt=end
        )
        .exclude(run__source=ReconciliationRun.Source.OPENAI_USAGE)
        .exclude(status=ReconciliationLine.Status.ERROR)
        .values("run_id", "run__source", "run__started_at", "day")
        .annotate(actual=Sum("actual_usd"), calculated=Sum("calculated_usd"))
        .order_by()
    )
    latest: dict[tuple[str, date], Any] = {}
    for row in rows:
        if row["day"] is None:
            continue
        key = (row["run__source"], row["day"])
        held = latest.get(key)
        if held is None or (row["run__started_at"], row["run_id"]) > (held["run__started_at"], held["run_id"]):
            latest[key] = row
    sums: dict[date, list[Any]] = {m: [ZERO, ZERO, set()] for m in months}
    for row in latest.values():
        bucket = sums.get(_month_key(row["day"]))
        if bucket is not None:
            bucket[0] += row["actual"] or ZERO
            bucket[1] += row["calculated"] or ZERO
            bucket[2].add(row["run_id"])
    return [TrendRow(month=m, actual_usd=v[0], calculated_usd=v[1], runs=len(v[2])) for m, v in sums.items()]


def runs_recent(*, limit: int = 20) -> list[ReconciliationRun]:
    return list(ReconciliationRun.objects.select_related("actor").order_by("-started_at", "-id")[:limit])


def run_reason_counts(*, run: ReconciliationRun) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    rows = (
        ReconciliationLine.objects.filter(run=run, status=ReconciliationLine.Status.DISCREPANCY)
        .values("reason_code")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["reason_code"] or "-"] += row["n"]
    return dict(counts)
