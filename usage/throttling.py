"""Rate limits per account: the plan's requests per hour, and events per minute on ingest.

Each limit is a GCRA bucket (generic cell rate algorithm): `limit` units per `period`, at most `limit` at once,
one more every period/limit after that. A request of cost c is allowed when c units fit now; so 100 per hour lets
100 through at once and then one every 36 s, and a refusal says exactly when the next unit fits (Retry-After),
not when an hour-long window ends. The bucket is one number per account (its theoretical arrival time), read and
written in one Redis round trip by a Lua script, so a race never lets limit + 1 through. Without Redis (embedded
mode) the same arithmetic runs on the local-memory cache under a process lock.

What the caller sees: `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until the full
allowance is back) on every answer of a limited endpoint; 429 `rate_limited` with `Retry-After` when refused; 503
`rate_limit_unavailable` with `Retry-After` when Redis cannot be reached on the plan's limit (authorize and estimate
fail closed); the events limit alone lets ingest through without Redis, since refusing would lose usage.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from billing.authentication import AccountPrincipal
from billing.models import Account, Subscription
from core.api_errors import ApiError
from core.cache import CACHE_ERRORS, cache_is_down, cache_mark_down
from pricing.errors import PricingError
from pricing.selectors import catalog_snapshot

# A time slack for float arithmetic on milliseconds, far below anything a client can observe (also in _GCRA_LUA).
_SLACK_MS = 0.5

# KEYS[1]: the bucket; ARGV: now (ms), period (ms), limit, cost. Answers {allowed (1 or 0), the bucket's time}.
_GCRA_LUA = """
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + cost * interval
if cost > limit or new_tat - period > now + 0.5 then
  return {0, string.format('%.17g', tat)}
end
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, string.format('%.17g', new_tat)}
"""


@dataclass(frozen=True)
class RateDecision:
    """One check of a bucket, as the caller's headers tell it."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the whole allowance is back
    retry_after_seconds: int  # until this request would fit; 0 when allowed


class RateLimitUnavailable(ApiError):
    """Redis is down: the limit cannot be counted, so the request is refused (fail closed), with Retry-After."""

    def __init__(self) -> None:
        super().__init__(
            "rate_limit_unavailable",
            "The rate limiter (Redis) is not reachable, so this request cannot be allowed now. Try again shortly.",
            status_code=503,
        )
        self.wait = settings.RATE_LIMIT_UNAVAILABLE_RETRY_SECONDS  # DRF turns `wait` into Retry-After


_local_lock = threading.Lock()
_scripts: dict[int, Any] = {}


def _take_redis(
    backend: RedisCache, key: str, now_ms: float, period_ms: float, limit: int, cost: int
) -> tuple[bool, float]:
    client = backend._cache.get_client(key, write=True)
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_GCRA_LUA)
    allowed, tat = script(keys=[backend.make_and_validate_key(key)], args=[repr(now_ms), repr(period_ms), limit, cost])
    return bool(int(allowed)), float(tat)


def _take_local(backend: Any, key: str, now_ms: float, period_ms: float, limit: int, cost: int) -> tuple[bool, float]:
    # the same arithmetic as _GCRA_LUA; the lock makes the read and the write one step within this process
    interval = period_ms / limit
    with _local_lock:
        tat = max(float(backend.get(key) or now_ms), now_ms)
        new_tat = tat + cost * interval
        if cost > limit or new_tat - period_ms > now_ms + _SLACK_MS:
            return False, tat
        backend.set(key, new_tat, timeout=math.ceil((new_tat - now_ms) / 1000) + 1)
        return True, new_tat


def rate_limit_take(*, key: str, limit: int, period_seconds: int, cost: int = 1) -> RateDecision:
    """Take `cost` units from the bucket `key` (`limit` per `period_seconds`) if they fit now; nothing when not.

    Raises RateLimitUnavailable when the cache server cannot be reached: a limit is never skipped.
    """
    backend = caches["default"]
    now_ms = time.time() * 1000
    period_ms = period_seconds * 1000.0
    take: Callable[..., tuple[bool, float]] = _take_redis if isinstance(backend, RedisCache) else _take_local
    if isinstance(backend, RedisCache) and cache_is_down():
        raise RateLimitUnavailable()
    try:
        allowed, tat = take(backend, key, now_ms, period_ms, limit, cost)
    except CACHE_ERRORS:
        cache_mark_down()
        raise RateLimitUnavailable() from None
    interval = period_ms / limit
    remaining = min(limit, max(0, math.floor((now_ms + period_ms - tat) / interval + 1e-9)))
    reset = math.ceil(max(0.0, tat - now_ms) / 1000)
    retry_after = 0
    if not allowed:
        retry_after = (
            period_seconds if cost > limit else max(1, math.ceil((tat + cost * interval - period_ms - now_ms) / 1000))
        )
    return RateDecision(
        allowed=allowed, limit=limit, remaining=remaining, reset_seconds=reset, retry_after_seconds=retry_after
    )


def _plan_limit_now(account_id: int) -> int | None:
    """The requests per hour of the account's plan now; None when it has no such limit."""
    plan_code = Subscription.objects.filter(account_id=account_id).values_list("plan__code", flat=True).first()
    try:
        return catalog_snapshot().plan(plan_code or "").terms_at(timezone.now()).requests_per_hour or None
    except PricingError:
        return None


def _plan_rate_take(account_id: int, limit: int) -> RateDecision:
    return rate_limit_take(key=f"ratelimit:plan:{account_id}", limit=limit, period_seconds=3600)


def plan_rate_take(*, account: Account) -> RateDecision | None:
    """One request against the plan's `requests_per_hour` (the metering gateway's; the API's throttle shares the
    bucket and the remembered limit); None when the plan has no such limit."""
    limit = _plan_requests_per_hour(account.pk)
    return _plan_rate_take(account.pk, limit) if limit else None


def _remember(request: Request, decision: RateDecision) -> None:
    """Keep the tightest decision of this request for RateLimitHeadersMiddleware."""
    django_request = request._request
    previous: RateDecision | None = getattr(django_request, "rate_limit", None)
    if previous is None or decision.remaining < previous.remaining or not decision.allowed:
        django_request.rate_limit = decision  # type: ignore[attr-defined]


# how long an account's plan limit is remembered in the process: a plan change reaches the rate limit within this time
PLAN_LIMIT_MEMO_SECONDS = 30.0
_plan_limits: dict[int, tuple[float, int | None]] = {}  # by account id: (when read, requests per hour)


def _plan_requests_per_hour(account_id: int) -> int | None:
    """The requests per hour of the account's plan now (None: not limited), remembered in the process for
    PLAN_LIMIT_MEMO_SECONDS per account, so the throttle reads no row and makes no round trip for it."""
    remembered = _plan_limits.get(account_id)
    if remembered is not None and time.monotonic() - remembered[0] < PLAN_LIMIT_MEMO_SECONDS:
        return remembered[1]
    limit = _plan_limit_now(account_id)
    if len(_plan_limits) > 10_000:
        _plan_limits.clear()
    _plan_limits[account_id] = (time.monotonic(), limit)
    return limit


def plan_limits_forget() -> None:
    """Forget the remembered plan limits (tests: a rolled-back account's id is given again on SQLite)."""
    _plan_limits.clear()


class PlanRateThrottle(BaseThrottle):
    """The plan's `requests_per_hour` per account; plans without one are not limited."""

    def __init__(self) -> None:
        self._wait = 0

    def allow_request(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, AccountPrincipal):
            return True
        limit = _plan_requests_per_hour(principal.account_ref.pk)
        if not limit:
            return True
        decision = _plan_rate_take(principal.account_ref.pk, limit)
        _remember(request, decision)
        self._wait = decision.retry_after_seconds
        return decision.allowed

    def wait(self) -> float | None:
        return self._wait or None


def usage_events_rate_take(*, request: Request, events: int) -> None:
    """Count a batch against the account's USAGE_EVENTS_PER_MINUTE (in events, not requests); 429 when over.

    A batch larger than the whole per-minute allowance can never fit: it is refused with a message to split it.
    Without Redis the batch is let through (fail open): refusing would lose usage that already happened.
    """
    limit = settings.USAGE_EVENTS_PER_MINUTE
    principal = request.user
    if not limit or not isinstance(principal, AccountPrincipal):
        return
    # a server key's batch may span customers (events name their own): it is counted against the key itself
    server_key = getattr(principal, "server_key", None)
    key = (
        f"ratelimit:events:server:{server_key.pk}"
        if server_key is not None
        else f"ratelimit:events:{principal.account_ref.pk}"
    )
    try:
        decision = rate_limit_take(key=key, limit=limit, period_seconds=60, cost=max(1, events))
    except RateLimitUnavailable:
        # this limit protects capacity, not money: usage that already happened is recorded rather than refused
        return
    _remember(request, decision)
    if decision.allowed:
        return
    if events > limit:
        raise Throttled(
            wait=decision.retry_after_seconds,
            detail=f"A batch of {events} events is more than the {limit} events per minute this account may send; "
            "send smaller batches.",
        )
    raise Throttled(
        wait=decision.retry_after_seconds,
        detail=f"This account may send {limit} events per minute; {decision.remaining} fit now. "
        f"Try again in {decision.retry_after_seconds} s.",
    )


class RateLimitHeadersMiddleware:
    """`X-RateLimit-Limit`, `-Remaining` and `-Reset` on the answers of rate-limited endpoints."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        decision: RateDecision | None = getattr(request, "rate_limit", None)
        if decision is not None:
            response["X-RateLimit-Limit"] = str(decision.limit)
            response["X-RateLimit-Remaining"] = str(decision.remaining)
            response["X-RateLimit-Reset"] = str(decision.reset_seconds)
            if not decision.allowed:
                response["Retry-After"] = str(decision.retry_after_seconds)
        return response
