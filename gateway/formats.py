"""The provider formats the gateway speaks: which route is which, what a request asks for, and errors as each
provider writes them, so a client's own error handling (and its SDK's exception classes) works unchanged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.decimals import decimal_string
from gateway.errors import Alternative, GatewayRefusal
from pricing.money import PRECISE

OPENAI, ANTHROPIC = "openai", "anthropic"


@dataclass(frozen=True)
class Route:
    """One gateway endpoint: the provider it speaks, what it does, and the path after the upstream's base URL."""

    provider: str
    endpoint: str  # chat, responses, embeddings, messages
    upstream_path: str
    # the request fields that bound the output, first found wins; none for embeddings (no output)
    output_fields: tuple[str, ...]


ROUTES = {
    "openai-chat": Route(OPENAI, "chat", "/chat/completions", ("max_completion_tokens", "max_tokens")),
    "openai-responses": Route(OPENAI, "responses", "/responses", ("max_output_tokens",)),
    "openai-embeddings": Route(OPENAI, "embeddings", "/embeddings", ()),
    "anthropic-messages": Route(ANTHROPIC, "messages", "/v1/messages", ("max_tokens",)),
}

# the request fields whose text is the call's input, per endpoint (what a provider tokenizes and bills as input)
_INPUT_FIELDS = {
    "chat": ("messages", "tools", "functions"),
    "responses": ("input", "instructions", "tools"),
    "embeddings": ("input",),
    "messages": ("system", "messages", "tools"),
}


@dataclass(frozen=True)
class CallRequest:
    """What a client's request asks for, read from its JSON body."""

    model: str
    input_text: str
    input_token_ids: int  # inputs sent as token ids (embeddings accept arrays of integers)
    max_output_tokens: int | None  # per choice
    choices: int  # `n`: a chat completion may ask for several, each up to max_output_tokens (the input counts once)
    stream: bool
    client_wants_usage: bool  # an OpenAI chat stream that asked for the usage chunk itself
    user: str
    body: bytes  # what is sent upstream


def header_text(raw: str) -> str | None:
    """A header value as the client wrote it, or None when its bytes are not UTF-8: the server hands a header's
    bytes over read as Latin-1, so UTF-8 text is read back as UTF-8."""
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


def header_value(text: str) -> str:
    """`text` as a header value whose bytes are its UTF-8 (the server writes a header's str as Latin-1): what the
    client sent as UTF-8 goes back as it came."""
    return text.encode("utf-8").decode("latin-1")


def _invalid(code: str, message: str) -> GatewayRefusal:
    return GatewayRefusal(400, code, message)


def _no_nul(value: Any) -> None:
    """NUL in any key or string: a provider may cut the text there, and our records never store it."""
    if isinstance(value, str):
        if "\x00" in value:
            raise _invalid("nul_character", "The body contains a NUL character (\\u0000), which is not accepted.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul(item)
    elif isinstance(value, list):
        for item in value:
            _no_nul(item)


def _texts(value: Any, texts: list[str]) -> int:
    """Gather every string under `value` into `texts`; answer how many token ids (integers in lists) it holds."""
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, dict):
        return sum(_texts(item, texts) for item in value.values())
    elif isinstance(value, list):
        return sum(1 if isinstance(item, int) and not isinstance(item, bool) else _texts(item, texts)
                   for item in value)  # fmt: skip
    return 0


def _output_bound(route: Route, body: dict[str, Any]) -> int | None:
    for name in route.output_fields:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 10**9:
            raise _invalid("max_tokens_invalid", f"{name} must be a whole number from 1 to 1000000000.")
        return value
    return None


MAX_CHOICES = 128  # OpenAI's own bound on `n`


def _choices(route: Route, body: dict[str, Any]) -> int:
    """How many answers a chat completion asks for (`n`, default 1): each is generated, and billed, in full."""
    value = body.get("n") if route.endpoint == "chat" else None
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CHOICES:
        raise _invalid("n_invalid", f"n must be a whole number from 1 to {MAX_CHOICES}.")
    return value


def call_request_read(route: Route, raw: bytes) -> CallRequest:
    """Read a client's request body; refuse (400) what is not a JSON object naming a model."""
    if b"\x00" in raw:
        raise _invalid("nul_character", "The body contains a NUL byte, which is not accepted.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _invalid("invalid_json", "The body is not valid JSON (UTF-8).") from None
    if not isinstance(body, dict):
        raise _invalid("invalid_body", "The body must be a JSON object.")
    _no_nul(body)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise _invalid("model_required", "model is required: the name of the model to call (1 to 200 characters).")
    stream = body.get("stream") is True and route.endpoint != "embeddings"
    options = body.get("stream_options")
    client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    forwarded = raw
    if stream and route.endpoint == "chat" and not client_wants_usage:
        # OpenAI sends a stream's usage only when asked; the extra chunk is taken out again on the way back
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        forwarded = json.dumps(body, ensure_ascii=False).encode()
    texts: list[str] = []
    token_ids = sum(_texts(body.get(name), texts) for name in _INPUT_FIELDS[route.endpoint])
    user = body.get("user")
    return CallRequest(
        model=model, input_text="\n".join(texts), input_token_ids=token_ids,
        max_output_tokens=_output_bound(route, body), choices=_choices(route, body), stream=stream,
        client_wants_usage=client_wants_usage, user=user if isinstance(user, str) else "", body=forwarded,
    )  # fmt: skip


_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
                 403: "permission_error", 404: "invalid_request_error", 408: "invalid_request_error",
                 409: "invalid_request_error",
                 413: "invalid_request_error", 429: "rate_limit_error"}  # fmt: skip
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 405: "invalid_request_error",
                    403: "permission_error", 404: "not_found_error", 408: "timeout_error",
                    409: "invalid_request_error",
                    413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error"}  # fmt: skip


def _amount(value: Decimal) -> str:
    """An amount as the API writes it (core.decimals: plain notation, no trailing zeros), at the columns' places."""
    return decimal_string(value.quantize(PRECISE))


def _alternatives(alternatives: list[Alternative]) -> list[dict[str, str]]:
    return [{"model_id": a.model_id, "credits": _amount(a.credits), "charge_usd": _amount(a.charge_usd)}
            for a in alternatives]  # fmt: skip


def error_body(provider: str, refusal: GatewayRefusal) -> dict[str, Any]:
    """The refusal as the provider writes errors: OpenAI `{"error": {message, type, param, code}}`, Anthropic
    `{"type": "error", "error": {type, message}}`; both carry our `code` and, for a cost denial, `alternatives`."""
    if provider == ANTHROPIC:
        error: dict[str, Any] = {
            "type": _ANTHROPIC_TYPES.get(refusal.status, "api_error"), "message": refusal.message, "code": refusal.code,
        }  # fmt: skip
    else:
        kind = _OPENAI_TYPES.get(refusal.status, "server_error" if refusal.status >= 500 else "invalid_request_error")
        error = {"message": refusal.message, "type": kind, "param": None, "code": refusal.code}
    if refusal.alternatives:
        error["alternatives"] = _alternatives(refusal.alternatives)
    return {"type": "error", "error": error} if provider == ANTHROPIC else {"error": error}
