"""The retry policy on its own: which answers are retried, how long the SDK waits, and that a call is built once."""

from __future__ import annotations

import httpx
import pytest
from tokenledger import _calls
from tokenledger._http import RETRY_STATUSES, Settings, _delay
from tokenledger.errors import AlreadyRecorded, IdempotencyConflict, RateLimitError, ServerError, error_for

SETTINGS = Settings(
    api_key="tl_x", base_url="http://ledger.test", customer=None, timeout=httpx.Timeout(1.0), max_retries=3,
    backoff=0.5, max_backoff=8.0, max_retry_after=30.0,
)  # fmt: skip


def test_retry_after_is_honoured_and_capped():
    assert _delay(SETTINGS, 0, httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert _delay(SETTINGS, 0, httpx.Response(503, headers={"Retry-After": "600"})) == 30.0


def test_backoff_grows_with_jitter_and_stays_under_its_cap():
    for attempt in range(8):
        delay = _delay(SETTINGS, attempt, None)
        assert 0 <= delay <= min(8.0, 0.5 * 2**attempt)


def test_what_is_retried():
    assert {429, 500, 502, 503, 504} <= RETRY_STATUSES
    assert not {400, 401, 403, 404, 409, 413} & RETRY_STATUSES


def test_errors_are_typed_by_code_then_status():
    assert isinstance(error_for(409, {"error": "already_recorded", "message": "m"}), AlreadyRecorded)
    assert isinstance(error_for(409, {"error": "idempotency_conflict", "message": "m"}), IdempotencyConflict)
    limited = error_for(429, {"error": "rate_limited", "message": "slow down"}, retry_after=3.0)
    assert isinstance(limited, RateLimitError) and limited.retry_after == 3.0
    html = error_for(502, "<html>bad gateway</html>")
    assert isinstance(html, ServerError) and html.code == "http_502"


def test_a_call_fixes_its_request_id_and_idempotency_key_once():
    call = _calls.record_one({"model": "qwen-3-32b", "input_tokens": 1, "output_tokens": 1})
    assert call.json["request_id"].startswith("req_")
    assert call.headers["Idempotency-Key"]
    other = _calls.record_one({"model": "qwen-3-32b", "input_tokens": 1, "output_tokens": 1})
    assert other.json["request_id"] != call.json["request_id"]


def test_money_is_never_sent_as_a_float():
    with pytest.raises(TypeError, match="float"):
        _calls.record_one({"request_id": "x", "model": "m", "input_tokens": 1, "output_tokens": 1, "multiplier": 1.5})
