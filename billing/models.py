"""Accounts, API keys, credit wallets and their ledger, subscriptions, billing periods and invoices."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from pricing.fields import PreciseDecimalField
from pricing.models import Plan, PlanTerms


class Account(models.Model):
    """The tenant that is billed: a shop, a team."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    name = models.CharField(max_length=200)
    external_id = models.CharField(
        max_length=128, null=True, blank=True, unique=True, help_text="the reseller's own id of this customer"
    )
    metadata = models.JSONField(default=dict, blank=True, help_text="the reseller's own data (an object, <= 4 KB)")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    display_currency = models.CharField(max_length=10, default="USD")
    low_balance_threshold = PreciseDecimalField(default=Decimal(0), help_text="credits; 0 turns the warning off")
    alert_webhook_url = models.URLField(blank=True)
    alert_webhook_secret = models.CharField(max_length=100, blank=True)
    stripe_customer_id = models.CharField(max_length=100, blank=True, db_index=True)
    provider_project_ids = models.JSONField(
        default=list, blank=True, help_text="provider project ids, for reconciliation"
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="billing_accounts")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        VIEWER = "viewer"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.account}"


class SecretKeyFields(models.Model):
    """What every key TokenLedger issues keeps: the prefix it is found by, the SHA-256 of the whole key (shown
    once), who made it, when it was last used and when it was revoked."""

    prefix = models.CharField(max_length=32, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ApiKey(SecretKeyFields):
    """`tl_<prefix>_<secret>`: the whole key is shown once; only its SHA-256 is kept, found by the prefix."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"tl_{self.prefix}_… ({self.account})"


class ServerKey(SecretKeyFields):
    """`tls_<prefix>_<secret>`: the reseller's backend acting for any of its customers, within its scopes.

    Shown once, kept as a SHA-256 hash, found by the prefix, revocable. Not tied to an account.
    """

    class Scope(models.TextChoices):
        CUSTOMERS = "customers", "customers: manage customers, their keys, credits, plans and portal sessions"
        USAGE = "usage", "usage: authorize, record, release and estimate for any customer"
        READ = "read", "read: balances, usage, stats and invoices of any customer"

    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=list, help_text="a list of customers, usage, read")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "server key"

    def __str__(self) -> str:
        return f"tls_{self.prefix}_… ({self.name})"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


class IdempotencyKey(models.Model):
    """The first answer to a POST sent with an `Idempotency-Key`, so a retry gets it again and never acts twice.

    Unique per (owner, key hash): a concurrent retry waits on the first one's insert and then reads its answer.
    The key itself is not stored; the answer is encrypted with a key derived from it (it may hold a new API key).
    """

    owner = models.CharField(max_length=100, help_text="who sent the key, e.g. server-key:12")
    key_hash = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, help_text="the answer's body, encrypted")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "key_hash"], name="idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} by {self.owner} ({self.status_code})"


class PortalSession(models.Model):
    """A one-time link that signs a customer's owner into the dashboard: single use, short-lived, kept hashed."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="portal_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    return_url = models.URLField(max_length=2000, blank=True)
    created_by_key = models.ForeignKey(
        ServerKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="portal_sessions"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"portal session #{self.pk} for {self.account_id} (until {self.expires_at:%H:%M})"


class Wallet(models.Model):
    """An account's credits. `balance` is the sum of the ledger; `held` is what open reservations hold."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="wallet")
    balance = PreciseDecimalField(default=Decimal(0))
    held = PreciseDecimalField(default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(held__gte=0), name="wallet_held_not_negative")]

    def __str__(self) -> str:
        return f"wallet of {self.account}: {self.balance} credits"

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


class LedgerEntry(models.Model):
    """One movement of credits. Append-only; the same (wallet, kind, reference) can never post twice."""

    class Kind(models.TextChoices):
        TOPUP = "topup"
        GRANT = "grant"
        USAGE = "usage"
        REFUND = "refund"
        EXPIRY = "expiry"
        ADJUSTMENT = "adjustment"

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    credits = PreciseDecimalField(help_text="signed: positive adds credits, negative takes them")
    usd_amount = PreciseDecimalField(default=Decimal(0))
    rate = PreciseDecimalField(null=True, blank=True, help_text="credits per USD used for this entry")
    reference = models.CharField(max_length=200)
    balance_after = PreciseDecimalField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["wallet", "kind", "reference"], name="ledger_reference_unique_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.credits:+} ({self.reference})"


class CreditGrant(models.Model):
    """Credits that expire. Spending uses the soonest-expiring grants first; the unspent rest leaves by expiry."""

    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="grants")
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="grant")
    credits = PreciseDecimalField()
    remaining = PreciseDecimalField()
    expires_at = models.DateTimeField(db_index=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["expires_at", "id"]
        constraints = [models.CheckConstraint(condition=Q(remaining__gte=0), name="grant_remaining_not_negative")]

    def __str__(self) -> str:
        return f"{self.remaining}/{self.credits} credits until {self.expires_at:%Y-%m-%d}"


class Subscription(models.Model):
    """The plan in force for an account. A plan change waits for the next period unless applied now."""

    class Status(models.TextChoices):
        TRIALING = "trialing"
        ACTIVE = "active"
        PAST_DUE = "past_due"
        CANCELED = "canceled"

    class Anchor(models.TextChoices):
        CALENDAR = "calendar", "calendar month"
        ANNIVERSARY = "anniversary", "anniversary of the start"

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    pending_plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    interval = models.CharField(max_length=10, default="month")
    period_anchor = models.CharField(max_length=20, choices=Anchor.choices, default=Anchor.CALENDAR)
    started_at = models.DateTimeField()
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True)
    stripe_subscription_id = models.CharField(max_length=100, blank=True, db_index=True)
    stripe_price_id = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return f"{self.account} on {self.plan.code} ({self.status})"


class BillingPeriod(models.Model):
    """One account's counters for one period, with the plan terms it opened with."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"
        INVOICED = "invoiced"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="periods")
    start = models.DateTimeField()
    end = models.DateTimeField(db_index=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    terms = models.ForeignKey(PlanTerms, on_delete=models.PROTECT, related_name="+")
    unit = models.CharField(max_length=20)
    included_units = PreciseDecimalField(null=True, blank=True)
    units_used = PreciseDecimalField(default=Decimal(0))
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    messages = models.BigIntegerField(default=0)
    provider_cost_usd = PreciseDecimalField(default=Decimal(0))
    charge_usd = PreciseDecimalField(default=Decimal(0))
    credits_used = PreciseDecimalField(default=Decimal(0))
    overage_units = PreciseDecimalField(default=Decimal(0))
    overage_usd = PreciseDecimalField(default=Decimal(0), help_text="accrued overage, cap applied")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.UniqueConstraint(fields=["account", "start"], name="period_unique_start"),
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="period_ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d} ({self.status})"


class Invoice(models.Model):
    """The billing record of one closed period; the total is rounded once to cents, half up."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        PAID = "paid"
        VOID = "void"
        UNCOLLECTIBLE = "uncollectible"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="invoices")
    period = models.OneToOneField(BillingPeriod, on_delete=models.PROTECT, related_name="invoice")
    plan_code = models.CharField(max_length=50)
    unit = models.CharField(max_length=20)
    units = PreciseDecimalField(default=Decimal(0))
    included_units = PreciseDecimalField(null=True, blank=True)
    overage_units = PreciseDecimalField(default=Decimal(0))
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    messages = models.BigIntegerField(default=0)
    api_cost_usd = PreciseDecimalField(default=Decimal(0))
    charge_usd = PreciseDecimalField(default=Decimal(0), help_text="customer charge of the period's events")
    base_charge = PreciseDecimalField(default=Decimal(0))
    overage = PreciseDecimalField(default=Decimal(0))
    cap_applied = models.BooleanField(default=False)
    late_usage = PreciseDecimalField(
        default=Decimal(0), help_text="late-usage adjustments billed on this invoice (usage of earlier, closed periods)"
    )
    total = PreciseDecimalField(default=Decimal(0), help_text="after the cap, plus late usage, unrounded")
    currency = models.CharField(max_length=10, default="USD")
    amount_cents = models.BigIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT, db_index=True)
    stripe_invoice_id = models.CharField(max_length=100, blank=True, db_index=True)
    hosted_invoice_url = models.URLField(blank=True, max_length=500)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["account", "period"], name="invoice_unique_period")]

    def __str__(self) -> str:
        return f"invoice #{self.pk} {self.account} {self.amount_cents} minor units of {self.currency}"


class AuditEntry(models.Model):
    """Who did what to an account: key issued or revoked, manual adjustment, plan change, suspension."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries")
    action = models.CharField(max_length=100, db_index=True)
    via = models.CharField(max_length=200, blank=True, help_text="the credential behind the change, e.g. a server key")
    object_type = models.CharField(max_length=100)
    object_key = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_key}"


# --- Stripe: top-ups, auto-recharge, the webhook inbox, overage billing -----------------------------------------


class TopUp(models.Model):
    """Credits bought with a card: by Checkout, or off-session by auto-recharge. The credits and the rate are fixed
    when the top-up is created; the wallet is credited once, from a verified webhook or a confirmed payment."""

    class Source(models.TextChoices):
        CHECKOUT = "checkout"
        AUTO_RECHARGE = "auto_recharge"

    class Status(models.TextChoices):
        PENDING = "pending"
        PAID = "paid"
        FAILED = "failed"
        CANCELED = "canceled"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="topups")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.CHECKOUT)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    amount_usd = PreciseDecimalField()
    currency = models.CharField(max_length=10, default="USD")
    amount_cents = models.BigIntegerField(help_text="what the card is charged, in minor units")
    credits = PreciseDecimalField(help_text="credits granted when paid, fixed at creation")
    rate = PreciseDecimalField(help_text="credits per USD at creation")
    save_payment_method = models.BooleanField(default=False, help_text="keep the card for auto-recharge")
    stripe_checkout_session_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    checkout_url = models.URLField(max_length=2000, blank=True)
    ledger_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="topup"
    )
    failure_message = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "top-up"
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0) & Q(credits__gt=0), name="topup_positive"),
        ]

    def __str__(self) -> str:
        return f"top-up #{self.pk} {self.amount_usd} USD for {self.account_id} ({self.status})"


class AutoRecharge(models.Model):
    """An account's standing order: when its credits fall below `threshold_credits`, charge `amount_usd` to the
    saved card. Stops itself after `AUTO_RECHARGE_MAX_FAILURES` failures in a row."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="auto_recharge")
    enabled = models.BooleanField(default=False)
    threshold_credits = PreciseDecimalField(default=Decimal(0))
    amount_usd = PreciseDecimalField(default=Decimal(0))
    stripe_payment_method_id = models.CharField(max_length=255, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.CharField(max_length=500, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold_credits__gte=0) & Q(amount_usd__gte=0), name="auto_recharge_not_negative"
            )
        ]

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"auto-recharge {state} for {self.account_id}: {self.amount_usd} USD below {self.threshold_credits}"


class StripeEvent(models.Model):
    """The webhook inbox: each Stripe event once (unique event id), stored before it is processed."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSING = "processing"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        IGNORED = "ignored"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    api_version = models.CharField(max_length=50, blank=True)
    livemode = models.BooleanField(default=False)
    object_id = models.CharField(max_length=255, blank=True, db_index=True, help_text="data.object.id")
    stripe_created_at = models.DateTimeField(help_text="when Stripe created the event")
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    outcome = models.CharField(max_length=500, blank=True, help_text="what processing did")
    received_at = models.DateTimeField(db_index=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "Stripe event"

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class OverageBilling(models.Model):
    """The cursor of one period's overage through Stripe, so a retried job or a crash between steps never bills
    twice: each step is keyed (`overage-item:<invoice id>`, ...) and recorded here before the next one starts.

    `renewal_cents` is overage already put on a subscription's renewal invoice by `invoice.upcoming`; the close
    bills only what is left.
    """

    class Step(models.TextChoices):
        PENDING = "pending"
        ITEM_CREATED = "item_created"
        INVOICE_CREATED = "invoice_created"
        FINALIZED = "finalized"
        PAID = "paid"
        PAYMENT_FAILED = "payment_failed"
        NOTHING_DUE = "nothing_due"

    period = models.OneToOneField(BillingPeriod, on_delete=models.PROTECT, related_name="overage_billing")
    invoice = models.OneToOneField(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="overage_billing"
    )
    step = models.CharField(max_length=20, choices=Step.choices, default=Step.PENDING, db_index=True)
    renewal_cents = models.BigIntegerField(default=0)
    renewal_item_id = models.CharField(max_length=255, blank=True)
    amount_cents = models.BigIntegerField(default=0, help_text="billed at the close, after any renewal part")
    description = models.CharField(max_length=500, blank=True)
    stripe_invoice_item_id = models.CharField(max_length=255, blank=True)
    stripe_invoice_id = models.CharField(max_length=255, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"overage of period {self.period_id}: {self.step}"


class InvoiceOutbox(models.Model):
    """What must follow an invoice, written in the same transaction as the invoice: one row per invoice and kind.

    A separate, idempotent step (`outbox_send_due`) sends every pending row, whichever run wrote it; a failed send
    keeps the row pending with its error and a later `next_attempt_at` (backoff). A sent row is never sent again.
    """

    class Kind(models.TextChoices):
        OVERAGE = "overage", "overage billing (Stripe)"
        MONTHLY_SUMMARY = "monthly_summary", "monthly summary email"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="outbox")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    outcome = models.CharField(max_length=500, blank=True, help_text="what the send did")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True, help_text="a sender is working on it until then")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = "invoice outbox row"
        constraints = [models.UniqueConstraint(fields=["invoice", "kind"], name="outbox_unique_invoice_kind")]
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="outbox_pending_due")]

    def __str__(self) -> str:
        return f"{self.kind} of invoice #{self.invoice_id} ({self.status})"


class LateUsageAdjustment(models.Model):
    """Usage that arrived after its period closed, billed on the account's next invoice.

    The counters move as late events are recorded (one unbilled row per closed period: a partial unique
    constraint); the next close of the account prices them with the closed period's own terms (what the plan
    charge of that period grows by) and links the row to its invoice, so it is billed exactly once.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="late_usage")
    period = models.ForeignKey(
        BillingPeriod, on_delete=models.PROTECT, related_name="late_usage", help_text="the closed period it belongs to"
    )
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="late_usage_adjustments",
        help_text="the invoice that billed it; empty until the next close",
    )  # fmt: skip
    units = PreciseDecimalField(default=Decimal(0))
    messages = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    provider_cost_usd = PreciseDecimalField(default=Decimal(0))
    charge_usd = PreciseDecimalField(default=Decimal(0))
    credits_used = PreciseDecimalField(default=Decimal(0))
    amount = PreciseDecimalField(default=Decimal(0), help_text="what the invoice charges for it, unrounded")
    currency = models.CharField(max_length=10, default="USD")
    created_at = models.DateTimeField()
    billed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["period"], condition=Q(invoice__isnull=True), name="late_usage_one_unbilled_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"late usage of period {self.period_id}: {self.messages} events"
