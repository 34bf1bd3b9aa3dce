"""The gateway's ASGI application: its paths go to a Django handler without the site's middleware, after the
request body is capped; every other path goes to the site.

The site's middleware (sessions, CSRF, request log, axes...) is synchronous: under ASGI each one would run on the one
shared thread, which a call waiting on its provider would hold, so concurrent calls would queue. The gateway does
its own authentication and answers its own errors, so it needs none of them. The body is read here, at most
GATEWAY_MAX_BODY_BYTES of it, before Django (which would spool any size to disk) sees it.

Nor does a gateway call go through the rest of Django's ASGI handler: its request_started and request_finished
signals close the event loop's database connections and caches, which the gateway never uses (its database work
runs in pool threads, gateway/relay.py `in_thread`), by a hop to the one shared thread each, and its
ThreadSensitiveContext starts a thread per request for them. The gateway keeps what it needs of it: the request
object, the URL resolution and exception handling of `get_response_async`, the response written out (streams
included), and the view cancelled when the client goes away before its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpResponseBase
from django.urls import set_script_prefix

from gateway.errors import GatewayRefusal
from gateway.formats import ANTHROPIC, OPENAI, error_body
from gateway.journal import journal_close, journal_take_over
from gateway.relay import after_answer, background_drain, in_thread, response_sent, upstream_sessions_close
from gateway.services import gateway_record

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

PREFIX = "/gateway/"
URLCONF = "gateway.urls"


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler with no middleware and no request signals (see the module's docstring)."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        get_response = getattr(self, "_get_response_async" if is_async else "_get_response")
        self._middleware_chain = convert_exception_to_response(get_response)

    async def serve(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        """Answer one gateway request whose body was read already (`receive` then only tells of a disconnect)."""
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, io.BytesIO(body))
        if request is None:  # a path that is not UTF-8
            assert error_response is not None
            await self.send_response(error_response, send)
            return
        request.urlconf = URLCONF  # only the gateway's routes: the site's URLconf is not searched

        async def process_request() -> HttpResponseBase:
            response = await self.run_get_response(request)
            try:
                with contextlib.suppress(asyncio.CancelledError):  # the client went away while it was being sent
                    await self.send_response(response, send)
            finally:
                response_sent(response)  # the recording of a whole answer starts now (gateway/relay.py)
            return response

        # as Django's handler does: a client that goes away cancels the view (a stream's relay then decides what
        # the provider's call still needs, gateway/relay.py)
        listening = asyncio.ensure_future(self.listen_for_disconnect(receive))
        processing = asyncio.ensure_future(process_request())
        await asyncio.wait((listening, processing), return_when=asyncio.FIRST_COMPLETED)
        for task in (listening, processing):
            if task.done():
                if not task.cancelled() and isinstance(task.exception(), RequestAborted):
                    continue
                task.result()
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                    await task


async def _refuse(scope: Scope, send: Send, refusal: GatewayRefusal) -> None:
    path = scope["path"]
    outside = not path.startswith(PREFIX)
    provider = ANTHROPIC if path.startswith(PREFIX + "anthropic/") or (outside and "/messages" in path) else OPENAI
    body = json.dumps(error_body(provider, refusal)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> GatewayRefusal:
    return GatewayRefusal(413, "request_too_large", f"The request body is larger than {limit} bytes.")


# what is read and dropped of a refused body before the refusal is sent (nginx's lingering close, done first: uvicorn
# answers every receive() with a disconnect once the response is complete). Closing a connection with unread data in
# it makes the kernel reset it, and the client may then lose the refusal it was sent.
_DROP_LIMIT_FACTOR = 8


async def _drop_rest(receive: Receive, more_body: bool, dropped: int, limit: int) -> bool:
    """Read and drop the rest of a refused body, up to limit; False when the client went away meanwhile."""
    while more_body and dropped <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        dropped += len(message.get("body", b""))
        more_body = message.get("more_body", False)
    return True


async def _body_capped(scope: Scope, receive: Receive, send: Send) -> bytes | None:
    """The whole body, or None once a refusal was sent (too large) or the client went away."""
    limit = settings.GATEWAY_MAX_BODY_BYTES
    drop_limit = _DROP_LIMIT_FACTOR * limit
    declared = dict(scope.get("headers") or []).get(b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        if declared.isdigit() and int(declared) <= drop_limit and not await _drop_rest(receive, True, 0, drop_limit):
            return None
        await _refuse(scope, send, _too_large(limit) if declared.isdigit() else
                      GatewayRefusal(400, "invalid_body", "Content-Length is not a number."))  # fmt: skip
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            if await _drop_rest(receive, message.get("more_body", False), size, drop_limit):
                await _refuse(scope, send, _too_large(limit))
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _patient(receive: Receive) -> Receive:
    """`receive`, each part of the body waited for at most GATEWAY_BODY_TIMEOUT_SECONDS (TimeoutError after): a
    client that stops sending does not hold its connection forever; one that sends slowly is not cut off."""

    async def receive_in_time() -> Message:
        return await asyncio.wait_for(receive(), timeout=settings.GATEWAY_BODY_TIMEOUT_SECONDS)

    return receive_in_time


def _stalled() -> GatewayRefusal:
    return GatewayRefusal(408, "request_timeout", "The request body stopped arriving: nothing came for "
                          f"{settings.GATEWAY_BODY_TIMEOUT_SECONDS:g} s.")  # fmt: skip


# what a provider's SDK calls when its base URL was given without the gateway's prefix (the site has no such path)
_PROVIDER_PATHS = ("/v1/", "/chat/completions", "/responses", "/embeddings", "/messages")


def _provider_path_outside_gateway(path: str) -> bool:
    return not path.startswith(PREFIX) and path.startswith(_PROVIDER_PATHS)


def _base_url_hint(path: str) -> GatewayRefusal:
    return GatewayRefusal(404, "unknown_endpoint", f"{path} is not a gateway path: point OpenAI clients at "
                          f"<host>{PREFIX}openai/v1 and Anthropic clients at <host>{PREFIX}anthropic.")  # fmt: skip


def gateway_application(site: ASGIApp) -> ASGIApp:
    """The ASGI entry point: gateway paths to the gateway, the rest to `site`, lifespan answered here."""
    gateway = GatewayASGIHandler()

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                # what stopped processes answered and did not record (gateway/journal.py) is recorded again
                for recording in journal_take_over():
                    after_answer(in_thread(gateway_record, recording=recording))
                await send({"type": "lifespan.startup.complete"})
            # the server has finished its requests: what was recorded after an answer still has to be (run uvicorn
            # with --lifespan on, as run_stack does)
            await background_drain()
            await upstream_sessions_close()
            journal_close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] == "http" and _provider_path_outside_gateway(scope["path"]):
            try:
                drained = await _drop_rest(
                    _patient(receive), True, 0, _DROP_LIMIT_FACTOR * settings.GATEWAY_MAX_BODY_BYTES
                )
            except TimeoutError:
                await _refuse(scope, send, _stalled())
                return
            if drained:
                await _refuse(scope, send, _base_url_hint(scope["path"]))
            return
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await site(scope, receive, send)
            return
        try:
            body = await _body_capped(scope, _patient(receive), send)
        except TimeoutError:  # raised by a receive, so before anything was sent
            await _refuse(scope, send, _stalled())
            return
        if body is None:
            return
        await gateway.serve(scope, body, receive, send)

    return application
