"""Whatever a client sends, the gateway answers a 4xx in the provider's error format, never a 500, and forwards
nothing it refused."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.gateway.conftest import gateway_settled
from tests.gateway.fake_upstream import FakeUpstream
from usage.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = "/gateway/openai/v1/chat/completions"
MESSAGES = "/gateway/anthropic/v1/messages"


def _post(gateway_url: str, path: str, account: Any, content: bytes, **headers: str) -> httpx.Response:
    auth = {"x-api-key": account.api_key} if path == MESSAGES else {"authorization": f"Bearer {account.api_key}"}
    return httpx.post(gateway_url + path, content=content, headers={**auth, **headers}, timeout=30)


def _openai_error(response: httpx.Response) -> str:
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    return str(error["code"])


def _anthropic_error(response: httpx.Response) -> str:
    body = response.json()
    assert body["type"] == "error" and {"type", "message"} <= set(body["error"])
    return str(body["error"]["code"])


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_body"),
        (b'{"messages": []}', 400, "model_required"),
        (b'{"model": 7}', 400, "model_required"),
        (b'{"model": "gpt-4o-mini", "messages": [], "max_tokens": -1}', 400, "max_tokens_invalid"),
        (b'{"model": "gpt-4o-mini", "messages": [], "max_tokens": "9"}', 400, "max_tokens_invalid"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a\x00b"}]}', 400, "nul_character"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a\\u0000b"}], "max_tokens": 5}', 400,
         "nul_character"),
        (b'{"model": "gpt-9-imaginary", "messages": [], "max_tokens": 5}', 404, "model_not_found"),
        (b"[" * 100_000, 400, "invalid_json"),
    ],
)  # fmt: skip
def test_bad_bodies_are_4xx_in_the_openai_format(
    gateway_url: str, account: Any, fake: FakeUpstream, content: bytes, status: int, code: str
) -> None:
    response = _post(gateway_url, CHAT, account, content)

    assert (response.status_code, _openai_error(response)) == (status, code)
    assert fake.received == []


def test_bad_bodies_are_4xx_in_the_anthropic_format(gateway_url: str, account: Any, fake: FakeUpstream) -> None:
    response = _post(gateway_url, MESSAGES, account, b"{")
    assert (response.status_code, _anthropic_error(response)) == (400, "invalid_json")
    response = _post(gateway_url, MESSAGES, account, b'{"model": "claude-9", "max_tokens": 5, "messages": []}')
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"
    assert fake.received == []


def test_a_body_over_the_cap_is_413_before_it_is_read(gateway_url: str, account: Any, fake: FakeUpstream) -> None:
    huge = (
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * settings.GATEWAY_MAX_BODY_BYTES
    )
    response = _post(gateway_url, CHAT, account, huge + b'"}]}')
    assert (response.status_code, _openai_error(response)) == (413, "request_too_large")

    def chunked() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(9):
            yield b"x" * (settings.GATEWAY_MAX_BODY_BYTES // 8)

    response = httpx.post(gateway_url + MESSAGES, content=chunked(), headers={"x-api-key": account.api_key})
    assert response.status_code == 413 and response.json()["error"]["type"] == "request_too_large"
    assert fake.received == []


def test_a_body_that_stops_arriving_is_408_not_a_connection_held_forever(
    gateway_url: str, account: Any, fake: FakeUpstream, settings: Any
) -> None:
    settings.GATEWAY_BODY_TIMEOUT_SECONDS = 0.5
    host, port = gateway_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(
            f"POST {CHAT} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {account.api_key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"model": "gpt-4'
        )  # and then nothing more
        started = time.monotonic()
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert time.monotonic() - started < 5
    assert fake.received == []


def test_a_slow_body_that_keeps_arriving_is_read_to_its_end(gateway_url: str, account: Any, fake: FakeUpstream,
                                                           settings: Any) -> None:  # fmt: skip
    """The deadline is for each next part, not the whole upload: a body sent in pieces 0.2 s apart, for longer in
    all than the deadline, is answered."""
    settings.GATEWAY_BODY_TIMEOUT_SECONDS = 0.5
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi " * 30}],
                       "max_tokens": 5}).encode()  # fmt: skip

    def slowly() -> Any:
        for start in range(0, len(body), 20):
            time.sleep(0.2)
            yield body[start : start + 20]

    started = time.monotonic()
    response = httpx.post(gateway_url + CHAT, content=slowly(), timeout=30,
                          headers={"authorization": f"Bearer {account.api_key}"})  # fmt: skip
    assert time.monotonic() - started > 1.0  # longer than the deadline, in all
    assert response.status_code == 200, response.text
    assert len(fake.received) == 1


@pytest.mark.parametrize(
    ("header", "value", "code"),
    [
        ("TokenLedger-Operation-Type", b"x" * 101, "invalid_operation_type"),
        ("TokenLedger-Operation-Type", b"op\xff", "invalid_header"),
        ("TokenLedger-Request-Id", b"abc\xff\xfe", "invalid_header"),
        ("TokenLedger-Request-Id", b"x" * 129, "invalid_request_id"),
    ],
)
def test_our_headers_that_cannot_be_recorded_as_sent_are_400(
    gateway_url: str, account: Any, fake: FakeUpstream, header: str, value: bytes, code: str
) -> None:
    """Not cut short, nor read as Latin-1: the call is refused and nothing is authorized or forwarded."""
    body = b'{"model": "gpt-4o-mini", "messages": [], "max_tokens": 5}'
    response = httpx.post(gateway_url + CHAT, content=body, timeout=30,
                          headers=[(b"authorization", f"Bearer {account.api_key}".encode()), (header.encode(), value)])  # fmt: skip
    assert (response.status_code, _openai_error(response)) == (400, code)
    unknown = httpx.post(gateway_url + CHAT, content=body, timeout=30,
                         headers=[(b"authorization", b"Bearer tl_nope_nope"), (header.encode(), value)])  # fmt: skip
    assert (unknown.status_code, _openai_error(unknown)) == (401, "invalid_api_key")  # who calls, before what
    assert fake.received == []


def test_a_utf8_request_id_is_recorded_and_answered_as_it_was_sent(
    gateway_url: str, account: Any, fake: FakeUpstream
) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [], "max_tokens": 5}'
    sent = "café-7".encode()
    response = httpx.post(gateway_url + CHAT, content=body, timeout=30,
                          headers=[(b"authorization", f"Bearer {account.api_key}".encode()),
                                   (b"tokenledger-request-id", sent)])  # fmt: skip
    assert response.status_code == 200
    assert dict(response.headers.raw)[b"tokenledger-request-id"] == sent
    gateway_settled()
    assert UsageEvent.objects.get(account=account).request_id == "café-7"


def test_keys_methods_and_paths(gateway_url: str, account: Any, fake: FakeUpstream) -> None:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [], "max_tokens": 5}).encode()
    missing = httpx.post(gateway_url + CHAT, content=body)
    assert (missing.status_code, _openai_error(missing)) == (401, "missing_api_key")
    wrong = httpx.post(gateway_url + CHAT, content=body, headers={"authorization": "Bearer tl_nope_nope"})
    assert (wrong.status_code, _openai_error(wrong)) == (401, "invalid_api_key")
    assert httpx.get(gateway_url + CHAT).status_code == 405
    unknown = httpx.post(gateway_url + "/gateway/openai/v1/images/generations", content=body)
    assert (unknown.status_code, _openai_error(unknown)) == (404, "unknown_endpoint")
    assert fake.received == []


def test_a_base_url_without_the_gateway_prefix_is_told_the_right_one(
    gateway_url: str, account: Any, fake: FakeUpstream
) -> None:
    """The common mistake: the provider's SDK pointed at the host (or host/v1) rather than at the gateway's base URL
    answers in the provider's format, saying which base URL to use, rather than the site's HTML page."""
    with (
        openai.OpenAI(api_key=account.api_key, base_url=f"{gateway_url}/v1", max_retries=0) as openai_client,
        pytest.raises(openai.NotFoundError) as wrong,
    ):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=[], max_tokens=5)
    assert wrong.value.code == "unknown_endpoint" and "/gateway/openai/v1" in wrong.value.message
    with (
        anthropic.Anthropic(api_key=account.api_key, base_url=gateway_url, max_retries=0) as anthropic_client,
        pytest.raises(anthropic.NotFoundError) as missed,
    ):
        anthropic_client.messages.create(model="claude-3-5-haiku", max_tokens=5, messages=[])
    assert missed.value.body["error"]["code"] == "unknown_endpoint"  # type: ignore[index]
    assert "/gateway/anthropic" in missed.value.message
    assert fake.received == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {}, optional={"model": JSON | st.sampled_from(["gpt-4o-mini", "claude-3-5-haiku"]), "messages": JSON,
                  "max_tokens": JSON, "stream": JSON, "input": JSON, "stream_options": JSON, "system": JSON},
)  # fmt: skip


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=FIELDS | st.binary(max_size=64).map(lambda raw: raw))
def test_no_body_is_answered_with_a_500(gateway_url: str, account: Any, fake: FakeUpstream, body: Any) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    for path in (CHAT, MESSAGES, "/gateway/openai/v1/responses", "/gateway/openai/v1/embeddings"):
        response = _post(gateway_url, path, account, content)
        assert response.status_code < 500, response.text


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_an_unknown_key_hears_401_before_anything_about_its_body(gateway_url: str, fake: FakeUpstream, path: str):
    headers = {"x-api-key": "tl_nope_nope"} if path == MESSAGES else {"authorization": "Bearer tl_nope_nope"}
    response = httpx.post(gateway_url + path, content=b"{}", headers=headers, timeout=30)
    assert response.status_code == 401
    code = _anthropic_error(response) if path == MESSAGES else _openai_error(response)
    assert code == "invalid_api_key"
    assert fake.received == []
