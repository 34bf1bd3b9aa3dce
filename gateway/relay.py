"""The call to the upstream provider (aiohttp.ClientSession) and the relay of its stream back to the client.

A connection that cannot be made is retried (the upstream's `connect_retries`) before anything was sent back;
nothing is retried once the provider may have received the call, so a call is never made twice. A stream is read
by its own task, not by the client's response: when the client goes away mid-stream the task keeps reading to the
end, so what the provider generated (and bills) is recorded; when it goes away before the first byte, the call is
abandoned and the hold released. The usage is recorded before the stream's last event is passed on, so a client
that has seen the end of its stream finds the call on its balance.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import certifi

from gateway.errors import GatewayRefusal
from gateway.formats import ANTHROPIC, Route, header_text, header_value
from gateway.journal import journal_keep, journal_settled
from gateway.metering import SseSplitter, StreamMeter
from gateway.routing import UpstreamTarget
from gateway.services import Admission, gateway_release, gateway_settle, usage_estimated

logger = logging.getLogger(__name__)

FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta")
FORWARDED_RESPONSE_HEADERS = ("x-request-id", "request-id", "openai-processing-ms", "openai-version", "openai-model")
ANTHROPIC_VERSION = "2023-06-01"


class UpstreamBrokeOff(Exception):
    """The provider's stream ended before its end: the client's stream is broken off too, as the provider's was."""


# an upstream answer that breaks off or stalls while it is read: the provider may have the call by then
UPSTREAM_READ_ERRORS = (aiohttp.ClientError, TimeoutError)

_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
_background_tasks: set[asyncio.Task[Any]] = set()
_after_answer_tasks: set[asyncio.Task[Any]] = set()  # a subset of _background_tasks
# the gateway's database work: connections stay open per thread (CONN_MAX_AGE), so the pool is kept small
db_threads = ThreadPoolExecutor(max_workers=16, thread_name_prefix="gateway-db")


def background(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run work that must finish whether or not the client is still there (recording, releasing). Such work is tied
    to no request, so the server's graceful shutdown does not wait for it: the gateway's lifespan shutdown does
    (`background_drain`, gateway/asgi.py)."""
    task = asyncio.ensure_future(coroutine)
    _background_tasks.add(task)
    task.add_done_callback(_background_done)
    return task


def _background_done(task: asyncio.Task[Any]) -> None:
    _background_tasks.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.error("gateway background work failed: %s", type(exc).__name__, exc_info=exc)


def after_answer(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Background work that follows an answer already sent: the recording of a whole (non-streamed) answer, owed in
    the journal (gateway/journal.py) until it is done."""
    task = background(coroutine)
    _after_answer_tasks.add(task)
    task.add_done_callback(_after_answer_done)
    return task


# how long the recording of a whole answer waits for the answer to be sent before it starts anyway
SENT_WAIT_SECONDS = 1.0
_SENT = "_gateway_sent"  # the attribute of a response that holds what waits for it to be sent


def after_sent(response: object, work: Callable[..., Any], **kwargs: Any) -> None:
    """Run `work(**kwargs)` in a pool thread once `response` has gone to the client (after_answer: owed meanwhile).

    The gateway's ASGI handler calls `response_sent` when the response is written (or the client has gone). Started
    at once instead, the recording's Python work would take the GIL from the event loop while the answer is being
    written: the loop then waits for its turn, up to the interpreter's switch interval (5 ms), and the client
    with it (the write's p90 went from 1.7 to 0.6 ms: docs/PERFORMANCE.md, the seventh session). Should nothing call
    `response_sent`, the work starts after SENT_WAIT_SECONDS."""
    sent = asyncio.get_running_loop().create_future()
    setattr(response, _SENT, sent)

    async def once_sent() -> Any:
        await asyncio.wait([sent], timeout=SENT_WAIT_SECONDS)
        return await in_thread(work, **kwargs)

    after_answer(once_sent())


def response_sent(response: object) -> None:
    """The response is written (or will never be): what waits for it (`after_sent`) starts now."""
    sent = getattr(response, _SENT, None)
    if sent is not None and not sent.done():
        sent.set_result(None)


def _after_answer_done(task: asyncio.Task[Any]) -> None:
    _after_answer_tasks.discard(task)
    if task.cancelled() or task.exception() is not None:
        journal_keep()
    elif not _after_answer_tasks:
        journal_settled()


async def _drain(tasks: set[asyncio.Task[Any]]) -> None:
    loop = asyncio.get_running_loop()
    while pending := [task for task in tasks if task.get_loop() is loop]:
        await asyncio.wait(pending)


async def background_drain() -> None:
    """Wait until no background work is left in this event loop (what was started meanwhile included)."""
    await _drain(_background_tasks)


async def after_answer_drain() -> None:
    """Wait until every answer sent so far in this event loop is recorded."""
    await _drain(_after_answer_tasks)


async def in_thread(function: Any, **kwargs: Any) -> Any:
    """Database work off the event loop, in a pool thread (never the one shared thread: calls run side by side).

    The work runs in the pool thread's own context, not in a copy of the request's (as sync_to_async would): Django
    keeps its cache handles in context variables, so in a fresh context every step built new Redis clients, pools
    and connections (17.5 -> 13.1 ms of CPU a call when this changed, bench/gateway.py); in the thread's context
    they are built once per thread and kept.
    The gateway's work takes everything it needs as arguments and reads nothing from the request's context.
    """
    return await asyncio.get_running_loop().run_in_executor(db_threads, functools.partial(function, **kwargs))


def _session() -> aiohttp.ClientSession:
    """The event loop's client: keep-alive connections to the upstreams, kept per loop.

    aiohttp rather than httpx: httpx spent about 0.55 ms of CPU on each call (its connection pool asks every idle
    connection whether it is still readable, through anyio, on each request), aiohttp about 0.08 ms
    (docs/PERFORMANCE.md). No cookie jar: one client serves every customer's calls, so a cookie one answer set would
    go out with the next customer's call. No redirects followed, no proxy from the environment (trust_env is off).
    Providers' certificates are checked against certifi's authorities, as httpx did, not the machine's."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        authorities = ssl.create_default_context(cafile=certifi.where())
        connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=4, ssl=authorities)
        session = _sessions[loop] = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    return session


async def upstream_sessions_close() -> None:
    """Close this event loop's client and its connections (the gateway's lifespan shutdown)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


def _as_sent(value: str | None) -> str | None:
    """A client's header as it sent it (formats.header_text): the upstream client writes str as UTF-8, so text read
    as Latin-1 would go out encoded twice; a value that is not UTF-8 cannot go out as it came and is left out."""
    return header_text(value) if value else None


def _upstream_headers(route: Route, target: UpstreamTarget, client_headers: Mapping[str, str]) -> dict[str, str]:
    """Only the headers the provider needs; the client's own key (our key) never leaves, the operator's goes."""
    headers = {name: value for name in FORWARDED_REQUEST_HEADERS if (value := _as_sent(client_headers.get(name)))}
    headers["content-type"] = "application/json"
    if route.provider == ANTHROPIC:
        headers["x-api-key"] = target.api_key
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    else:
        headers["authorization"] = f"Bearer {target.api_key}"
    return headers


async def upstream_open(
    *, route: Route, target: UpstreamTarget, body: bytes, client_headers: Mapping[str, str]
) -> aiohttp.ClientResponse:
    """Send the call; answer the provider's response (status and headers) with its body not yet read."""
    session = _session()
    # connect: the wait for a pooled connection and the connection itself, at most 10 s; then each read
    timeout = aiohttp.ClientTimeout(total=None, connect=target.timeout_seconds,
                                    sock_connect=min(10, target.timeout_seconds), sock_read=target.timeout_seconds)  # fmt: skip
    url = target.url + route.upstream_path
    headers = _upstream_headers(route, target, client_headers)
    for attempt in range(target.connect_retries + 1):
        try:
            return await session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:  # nothing was sent
            logger.warning("gateway upstream %s: connection failed (%s), attempt %d", target.name, type(exc).__name__,
                           attempt + 1)  # fmt: skip
            if attempt < target.connect_retries:
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        except TimeoutError:
            raise GatewayRefusal(504, "upstream_timeout", "The provider did not answer in time.") from None
        except aiohttp.ClientError as exc:
            logger.warning("gateway upstream %s: %s", target.name, type(exc).__name__)
            raise GatewayRefusal(502, "upstream_unreachable", "The provider's answer broke off.") from None
    raise GatewayRefusal(502, "upstream_unreachable", "The provider cannot be reached.")


def response_headers(upstream: aiohttp.ClientResponse, admission: Admission) -> dict[str, str]:
    headers = {name: value for name in FORWARDED_RESPONSE_HEADERS if (value := upstream.headers.get(name))}
    headers["TokenLedger-Request-Id"] = header_value(admission.request_id)
    return headers


def provider_request_id(upstream: aiohttp.ClientResponse) -> str | None:
    return upstream.headers.get("x-request-id") or upstream.headers.get("request-id")


class StreamRelay:
    """Reads the provider's stream in its own task and hands its events to the client's response."""

    def __init__(self, *, admission: Admission, upstream: aiohttp.ClientResponse, meter: StreamMeter) -> None:
        self.admission, self.upstream, self.meter = admission, upstream, meter
        self.splitter = SseSplitter()
        self.queue: asyncio.Queue[bytes | UpstreamBrokeOff | None] = asyncio.Queue()
        self.received_any = False
        self.client_gone = False
        self.settled = False
        self.passed_on = asyncio.Event()  # set while the client has been handed every event queued so far
        self.passed_on.set()
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self.task = background(self._pump())

    def _put(self, chunk: bytes | UpstreamBrokeOff) -> None:
        if not self.client_gone:
            self.passed_on.clear()
            self.queue.put_nowait(chunk)

    async def _queued_passed_on(self) -> None:
        """Wait (SENT_WAIT_SECONDS at most) until the events queued so far are written to the client. The recording
        then starts: started sooner, its work in a pool thread would take the GIL from the event loop writing them,
        which would wait for its turn (up to the interpreter's switch interval, 5 ms), and a stream that comes in
        one piece would reach the client only after it. Its last event still waits for the recording."""
        if not self.client_gone:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.passed_on.wait(), timeout=SENT_WAIT_SECONDS)

    async def _pump(self) -> None:
        try:
            async for chunk in self.upstream.content.iter_any():
                self.received_any = True
                for event in self.splitter.feed(chunk):
                    forward, last = self.meter.observe(event)
                    if last and not self.settled:
                        await self._queued_passed_on()
                        await self._settle()
                    if forward:
                        self._put(event.raw)
            if rest := self.splitter.rest():
                self._put(rest)
        except UPSTREAM_READ_ERRORS as exc:  # the provider broke off mid-stream: what it produced is still recorded
            logger.warning("gateway stream %s broke off: %s", self.admission.request_id, type(exc).__name__)
            self._put(UpstreamBrokeOff(type(exc).__name__))
        finally:
            try:
                self.upstream.close()  # its connection is reused when the answer was read to its end, else closed
                if not self.settled:
                    await self._settle()
            finally:
                self.queue.put_nowait(None)  # the client's stream ends whatever happened here

    async def _settle(self) -> None:
        self.settled = True
        usage, estimated = self.meter.usage, False
        if usage is None and (self.meter.produced or self.meter.partial is not None):
            usage, estimated = await in_thread(
                usage_estimated, admission=self.admission, produced_text=self.meter.produced_text(),
                partial=self.meter.partial,
            ), True  # fmt: skip
        if usage is None:
            await in_thread(gateway_release, admission=self.admission)
            return
        usage.provider_request_id = provider_request_id(self.upstream) or usage.provider_request_id
        await in_thread(gateway_settle, admission=self.admission, usage=usage, estimated=estimated)

    async def client_body(self) -> AsyncIterator[bytes]:
        finished = False
        try:
            while (chunk := await self.queue.get()) is not None:
                if isinstance(chunk, UpstreamBrokeOff):
                    raise chunk
                yield chunk  # resumed once the response has written it
                if self.queue.empty():
                    self.passed_on.set()
            finished = True
        finally:
            if not finished:  # the client went away: keep reading only if the provider has started answering
                self.client_gone = True
                self.passed_on.set()
                if not self.received_any and self.task is not None:
                    self.task.cancel()
