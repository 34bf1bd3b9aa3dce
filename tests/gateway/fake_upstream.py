"""A fake OpenAI and Anthropic served over real HTTP on loopback (uvicorn), for the gateway to call.

It answers with the SDK tests' fake provider (tests/sdk/fake_provider.py: both formats, streaming and not, errors on
demand) and adds what only a real server can do: a stream sent slowly, event by event, and a stream that breaks
off. It keeps every request it received, headers included, to show what the gateway forwarded.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx2

from tests.sdk.fake_provider import FakeProvider

EMBEDDING_USAGE = {"prompt_tokens": 8, "total_tokens": 8}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeUpstream:
    provider: FakeProvider = field(default_factory=FakeProvider)
    received: list[Received] = field(default_factory=list)
    answer_delay: float = 0.0  # seconds before the answer starts
    event_delay: float = 0.0  # seconds between the events of a stream
    break_after_events: int | None = None  # drop the connection after this many events of a stream
    streams_finished: int = 0
    set_cookie: str | None = None  # a Set-Cookie header on every answer
    redirect_to: str | None = None  # answer every call with a 307 to this URL

    def reset(self) -> None:
        self.provider = FakeProvider()
        self.received.clear()
        self.answer_delay, self.event_delay, self.break_after_events, self.streams_finished = 0.0, 0.0, None, 0
        self.set_cookie = self.redirect_to = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append(Received(path=scope["path"], headers=headers, body=json.loads(raw or b"{}")))
        if self.redirect_to is not None:
            await send({"type": "http.response.start", "status": 307, "headers": [
                (b"location", self.redirect_to.encode()), (b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b'{"moved": true}'})
            return
        if scope["path"].endswith("/embeddings"):
            answer = httpx2.Response(200, headers={"x-request-id": "req_embed_1"}, json={
                "object": "list", "model": "text-embedding-3-small", "usage": EMBEDDING_USAGE,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
            })  # fmt: skip
        else:
            answer = self.provider.handle(httpx2.Request("POST", f"http://fake{scope['path']}", content=raw))
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        kept = [(k.encode(), v.encode()) for k, v in answer.headers.items() if k.lower() != "content-length"]
        if self.set_cookie:
            kept.append((b"set-cookie", self.set_cookie.encode()))
        await send({"type": "http.response.start", "status": answer.status_code, "headers": kept})
        if "text/event-stream" not in answer.headers.get("content-type", ""):
            await send({"type": "http.response.body", "body": answer.content})
            return
        events = [e + b"\n\n" for e in re.split(rb"\n\n", answer.content) if e]
        for number, event in enumerate(events):
            if self.break_after_events is not None and number >= self.break_after_events:
                raise ConnectionAbortedError("the fake provider breaks off the stream")
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if self.event_delay:
                await asyncio.sleep(self.event_delay)
        await send({"type": "http.response.body", "body": b""})
        self.streams_finished += 1
