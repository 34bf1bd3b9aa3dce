"""Test support for the Stripe tests: the recorded sample events (copied from the shared samples), signing them the
way Stripe does, a recording HTTP client that stands in for Stripe (and keeps Stripe's idempotency promise), and
the localstripe server on the loopback interface.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client

from billing import stripe_gateway as gateway

SAMPLES = Path(__file__).resolve().parent
ROOT = SAMPLES.parents[2]
WEBHOOK_SECRET = "whsec_test_tokenledger"
WEBHOOK_URL = "/api/stripe/webhook"


# --- samples and signatures --------------------------------------------------------------------------------------


def _replace(value: Any, replacements: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _replace(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, replacements) for v in value]
    if isinstance(value, str):
        return replacements.get(value, value)
    return value


def sample(name: str, *, replacements: dict[str, str] | None = None, **top: Any) -> dict[str, Any]:
    """A sample event (`checkout.session.completed`, ...) with placeholders like "<topup id>" replaced and
    top-level fields (`id`, `created`, ...) overridden."""
    event = json.loads((SAMPLES / f"{name}.json").read_text())
    event = _replace(event, replacements or {})
    event.update(top)
    return event


def signature(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe's `Stripe-Signature`: t=<unix time>,v1=HMAC-SHA256(secret, "<t>.<body>") (computed here by hand, not
    by the `stripe` library, so the test checks the gateway against the scheme itself)."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def post_event(
    client: Client, event: dict[str, Any] | bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None,
    header: str | None = None,
) -> Any:  # fmt: skip
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    sig = header if header is not None else signature(body, secret=secret, timestamp=timestamp)
    extra: dict[str, Any] = {"HTTP_STRIPE_SIGNATURE": sig} if sig else {}
    return client.post(WEBHOOK_URL, data=body, content_type="application/json", **extra)


# --- the recording client ----------------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, str]
    idempotency_key: str | None
    stripe_version: str | None
    url: str
    replayed: bool = False


Responder = Callable[[Recorded], "tuple[int, dict[str, Any]] | dict[str, Any]"]


@dataclass
class _Route:
    method: str
    path: str
    respond: Responder
    prefix: bool = False


@dataclass(eq=False)
class RecordingStripe(gateway.HTTPClientBase):
    """Answers Stripe requests from routes set by the test and records each one. Like Stripe, a request that
    repeats an idempotency key gets the first answer again (marked `replayed`); the same key with other parameters
    is refused with an idempotency_error."""

    name = "recording"
    requests: list[Recorded] = field(default_factory=list)
    routes: list[_Route] = field(default_factory=list)
    answers_by_key: dict[str, tuple[Recorded, int, str]] = field(default_factory=dict)
    counter: int = 0

    def __post_init__(self) -> None:
        gateway.HTTPClientBase.__init__(self)

    def on(self, method: str, path: str, respond: Responder | dict[str, Any], *, prefix: bool = False) -> None:
        """Answer `method path` (exact, or any path starting with it) with a dict or a function of the request.
        Later routes win."""
        if callable(respond):
            responder: Responder = respond
        else:
            fixed = respond

            def responder(_req: Recorded) -> dict[str, Any]:
                return copy.deepcopy(fixed)

        self.routes.insert(0, _Route(method.upper(), path, responder, prefix))

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_test{self.counter:04d}"

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, *, _usage: Any = None) -> Any:
        parts = urlsplit(url)
        raw = post_data if isinstance(post_data, str) else (post_data or b"").decode() if post_data else ""
        form = dict(parse_qsl(raw or parts.query, keep_blank_values=True))
        headers = dict(headers or {})
        req = Recorded(method.upper(), parts.path, form, headers.get("Idempotency-Key"), headers.get("Stripe-Version"),
                       url)  # fmt: skip
        key = req.idempotency_key
        if key and key in self.answers_by_key:
            first, status, body = self.answers_by_key[key]
            req.replayed = True
            self.requests.append(req)
            if (first.method, first.path, first.form) != (req.method, req.path, req.form):
                error = {"error": {"type": "idempotency_error", "message": f"Keys for idempotent requests can only be used with the same parameters they were first used with ({key})"}}  # fmt: skip
                return json.dumps(error), 400, {"Request-Id": "req_replay"}
            return body, status, {"Request-Id": "req_replay", "Idempotent-Replayed": "true"}
        self.requests.append(req)
        for route in self.routes:
            if route.method == req.method and (
                req.path.startswith(route.path) if route.prefix else req.path == route.path
            ):
                answer = route.respond(req)
                status, payload = answer if isinstance(answer, tuple) else (200, answer)
                body = json.dumps(payload)
                if key and status < 500:  # Stripe does not keep 5xx answers for a key
                    self.answers_by_key[key] = (req, status, body)
                return body, status, {"Request-Id": f"req_{len(self.requests)}"}
        error = {"error": {"type": "invalid_request_error", "message": f"no test route for {req.method} {req.path}"}}
        return json.dumps(error), 404, {"Request-Id": "req_missing"}

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass

    # --- conveniences for assertions ---

    def calls(self) -> list[tuple[str, str, str | None]]:
        """(method, path, idempotency key) of every request, in order."""
        return [(r.method, r.path, r.idempotency_key) for r in self.requests]

    def only(self, method: str, path: str) -> Recorded:
        found = [r for r in self.requests if r.method == method and r.path == path]
        assert len(found) == 1, f"expected one {method} {path}, got {len(found)}: {self.calls()}"
        return found[0]

    def customers_route(self) -> None:
        """Customers that echo what they were sent."""

        def create(req: Recorded) -> dict[str, Any]:
            return {"id": self.next_id("cus"), "object": "customer", "name": req.form.get("name"),
                    "email": req.form.get("email")}  # fmt: skip

        def update(req: Recorded) -> dict[str, Any]:
            return {"id": req.path.rsplit("/", 1)[1], "object": "customer", "name": req.form.get("name"),
                    "email": req.form.get("email")}  # fmt: skip

        self.on("POST", "/v1/customers", create)
        self.on("POST", "/v1/customers/", update, prefix=True)


def error_body(
    message: str, *, code: str = "", kind: str = "invalid_request_error", decline: str = ""
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if decline:
        error["decline_code"] = decline
    return {"error": error}


@pytest.fixture
def stripe_recorder(settings: Any) -> Iterator[RecordingStripe]:
    """Stripe "configured", every request answered by a RecordingStripe (nothing leaves the process)."""
    settings.STRIPE_SECRET_KEY = "sk_test_recorded"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = "http://stripe.invalid"
    recorder = RecordingStripe()
    recorder.customers_route()
    with gateway.http_client_override(recorder):
        yield recorder


@pytest.fixture
def stripe_off(settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    settings.STRIPE_API_BASE = ""


@pytest.fixture
def alerts_sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The payment-failure alerts handed to the usage app's task, captured instead of queued."""
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr("billing.tasks.payment_failed_alert_send", lambda **kwargs: sent.append(kwargs))
    return sent


# --- localstripe on the loopback interface ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """localstripe started for this test session on a free port of 127.0.0.1, from scratch (no state file read
    or written), stopped at the end. Skips when localstripe is not installed."""
    pytest.importorskip("localstripe")
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.billing.stripe_samples.localstripe_loopback", "--port", str(port), "--from-scratch"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"localstripe did not start on 127.0.0.1:{port}")
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


# One lock for everything that touches the database while localstripe may be delivering webhooks to the live
# server: on SQLite the live server and the test share one in-memory connection, which must not be used by two
# threads at once.
DB_LOCK = threading.RLock()


def wait_for(condition: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with DB_LOCK:
            result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)
