"""Reconciliation runs (one provider file matched against our rated costs) and their lines."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from pricing.fields import PreciseDecimalField


class ReconciliationRun(models.Model):
    """One file reconciled: where it came from, who ran it, what it covered and what it found."""

    class Source(models.TextChoices):
        OPENAI_COSTS = "openai-costs", "OpenAI cost export"
        OPENAI_USAGE = "openai-usage", "OpenAI usage export"
        ANTHROPIC_COSTS = "anthropic-costs", "Anthropic cost report"
        REQUESTS = "requests", "gateway requests"

    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        COMMAND = "command"
        ADMIN = "admin"
        API = "api"
        SCHEDULE = "schedule"

    source = models.CharField(max_length=20, choices=Source.choices, blank=True, help_text="blank: not recognised")
    file_name = models.CharField(max_length=255)
    file_format = models.CharField(max_length=10, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.BigIntegerField(default=0)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.COMMAND)
    same_file_as = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="the latest earlier run of a file with the same SHA-256",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING, db_index=True)
    failure = models.TextField(blank=True)
    as_of = models.DateTimeField()
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    period_start = models.DateTimeField(null=True, blank=True, help_text="the earliest time the file covers")
    period_end = models.DateTimeField(null=True, blank=True, help_text="the end of the latest time it covers")
    rows = models.BigIntegerField(default=0, help_text="records read from the file")
    empty_buckets = models.BigIntegerField(default=0)
    matched = models.BigIntegerField(default=0)
    discrepancy = models.BigIntegerField(default=0)
    not_found = models.BigIntegerField(default=0)
    not_in_export = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    events_updated = models.BigIntegerField(default=0, help_text="usage events given their actual cost")
    total_calculated_usd = PreciseDecimalField(default=Decimal(0))
    total_actual_usd = PreciseDecimalField(default=Decimal(0))
    difference_usd = PreciseDecimalField(default=Decimal(0), help_text="actual - calculated")
    match_rate = models.DecimalField(
        max_digits=5, decimal_places=4, null=True, blank=True, help_text="matched / (matched + discrepancy + not found)"
    )
    options = models.JSONField(default=dict, blank=True, verbose_name="settings")

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "reconciliation run"

    def __str__(self) -> str:
        return f"run #{self.pk} {self.source or '?'} {self.file_name}"


class ReconciliationLine(models.Model):
    """One bucket (day x model x project) or one request, our calculated cost against the provider's."""

    class Status(models.TextChoices):
        MATCHED = "matched"
        DISCREPANCY = "discrepancy"
        NOT_FOUND = "not_found", "not found (no usage on our side)"
        NOT_IN_EXPORT = "not_in_export", "not in export (no usage on the provider's side)"
        ERROR = "error"

    class Reason(models.TextChoices):
        NONE = "", "-"
        PRICE_DRIFT = "price_drift", "price drift"
        MODEL_ALIAS = "model_alias", "unmapped model alias"
        CACHED_AS_UNCACHED = "cached_as_uncached", "cached tokens priced as uncached"
        TOKEN_COUNTS = "token_counts", "token counts differ"
        MISSING_EVENTS = "missing_events", "events missing on our side"
        NOT_BILLED = "not_billed", "usage the provider did not bill"
        CURRENCY = "currency", "currency"
        UNMAPPED_PROJECT = "unmapped_project", "unmapped provider project"
        MODEL_DIFFERS = "model_differs", "model differs"
        AMBIGUOUS = "ambiguous", "ambiguous request id"
        UNREADABLE = "unreadable", "unreadable row"
        UNEXPLAINED = "unexplained", "unexplained"
        CACHE_WRITES = "cache_writes", "cache writes not on our events"
        SERVICE_TIER = "service_tier", "batch or another service tier"
        LONG_CONTEXT = "long_context", "long-context tier"
        REPEATED = "repeated", "request id repeated in the file"
        NOT_LOGGED = "not_logged", "not in the gateway's log"

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="lines")
    status = models.CharField(max_length=20, choices=Status.choices)
    key = models.CharField(max_length=300)
    line_number = models.BigIntegerField(null=True, blank=True, help_text="the file line of its first record")
    day = models.DateField(null=True, blank=True)
    model_name = models.CharField(max_length=300, blank=True, help_text="as the provider wrote it")
    model_id = models.CharField(max_length=200, blank=True, help_text="the catalog model")
    project = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    usage_event_id = models.BigIntegerField(null=True, blank=True)
    calculated_usd = PreciseDecimalField(default=Decimal(0), help_text="our rated provider cost")
    actual_usd = PreciseDecimalField(null=True, blank=True, help_text="the provider's amount")
    difference_usd = PreciseDecimalField(null=True, blank=True, help_text="actual - calculated")
    currency = models.CharField(max_length=10, default="USD")
    events = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    provider_input_tokens = models.BigIntegerField(null=True, blank=True)
    provider_cached_input_tokens = models.BigIntegerField(null=True, blank=True)
    provider_output_tokens = models.BigIntegerField(null=True, blank=True)
    reason_code = models.CharField(max_length=30, choices=Reason.choices, blank=True)
    reason = models.TextField(blank=True)
    implied_input_per_million = PreciseDecimalField(null=True, blank=True)
    implied_cached_input_per_million = PreciseDecimalField(null=True, blank=True)
    implied_output_per_million = PreciseDecimalField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        indexes = [models.Index(fields=["run", "status"], name="recon_line_run_status")]

    def __str__(self) -> str:
        return f"{self.key}: {self.status}"

    @property
    def has_implied_price(self) -> bool:
        return any(
            value is not None
            for value in (
                self.implied_input_per_million,
                self.implied_cached_input_per_million,
                self.implied_output_per_million,
            )
        )
