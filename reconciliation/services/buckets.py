"""Matching an aggregate provider export (cost or usage) against our rated costs, bucket by bucket.

The provider's rows are summed while the file streams by, per UTC day x model name x project. Then each bucket is
put at the finest granularity the file offers: a day with a line that names no model is compared as a day total;
otherwise per model (provider names mapped through the catalog's aliases, token-type parts summed); and per project
when any of the file's projects is mapped to an account (Account.provider_project_ids). Our side is one aggregate
query over the events in the file's time range, grouped the same way, on the models of the file's provider only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal

from pricing.catalog import CatalogSnapshot, ModelPriceVersion
from pricing.errors import NoPriceInForce, UnknownModel
from reconciliation.conf import Tolerance
from reconciliation.matching import Comparison, Tokens, compare, tokens_priced, usd
from reconciliation.models import ReconciliationLine
from reconciliation.parsers import (
    OPENAI_USAGE,
    SOURCE_PROVIDER,
    BucketRow,
    EmptyBucket,
    ProviderFile,
    RowError,
    undated_model_name,
)
from reconciliation.selectors import ProjectMap, project_map, usage_cost_buckets
from reconciliation.services.lines import LineDraft, LineWriter

Status = ReconciliationLine.Status
Reason = ReconciliationLine.Reason
ZERO = Decimal(0)
DAY_TOTAL = "*"  # the model key of a bucket compared as a whole day
NO_PROJECT = "*"


@dataclass
class Coverage:
    """What a file covered: its rows and time range."""

    rows: int = 0
    empty_buckets: int = 0
    start: datetime | None = None
    end: datetime | None = None

    def extend(self, start: datetime | None, end: datetime | None) -> None:
        if start is not None and (self.start is None or start < self.start):
            self.start = start
        if end is not None and (self.end is None or end > self.end):
            self.end = end


@dataclass
class _Sums:
    """The provider's rows summed for one bucket."""

    first_line: int
    amount: Decimal | None = None
    parts: dict[str, Decimal] = field(default_factory=dict)
    currencies: set[str] = field(default_factory=set)
    tokens: Tokens | None = None
    names: set[str] = field(default_factory=set)
    projects: set[str] = field(default_factory=set)

    def add_row(self, row: BucketRow) -> None:
        self.first_line = min(self.first_line, row.line)
        self.currencies.add(row.currency)
        if row.model:
            self.names.add(row.model)
        if row.project:
            self.projects.add(row.project)
        if row.amount_usd is not None:
            self.amount = (self.amount or ZERO) + row.amount_usd
            if row.part:
                self.parts[row.part] = self.parts.get(row.part, ZERO) + row.amount_usd
        if row.input_tokens is not None:
            counted = Tokens(
                input=row.input_tokens,
                cached=row.cached_input_tokens or 0,
                output=row.output_tokens or 0,
                events=row.requests or 0,
            )
            self.tokens = counted if self.tokens is None else self.tokens + counted

    def merge(self, other: _Sums) -> None:
        self.first_line = min(self.first_line, other.first_line)
        self.currencies |= other.currencies
        self.names |= other.names
        self.projects |= other.projects
        if other.amount is not None:
            self.amount = (self.amount or ZERO) + other.amount
        for part, amount in other.parts.items():
            self.parts[part] = self.parts.get(part, ZERO) + amount
        if other.tokens is not None:
            self.tokens = other.tokens if self.tokens is None else self.tokens + other.tokens


@dataclass
class _Ours:
    cost: Decimal = ZERO
    tokens: Tokens = field(default_factory=Tokens)
    models: set[str] = field(default_factory=set)


class _Grouping:
    """How provider projects and our accounts fall into the same buckets."""

    def __init__(self, projects: ProjectMap, file_projects: set[str]) -> None:
        self.projects = projects
        self.by_project = any(p in projects.account_of_project for p in file_projects)

    def of_project(self, project: str) -> tuple[str, str]:
        """(group key, label) of a provider project."""
        if not self.by_project:
            return NO_PROJECT, ""
        account_id = self.projects.account_of_project.get(project)
        if account_id is not None:
            return f"account:{account_id}", self.projects.label(account_id)
        if not project:
            return "none", "(no project)"
        return f"unmapped:{project}", project

    def of_account(self, account_id: int | None) -> tuple[str, str]:
        if not self.by_project:
            return NO_PROJECT, ""
        if account_id is not None and account_id in self.projects.projects_of_account:
            return f"account:{account_id}", self.projects.label(account_id)
        return "none", "(no project)"


def _price_on(snapshot: CatalogSnapshot, model_id: str, day: date) -> ModelPriceVersion | None:
    entry = snapshot.models.get(model_id)
    if entry is None:
        return None
    try:
        return entry.price_at(datetime.combine(day, time(12), tzinfo=UTC))
    except NoPriceInForce:
        return None


def _catalog_id(snapshot: CatalogSnapshot, name: str) -> str | None:
    try:
        return snapshot.find_model(name).model_id
    except UnknownModel:
        return None


def _alias_hint(snapshot: CatalogSnapshot, name: str) -> str:
    guess = _catalog_id(snapshot, undated_model_name(name))
    return f" (it looks like {guess}: add {name!r} as an alias of {guess})" if guess else ""


def bucket_file_reconcile(
    *, provider_file: ProviderFile, snapshot: CatalogSnapshot, tolerance: Tolerance, writer: LineWriter
) -> Coverage:
    """Read the whole export, match it bucket by bucket and write one line per bucket (and per unreadable row)."""
    coverage = Coverage()
    raw: dict[tuple[date, str, str], _Sums] = {}
    for item in provider_file.rows:
        coverage.rows += 1
        if isinstance(item, RowError):
            writer.add(
                LineDraft(
                    status=Status.ERROR,
                    key=f"line {item.line}",
                    line_number=item.line,
                    reason_code=Reason.UNREADABLE,
                    reason=item.reason,
                )
            )
        elif isinstance(item, EmptyBucket):
            coverage.empty_buckets += 1
            coverage.extend(item.start, item.end)
        elif isinstance(item, BucketRow):
            coverage.extend(item.start, item.end)
            key = (item.start.date(), item.model, item.project)
            sums = raw.get(key)
            if sums is None:
                sums = raw[key] = _Sums(first_line=item.line)
            sums.add_row(item)
    if coverage.start is None or coverage.end is None:
        return coverage
    _match(
        raw=raw,
        source=provider_file.source,
        coverage=coverage,
        snapshot=snapshot,
        tolerance=tolerance,
        writer=writer,
    )
    return coverage


def _match(
    *,
    raw: dict[tuple[date, str, str], _Sums],
    source: str,
    coverage: Coverage,
    snapshot: CatalogSnapshot,
    tolerance: Tolerance,
    writer: LineWriter,
) -> None:
    assert coverage.start is not None and coverage.end is not None
    grouping = _Grouping(project_map(), {project for (_, _, project) in raw})
    day_totals = {(day, grouping.of_project(project)[0]) for (day, model, project) in raw if not model}
    unmapped_on_day: dict[date, set[str]] = defaultdict(set)
    labels: dict[str, str] = {}

    theirs: dict[tuple[date, str, str], _Sums] = {}
    for (day, name, project), sums in raw.items():
        group, label = grouping.of_project(project)
        labels[group] = label
        if (day, group) in day_totals:
            model_key = DAY_TOTAL
        else:
            model_key = _catalog_id(snapshot, name) or f"?{name}"
            if model_key.startswith("?"):
                unmapped_on_day[day].add(name)
        key = (day, model_key, group)
        if key in theirs:
            theirs[key].merge(sums)
        else:
            theirs[key] = sums

    provider = SOURCE_PROVIDER[source]
    model_ids = {m.model_id for m in snapshot.models.values() if m.provider == provider}
    model_ids |= {key[1] for key in theirs if key[1] not in (DAY_TOTAL,) and not key[1].startswith("?")}
    ours: dict[tuple[date, str, str], _Ours] = defaultdict(_Ours)
    for bucket in usage_cost_buckets(
        start=coverage.start, end=coverage.end, model_ids=model_ids, by_account=grouping.by_project
    ):
        group, label = grouping.of_account(bucket.account_id)
        labels.setdefault(group, label)
        model_key = DAY_TOTAL if (bucket.day, group) in day_totals else bucket.model_id
        mine = ours[(bucket.day, model_key, group)]
        mine.cost += bucket.cost_usd
        mine.tokens = mine.tokens + bucket.tokens
        mine.models.add(bucket.model_id)

    for key in sorted(theirs.keys() | ours.keys()):
        day, model_key, group = key
        draft = _line(
            key=key,
            label=labels.get(group, ""),
            sums=theirs.get(key),
            mine=ours.get(key),
            source=source,
            snapshot=snapshot,
            tolerance=tolerance,
            unmapped=unmapped_on_day.get(day, set()),
        )
        writer.add(draft)


def _key_text(day: date, model: str, label: str) -> str:
    return "|".join(part for part in (day.isoformat(), model, label) if part)


def _line(
    *,
    key: tuple[date, str, str],
    label: str,
    sums: _Sums | None,
    mine: _Ours | None,
    source: str,
    snapshot: CatalogSnapshot,
    tolerance: Tolerance,
    unmapped: set[str],
) -> LineDraft:
    day, model_key, group = key
    unmapped_name = model_key[1:] if model_key.startswith("?") else ""
    model_id = "" if unmapped_name or model_key == DAY_TOTAL else model_key
    names = ", ".join(sorted(sums.names)) if sums else ""
    ours_tokens = mine.tokens if mine else Tokens()
    draft = LineDraft(
        status=Status.MATCHED,
        key=_key_text(day, unmapped_name or model_key, label),
        line_number=sums.first_line if sums else None,
        day=day,
        model_name=names,
        model_id=model_id,
        project=label,
        calculated_usd=mine.cost if mine else ZERO,
        events=ours_tokens.events,
        input_tokens=ours_tokens.input,
        cached_input_tokens=ours_tokens.cached,
        output_tokens=ours_tokens.output,
    )
    if sums is not None and sums.tokens is not None:
        draft.provider_input_tokens = sums.tokens.input
        draft.provider_cached_input_tokens = sums.tokens.cached
        draft.provider_output_tokens = sums.tokens.output
    price = _price_on(snapshot, model_id, day) if model_id else None
    actual = _actual(sums, source, price) if sums else None
    draft.actual_usd = actual
    draft.currency = ",".join(sorted(sums.currencies)) if sums and sums.currencies else "USD"

    if sums is None:  # our usage, none in the export
        draft.status = Status.NOT_IN_EXPORT
        draft.difference_usd = -draft.calculated_usd
        draft.reason_code, draft.reason = _not_in_export_reason(model_id, mine, unmapped)
        return draft
    if mine is None or mine.tokens.events == 0:
        nothing_billed = (actual is None or actual == 0) and (sums.tokens is None or sums.tokens.total == 0)
        draft.difference_usd = actual
        if nothing_billed:
            return draft  # a zero line and no usage: nothing to find
        draft.status = Status.NOT_FOUND
        draft.reason_code, draft.reason = _not_found_reason(unmapped_name, group, label, snapshot)
        return draft
    verdict = compare(
        Comparison(
            calculated=draft.calculated_usd,
            actual=actual,
            ours=ours_tokens,
            theirs=sums.tokens,
            parts=sums.parts,
            price=price,
            currency=draft.currency,
        ),
        tolerance,
    )
    draft.status = verdict.status
    draft.difference_usd = verdict.difference
    draft.reason_code, draft.reason = verdict.reason_code, verdict.reason
    draft.implied_input_per_million = verdict.implied.get("input")
    draft.implied_cached_input_per_million = verdict.implied.get("cached_input")
    draft.implied_output_per_million = verdict.implied.get("output")
    return draft


def _actual(sums: _Sums, source: str, price: ModelPriceVersion | None) -> Decimal | None:
    """The provider's amount; for a usage export, its token counts at the catalog's price (None when unpriceable)."""
    if source != OPENAI_USAGE:
        return sums.amount
    if sums.tokens is None or price is None:
        return None
    return tokens_priced(sums.tokens, price)


def _not_found_reason(unmapped_name: str, group: str, label: str, snapshot: CatalogSnapshot) -> tuple[str, str]:
    if unmapped_name:
        return (
            Reason.MODEL_ALIAS,
            f"{unmapped_name!r} is not a catalog model or alias{_alias_hint(snapshot, unmapped_name)}",
        )
    if group.startswith("unmapped:"):
        return (
            Reason.UNMAPPED_PROJECT,
            f"provider project {label} is not mapped to an account (Account.provider_project_ids)",
        )
    return Reason.MISSING_EVENTS, "the provider billed this bucket and we recorded no usage in it: events missing"


def _not_in_export_reason(model_id: str, mine: _Ours | None, unmapped: set[str]) -> tuple[str, str]:
    cost = usd(mine.cost) if mine else usd(ZERO)
    if model_id:
        related = sorted(name for name in unmapped if undated_model_name(name) == model_id or name == model_id)
        if related:
            return (
                Reason.MODEL_ALIAS,
                f"the export names {', '.join(related)} on this day, which the catalog does not map to {model_id}; "
                f"add the alias (we calculated {cost})",
            )
    if unmapped:
        return (
            Reason.NOT_BILLED,
            f"the export has no usage for this bucket (we calculated {cost}); it does name models the catalog does "
            f"not know on this day: {', '.join(sorted(unmapped))}",
        )
    return Reason.NOT_BILLED, f"the export has no usage for this bucket (we calculated {cost})"
