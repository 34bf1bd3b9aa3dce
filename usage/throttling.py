"""The plan's requests per hour, per account, on the cache (Redis in production): 429 with Retry-After."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from billing.authentication import AccountPrincipal
from billing.models import Subscription
from pricing.errors import PricingError
from pricing.selectors import catalog_snapshot


class PlanRateThrottle(SimpleRateThrottle):
    scope = "plan"

    def get_rate(self) -> str | None:
        return None  # decided per request, from the caller's plan

    def allow_request(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, AccountPrincipal):
            return True
        plan_code = Subscription.objects.filter(account=principal.account).values_list("plan__code", flat=True).first()
        try:
            terms = catalog_snapshot().plan(plan_code or "").terms_at(timezone.now())
        except PricingError:
            return True
        if not terms.requests_per_hour:
            return True
        self.num_requests, self.duration = terms.requests_per_hour, 3600
        self.key = f"throttle:plan:account:{principal.account.pk}"
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        principal = request.user
        return f"throttle:plan:account:{principal.account.pk}" if isinstance(principal, AccountPrincipal) else None
