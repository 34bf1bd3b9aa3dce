"""Reconciliation settings, read in one place with their defaults (each may be set in config/settings.py).

Read on every call (not at import), so a changed setting, or one overridden in a test, takes effect at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from pricing.money import to_decimal


@dataclass(frozen=True, slots=True)
class Tolerance:
    """A line matches when |difference| <= max(pct % of the provider's amount, usd)."""

    pct: Decimal
    usd: Decimal

    def allows(self, *, difference: Decimal, actual: Decimal) -> bool:
        bound = self.pct * abs(actual) / 100
        return abs(difference) <= (bound if bound > self.usd else self.usd)

    def as_json(self) -> dict[str, str]:
        return {"pct": str(self.pct), "usd": str(self.usd)}


@dataclass(frozen=True, slots=True)
class ReconciliationSettings:
    inbox: Path
    bucket_tolerance: Tolerance
    request_tolerance: Tolerance
    alert_match_rate: Decimal  # a fraction: 0.95 alerts below 95 %
    alert_discrepancy_usd: Decimal  # one line's |difference| above this alerts
    upload_max_bytes: int
    request_time_slack_seconds: int


def _decimal(name: str, default: str) -> Decimal:
    return to_decimal(getattr(settings, name, Decimal(default)))


def reconciliation_settings() -> ReconciliationSettings:
    return ReconciliationSettings(
        inbox=Path(getattr(settings, "RECONCILIATION_INBOX", Path(settings.VAR_DIR) / "reconciliation-inbox")),
        bucket_tolerance=Tolerance(
            pct=_decimal("RECONCILIATION_TOLERANCE_PCT", "5"),
            usd=_decimal("RECONCILIATION_TOLERANCE_USD", "0.05"),
        ),
        request_tolerance=Tolerance(
            pct=_decimal("RECONCILIATION_REQUEST_TOLERANCE_PCT", "5"),
            usd=_decimal("RECONCILIATION_REQUEST_TOLERANCE_USD", "0.000001"),
        ),
        alert_match_rate=_decimal("RECONCILIATION_ALERT_MATCH_RATE", "0.95"),
        alert_discrepancy_usd=_decimal("RECONCILIATION_ALERT_DISCREPANCY_USD", "10"),
        upload_max_bytes=int(getattr(settings, "RECONCILIATION_UPLOAD_MAX_BYTES", 256 * 1024 * 1024)),
        request_time_slack_seconds=int(getattr(settings, "RECONCILIATION_REQUEST_TIME_SLACK_SECONDS", 3600)),
    )
