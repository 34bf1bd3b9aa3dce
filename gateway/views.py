"""The gateway's endpoints: OpenAI- and Anthropic-compatible, each call authorized, forwarded and recorded.

Async views (served by uvicorn through gateway/asgi.py): a call waiting on its provider holds no thread; the
database work runs in pool threads, one step before the call (gateway_admit) and one after (gateway_record: for a
whole answer, right after it is sent; for a stream, before its last event is passed on).
Every answer the gateway writes itself is in the provider's error format (gateway/formats.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import replace
from typing import Any

import aiohttp
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from tokenledger.usage_mapping import MeteredUsage

from gateway.errors import GatewayRefusal
from gateway.formats import (
    ANTHROPIC,
    ROUTES,
    CallRequest,
    Route,
    call_request_read,
    error_body,
    header_text,
    header_value,
)
from gateway.journal import journal_append
from gateway.metering import StreamMeter, response_usage
from gateway.relay import (
    UPSTREAM_READ_ERRORS,
    StreamRelay,
    UpstreamBrokeOff,
    after_sent,
    background,
    in_thread,
    provider_request_id,
    response_headers,
    upstream_open,
    upstream_sessions_close,
)
from gateway.services import (
    Admission,
    Credentials,
    Recording,
    caller_identify,
    gateway_admit,
    gateway_record,
    gateway_release,
    recording_for,
)

logger = logging.getLogger(__name__)


def refusal_response(provider: str, refusal: GatewayRefusal) -> JsonResponse:
    response = JsonResponse(error_body(provider, refusal), status=refusal.status)
    if refusal.retry_after is not None:
        response["Retry-After"] = str(refusal.retry_after)
    if refusal.request_id is not None:
        response[REQUEST_ID_HEADER] = header_value(refusal.request_id)
    return response


def _header(request: HttpRequest, name: str) -> str | None:
    """A header as the client sent it (formats.header_text), or as read when it is not UTF-8 (a key that is not
    UTF-8 is simply unknown)."""
    raw = request.headers.get(name)
    return None if raw is None else (header_text(raw) or raw)


def _utf8_header(request: HttpRequest, name: str) -> str | None:
    """A header of ours that becomes part of a record (the request id, the operation): UTF-8, or refused."""
    raw = request.headers.get(name)
    if raw is None:
        return None
    text = header_text(raw)
    if text is None:
        raise GatewayRefusal(400, "invalid_header", f"{name} is not UTF-8 text.")
    return text


OPERATION_TYPE_MAX = 100  # the event's operation_type column (usage.models.UsageEvent)


def _caller(request: HttpRequest) -> Credentials:
    """Who is calling, and nothing else: the key from `x-api-key` (Anthropic clients) or `Authorization: Bearer`
    (OpenAI clients), and the customer a server key names."""
    scheme, _, bearer = (_header(request, "Authorization") or "").partition(" ")
    key = _header(request, "x-api-key") or (bearer.strip() if scheme.lower() == "bearer" else "")
    return Credentials(api_key=key.strip(), customer=_header(request, "TokenLedger-Customer"), request_id=None,
                       operation_type="")  # fmt: skip


def _credentials(request: HttpRequest) -> Credentials:
    """The caller (`_caller`) with the call's own headers: its request id and operation."""
    operation_type = _utf8_header(request, "TokenLedger-Operation-Type") or ""
    if len(operation_type) > OPERATION_TYPE_MAX or not operation_type.isprintable():
        raise GatewayRefusal(400, "invalid_operation_type",
                             f"TokenLedger-Operation-Type: at most {OPERATION_TYPE_MAX} printable characters.")  # fmt: skip
    return replace(_caller(request), request_id=_utf8_header(request, REQUEST_ID_HEADER), operation_type=operation_type)


REQUEST_ID_HEADER = "TokenLedger-Request-Id"


def _client_request_id(request: HttpRequest) -> str | None:
    """The TokenLedger-Request-Id the client sent, when it is one the gateway takes (1-128 printable characters)."""
    try:
        chosen = _utf8_header(request, REQUEST_ID_HEADER)
    except GatewayRefusal:
        return None
    return chosen if chosen is not None and 0 < len(chosen) <= 128 and chosen.isprintable() else None


async def _admit(route: Route, call: CallRequest, credentials: Credentials) -> Admission:
    """Authorize; should the client go away meanwhile, the hold it was given is released once it exists."""
    admitting = asyncio.ensure_future(in_thread(gateway_admit, route=route, call=call, credentials=credentials))
    try:
        return await asyncio.shield(admitting)
    except asyncio.CancelledError:
        background(_release_once_admitted(admitting))
        raise


async def _release_once_admitted(admitting: asyncio.Future[Admission]) -> None:
    try:
        admission = await admitting
    except GatewayRefusal:
        return
    await in_thread(gateway_release, admission=admission)


async def _forward(request: HttpRequest, route: Route) -> HttpResponseBase:
    try:
        credentials = _credentials(request)
        call = call_request_read(route, request.read())
    except GatewayRefusal:
        # who is calling is answered before what was sent: an unknown key hears 401 whatever its headers and body
        await in_thread(caller_identify, credentials=_caller(request))
        raise
    admission = await _admit(route, call, credentials)
    try:
        return await _forward_admitted(request, route, call, admission)
    except GatewayRefusal as refusal:  # the provider failed the call: answered under the id it was authorized with
        refusal.request_id = admission.request_id
        raise


async def _forward_admitted(
    request: HttpRequest, route: Route, call: CallRequest, admission: Admission
) -> HttpResponseBase:
    try:
        upstream = await upstream_open(
            route=route, target=admission.upstream, body=call.body, client_headers=request.headers
        )
    except GatewayRefusal:
        await in_thread(gateway_release, admission=admission)
        raise
    except asyncio.CancelledError:
        background(in_thread(gateway_release, admission=admission))
        raise
    if upstream.status >= 300:  # an error, or a redirect (not followed: the call is not sent elsewhere)
        return await _upstream_failed(route, admission, upstream)
    if call.stream:
        relay = StreamRelay(
            admission=admission, upstream=upstream,
            meter=StreamMeter(route, client_wants_usage=call.client_wants_usage),
        )  # fmt: skip
        relay.start()
        if not isinstance(request, ASGIRequest):
            return await _stream_read_whole(relay, admission, upstream)
        response = StreamingHttpResponse(
            relay.client_body(), status=upstream.status,
            content_type=upstream.headers.get("content-type", "text/event-stream"),
            headers=response_headers(upstream, admission),
        )  # fmt: skip
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    return await _whole_answer(admission, upstream, after=_records_after_answer(request))


async def _stream_read_whole(
    relay: StreamRelay, admission: Admission, upstream: aiohttp.ClientResponse
) -> HttpResponse:
    """A stream on the web port (WSGI), read to its end and recorded before it is answered whole: there the view's
    event loop ends with the view, and with it any task still reading the provider's stream (which cut the stream
    after its first events and recorded only what they held). A stream the provider broke off answers 502, and is
    recorded as on the gateway's port."""
    chunks: list[bytes] = []
    try:
        async for chunk in relay.client_body():
            chunks.append(chunk)
    except UpstreamBrokeOff:
        if relay.task is not None:
            await asyncio.wait({relay.task})  # its recording of what the provider produced
        raise GatewayRefusal(502, "upstream_unreachable", "The provider's answer broke off.") from None
    response = HttpResponse(b"".join(chunks), status=upstream.status,
                            content_type=upstream.headers.get("content-type", "text/event-stream"))  # fmt: skip
    for name, value in response_headers(upstream, admission).items():
        response[name] = value
    response["Cache-Control"] = "no-cache"
    return response


async def _upstream_failed(route: Route, admission: Admission, upstream: aiohttp.ClientResponse) -> HttpResponse:
    """The provider refused, failed or redirected the call: nothing was produced, the hold is released, and its
    answer is passed on as it wrote it (a redirect's Location is not: it is the provider's), except a refusal of the
    operator's key, which is not the client's to fix."""
    try:
        body = await upstream.read()
    except UPSTREAM_READ_ERRORS:
        body = b""
    finally:
        upstream.close()
    await in_thread(gateway_release, admission=admission)
    logger.warning("gateway upstream %s answered %d", admission.upstream.name, upstream.status)
    if upstream.status in (401, 403):
        raise GatewayRefusal(502, "upstream_auth_failed", "The provider refused the gateway's provider key.")
    response = HttpResponse(body, status=upstream.status,
                            content_type=upstream.headers.get("content-type", "application/json"))  # fmt: skip
    for name, value in response_headers(upstream, admission).items():
        response[name] = value
    if retry_after := upstream.headers.get("retry-after"):
        response["Retry-After"] = retry_after
    return response


async def _whole_answer(admission: Admission, upstream: aiohttp.ClientResponse, *, after: bool) -> HttpResponse:
    """The provider's whole answer, recorded before it is sent or, `after`, right after."""
    try:
        body = await upstream.read()
    except UPSTREAM_READ_ERRORS:
        await in_thread(gateway_release, admission=admission)
        raise GatewayRefusal(502, "upstream_unreachable", "The provider's answer broke off.") from None
    except asyncio.CancelledError:
        background(in_thread(gateway_release, admission=admission))
        raise
    finally:
        upstream.close()  # its connection goes back to the pool when the answer was read whole
    usage, estimated = response_usage(body), False
    if usage is None:  # an answer without usage is recorded at what was authorized: never less than it may cost
        usage = MeteredUsage(input_tokens=admission.input_tokens, output_tokens=admission.max_output_tokens)
        estimated = True
    usage.provider_request_id = provider_request_id(upstream) or usage.provider_request_id
    recording = recording_for(admission=admission, usage=usage, estimated=estimated)
    response = HttpResponse(body, status=upstream.status,
                            content_type=upstream.headers.get("content-type", "application/json"))  # fmt: skip
    for name, value in response_headers(upstream, admission).items():
        response[name] = value
    if after and _journal_owes(recording):
        # the answer goes to the client now; its recording (which settles the hold) runs once it is sent, tied to
        # no request, so a client gone meanwhile changes nothing. It is owed in the journal first, so a process that
        # dies before recording it leaves it to the next one (docs/gateway.md).
        after_sent(response, gateway_record, recording=recording)
    else:
        await in_thread(gateway_record, recording=recording)
    return response


def _journal_owes(recording: Recording) -> bool:
    """Write the recording to the journal; False when it cannot be (a full disk): then it is recorded first."""
    try:
        journal_append(recording)
    except OSError as exc:
        logger.error("gateway journal: cannot write (%s); recording before answering", type(exc).__name__)
        return False
    return True


def _records_after_answer(request: HttpRequest) -> bool:
    """Served by the gateway's ASGI app (uvicorn), on PostgreSQL. Under WSGI (the web port) a request's event loop
    ends with its response, so no work can outlive it there. SQLite (development, tests) takes one writer at a time,
    and its shared in-memory test database refuses a second one at once rather than waiting: a recording that
    overlapped the client's next call would make that call fail. In both cases the answer waits for its recording."""
    return isinstance(request, ASGIRequest) and not _on_sqlite()


@functools.cache
def _on_sqlite() -> bool:
    return bool(settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3")


async def _gateway_call(request: HttpRequest, route: Route) -> HttpResponseBase:
    if request.method != "POST":
        return refusal_response(route.provider, GatewayRefusal(405, "method_not_allowed", "Use POST."))
    try:
        response = await _forward(request, route)
    except GatewayRefusal as refusal:
        if refusal.request_id is None:  # refused before it was authorized: the client's own id, if it sent one
            refusal.request_id = _client_request_id(request)
        response = refusal_response(route.provider, refusal)
    except Exception:
        logger.exception("gateway call failed")
        failure = GatewayRefusal(500, "internal_error", "The gateway failed; the call was not recorded.",
                                 request_id=_client_request_id(request))  # fmt: skip
        response = refusal_response(route.provider, failure)
    if not isinstance(request, ASGIRequest):
        # on the web port (WSGI) this event loop ends with the request: its upstream client goes with it
        await upstream_sessions_close()
    return response


def _endpoint(name: str) -> Any:
    route = ROUTES[name]

    @csrf_exempt
    @transaction.non_atomic_requests
    async def view(request: HttpRequest) -> HttpResponseBase:
        return await _gateway_call(request, route)

    view.__name__ = view.__qualname__ = f"gateway_{name.replace('-', '_')}"
    return view


openai_chat_completions = _endpoint("openai-chat")
openai_responses = _endpoint("openai-responses")
openai_embeddings = _endpoint("openai-embeddings")
anthropic_messages = _endpoint("anthropic-messages")


@csrf_exempt
@transaction.non_atomic_requests
async def unknown_endpoint(request: HttpRequest, rest: str = "") -> HttpResponse:
    provider = ANTHROPIC if request.path.startswith("/gateway/anthropic/") else "openai"
    refusal = GatewayRefusal(404, "unknown_endpoint", f"The gateway has no endpoint {request.path}.")
    return refusal_response(provider, refusal)
