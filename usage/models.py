"""Usage events (one provider call each), refused events kept for replay, reservations and daily rollups."""

from __future__ import annotations

from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from billing.models import Account, ApiKey, BillingPeriod
from pricing.fields import PreciseDecimalField


class UsageEvent(models.Model):
    """One provider call, rated. Unique per (account, request_id): a replay returns the first and changes nothing."""

    class Reconciliation(models.TextChoices):
        PENDING = "pending"
        MATCHED = "matched"
        DISCREPANCY = "discrepancy"
        NOT_APPLICABLE = "not_applicable"

    # no index of its own: the unique (account, request_id) index and two more lead with it
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="usage_events", db_index=False)
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="usage_events")
    request_id = models.CharField(max_length=128)
    batch_id = models.UUIDField(db_index=False)
    model_id = models.CharField(max_length=200, help_text="the catalog model the event was rated as")
    model_requested = models.CharField(max_length=200, help_text="the name the client sent (an id or an alias)")
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    images = models.IntegerField(default=0)
    # the price dimensions (docs/pricing-dimensions.md): parts of input and output tokens, units of other modes
    cache_write_input_tokens = models.BigIntegerField(default=0)
    cache_write_1h_input_tokens = models.BigIntegerField(default=0)
    image_input_tokens = models.BigIntegerField(default=0)
    image_output_tokens = models.BigIntegerField(default=0)
    audio_input_tokens = models.BigIntegerField(default=0)
    audio_output_tokens = models.BigIntegerField(default=0)
    image_size = models.CharField(max_length=20, blank=True)
    image_quality = models.CharField(max_length=20, blank=True)
    seconds = PreciseDecimalField(default=Decimal(0), help_text="audio or video seconds")
    characters = models.BigIntegerField(default=0)
    requests = models.BigIntegerField(default=0)
    service_tier = models.CharField(max_length=10, default="default")
    provider_request_id = models.CharField(max_length=200, blank=True, help_text="the provider's id of the call")
    features = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    multiplier = PreciseDecimalField(default=Decimal(1))
    operation_type = models.CharField(max_length=100, blank=True)
    user = models.CharField(max_length=200, blank=True)
    conversation_id = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    cost_usd = PreciseDecimalField(default=Decimal(0), help_text="provider cost")
    charge_usd = PreciseDecimalField(default=Decimal(0), help_text="customer charge")
    credits = PreciseDecimalField(default=Decimal(0))
    units = PreciseDecimalField(default=Decimal(0), help_text="units counted against the plan")
    breakdown = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    price_version_id = models.BigIntegerField(null=True)
    feature_version_ids = models.JSONField(default=dict, blank=True)
    credits_rate = PreciseDecimalField(null=True)
    plan_code = models.CharField(max_length=50)
    over_limit = models.BooleanField(default=False)
    late = models.BooleanField(
        default=False, help_text="its period had closed when it was recorded: billed as late usage on the next invoice"
    )
    over_reservation = models.BooleanField(
        default=False, help_text="rated above what its reservation was authorized for (the usage is still recorded)"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    api_key = models.ForeignKey(
        ApiKey,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_index=False,
        related_name="usage_events",
        help_text="the account API key that sent it (none for a server key's or the customers API's batches)",
    )
    actual_cost_usd = PreciseDecimalField(null=True, blank=True)
    reconciliation_status = models.CharField(
        max_length=20, choices=Reconciliation.choices, default=Reconciliation.PENDING
    )
    reconciled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        constraints = [models.UniqueConstraint(fields=["account", "request_id"], name="usage_event_unique_request")]
        indexes = [
            models.Index(fields=["account", "occurred_at"], name="usage_event_account_time"),
            models.Index(fields=["occurred_at", "model_id"], name="usage_event_time_model"),
            models.Index(fields=["account", "api_key", "occurred_at"], name="usage_event_account_key_time"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_id} ${self.charge_usd}"


class RejectedEvent(models.Model):
    """A usage event that could not be recorded, kept with why so an admin can replay it after a fix."""

    class Status(models.TextChoices):
        PENDING = "pending"
        REPLAYED = "replayed"
        DISCARDED = "discarded"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="rejected_events")
    request_id = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(
        encoder=DjangoJSONEncoder, help_text="the event as sent, with NUL and lone surrogates shown as U+FFFD"
    )
    raw_payload = models.TextField(
        blank=True, help_text="when payload had to be altered to be stored: the event exactly as sent, ASCII JSON"
    )
    error_code = models.CharField(max_length=50, db_index=True)
    error_message = models.TextField()
    received_at = models.DateTimeField(db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_result = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.request_id or '?'}: {self.error_code}"


class Reservation(models.Model):
    """Credits held for a request between authorize and record; recording that request settles it, releasing it
    (the call failed) frees the hold at once, and what is neither is expired by a job."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SETTLED = "settled"
        RELEASED = "released"
        EXPIRED = "expired"

    # no index of its own: the unique (account, request_id) and (account, status) indexes lead with it
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="reservations", db_index=False)
    request_id = models.CharField(max_length=128)
    fingerprint = models.CharField(
        max_length=64, blank=True, help_text="hash of what was asked: a retried authorize must ask the same"
    )
    model_id = models.CharField(max_length=200)
    operation_type = models.CharField(max_length=100, blank=True)
    held_credits = PreciseDecimalField(default=Decimal(0))
    estimated_cost_usd = PreciseDecimalField(default=Decimal(0))
    estimated_units = PreciseDecimalField(default=Decimal(0))
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "request_id"], name="reservation_unique_request"),
            models.CheckConstraint(condition=Q(held_credits__gte=0), name="reservation_held_not_negative"),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="reservation_expiry"),
            models.Index(fields=["account", "status"], name="reservation_account_status"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} holds {self.held_credits} ({self.status})"


class DailyUsage(models.Model):
    """Per account, UTC day, model and operation: the sums the dashboard, stats and daily limits read."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="daily_usage")
    day = models.DateField()
    model_id = models.CharField(max_length=200)
    operation_type = models.CharField(max_length=100, blank=True)
    events = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = PreciseDecimalField(default=Decimal(0))
    charge_usd = PreciseDecimalField(default=Decimal(0))
    credits = PreciseDecimalField(default=Decimal(0))

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "day", "model_id", "operation_type"], name="daily_usage_unique_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.model_id} {self.operation_type}: {self.events}"


class Alert(models.Model):
    """A warning that fired. Unique per (account, kind, threshold, period key): it fires once, also under races."""

    class Kind(models.TextChoices):
        QUOTA = "quota"
        LOW_BALANCE = "low_balance"
        OVERAGE_STARTED = "overage_started"
        PAYMENT_FAILED = "payment_failed"
        DAILY_COST = "daily_cost"
        ANOMALY = "anomaly"
        SPEND = "spend"
        WEEKLY_SUMMARY = "weekly_summary"
        MONTHLY_SUMMARY = "monthly_summary"
        TEST = "test"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=30, choices=Kind.choices, db_index=True)
    threshold = PreciseDecimalField(default=Decimal(0))
    period_key = models.CharField(max_length=40, help_text="the period, day, hour or week the alert is about")
    value = PreciseDecimalField(default=Decimal(0))
    subject = models.CharField(max_length=200)
    message = models.TextField()
    context = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    channels = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "kind", "threshold", "period_key"], name="alert_fires_once_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.threshold} for {self.account_id} ({self.period_key})"


class AlertThreshold(models.Model):
    """A line an account's owner draws: warn when the available credits are below it (balance) or when the period's
    spend in USD reaches it (spend). Each fires once per period, as every alert does; one row per line."""

    class Kind(models.TextChoices):
        BALANCE = "balance", "available credits below"
        SPEND = "spend", "spend this period reaches (USD)"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="alert_thresholds")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = PreciseDecimalField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["kind", "amount"]
        constraints = [
            models.UniqueConstraint(fields=["account", "kind", "amount"], name="alert_threshold_unique_line"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="alert_threshold_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} for {self.account_id}"


class AlertDelivery(models.Model):
    """One attempt series to deliver an alert on one channel: an email or the account's signed webhook."""

    class Channel(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    target = models.CharField(max_length=500)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(fields=["alert", "channel", "target"], name="alert_delivery_unique_target")
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.target}: {self.status}"
