"""Stripe settings, read in one place with their defaults, so the Stripe code works before settings.py names them.

Stripe is on when `STRIPE_SECRET_KEY` is set; webhooks are accepted when `STRIPE_WEBHOOK_SECRET` is set. With
neither, every other feature works and the Stripe features answer 503 "Stripe is not configured".
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

# The API version the gateway and the webhook handlers are written against (the `stripe` library's own pin).
PINNED_API_VERSION = "2026-10-28.endive"
NOT_CONFIGURED_MESSAGE = "Stripe is not configured"


@dataclass(frozen=True)
class StripeSettings:
    secret_key: str
    webhook_secret: str
    api_base: str
    api_version: str
    webhook_tolerance_seconds: int
    topup_min_usd: Decimal
    topup_max_usd: Decimal
    topup_packs_usd: tuple[Decimal, ...]
    checkout_success_url: str
    checkout_cancel_url: str
    auto_recharge_max_failures: int
    auto_recharge_cooldown_seconds: int
    event_max_attempts: int
    event_stuck_seconds: int
    http_timeout_seconds: int

    @property
    def enabled(self) -> bool:
        return bool(self.secret_key)

    @property
    def webhooks_enabled(self) -> bool:
        return bool(self.webhook_secret)


def _decimal(name: str, default: str) -> Decimal:
    value = getattr(settings, name, default)
    if isinstance(value, float):  # a float setting would bring binary noise into money
        raise TypeError(f"settings.{name} must be a Decimal, int or string, not a float")
    return Decimal(str(value))


def stripe_enabled() -> bool:
    """Whether Stripe is configured (StripeSettings.enabled), read without building the whole settings: every
    recorded debit asks it."""
    return bool(getattr(settings, "STRIPE_SECRET_KEY", ""))


def stripe_settings() -> StripeSettings:
    """The Stripe settings now (read each call, so tests and admins changing settings are seen at once)."""
    site = str(getattr(settings, "SITE_URL", "http://127.0.0.1:8000")).rstrip("/")
    packs = tuple(Decimal(str(p)) for p in getattr(settings, "TOPUP_PACKS_USD", ["5", "10", "25", "50", "100"]))
    return StripeSettings(
        secret_key=getattr(settings, "STRIPE_SECRET_KEY", "") or "",
        webhook_secret=getattr(settings, "STRIPE_WEBHOOK_SECRET", "") or "",
        api_base=(getattr(settings, "STRIPE_API_BASE", "") or "").rstrip("/"),
        api_version=getattr(settings, "STRIPE_API_VERSION", PINNED_API_VERSION) or PINNED_API_VERSION,
        webhook_tolerance_seconds=int(getattr(settings, "STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300)),
        topup_min_usd=_decimal("TOPUP_MIN_USD", "5"),
        topup_max_usd=_decimal("TOPUP_MAX_USD", "500"),
        topup_packs_usd=packs,
        checkout_success_url=getattr(
            settings, "STRIPE_CHECKOUT_SUCCESS_URL", f"{site}/?checkout=success&session_id={{CHECKOUT_SESSION_ID}}"
        ),
        checkout_cancel_url=getattr(settings, "STRIPE_CHECKOUT_CANCEL_URL", f"{site}/?checkout=canceled"),
        auto_recharge_max_failures=int(getattr(settings, "AUTO_RECHARGE_MAX_FAILURES", 3)),
        auto_recharge_cooldown_seconds=int(getattr(settings, "AUTO_RECHARGE_COOLDOWN_SECONDS", 900)),
        event_max_attempts=int(getattr(settings, "STRIPE_EVENT_MAX_ATTEMPTS", 8)),
        event_stuck_seconds=int(getattr(settings, "STRIPE_EVENT_STUCK_SECONDS", 600)),
        http_timeout_seconds=int(getattr(settings, "STRIPE_HTTP_TIMEOUT_SECONDS", 30)),
    )


def stripe_status() -> dict[str, object]:
    """What the dashboard and /api/billing/stripe show: whether payments work, and why not."""
    conf = stripe_settings()
    return {
        "enabled": conf.enabled,
        "webhooks_enabled": conf.webhooks_enabled,
        "message": "" if conf.enabled else NOT_CONFIGURED_MESSAGE,
        "api_version": conf.api_version,
        "topup_packs_usd": [str(p) for p in conf.topup_packs_usd],
        "topup_min_usd": str(conf.topup_min_usd),
        "topup_max_usd": str(conf.topup_max_usd),
    }
