"""The OpenAPI schema says every error an operation can answer, in the one error shape (config/api_errors.py).

A drf-spectacular postprocessing hook, so no view repeats them: every 4xx and 5xx response of every operation gets
the `Error` body, and each operation gets the error answers its shape allows, with what causes them:

- 401, 403: every operation that takes credentials;
- 400: an operation that writes or takes parameters; 404: one with path parameters;
- 413, 415: an operation with a body;
- 429, 503: every operation (rate limits; a service it needs is down or not configured).
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every API error: a stable code, a message for people, and the fields at fault.",
    "properties": {
        "error": {"type": "string", "description": "a stable code: invalid, not_found, rate_limited, ..."},
        "message": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": {},
            "description": "field name -> messages (nested for lists and objects); empty when no field is at fault",
        },
    },
    "required": ["error", "message", "fields"],
}
ERROR_DESCRIPTIONS = {
    "400": "invalid input: `fields` says which and why",
    "401": "no credentials, or credentials that are not valid",
    "403": "signed in, but not allowed (not staff, a key without the scope, a suspended account)",
    "404": "no such object, or not the caller's",
    "413": "the request body is over the size limit",
    "415": "a content type the operation does not take",
    "429": "rate limited: `Retry-After` says when to try again",
    "503": "a service this operation needs is down or not configured: `Retry-After` where a retry will help",
}
_HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def _error_codes(method: str, operation: dict[str, Any]) -> set[str]:
    parameters = operation.get("parameters", [])
    codes = {"429", "503"}
    if operation.get("security") and {} not in operation["security"]:
        codes |= {"401", "403"}
    if parameters or "requestBody" in operation or method not in ("get", "head"):
        codes.add("400")
    if any(parameter.get("in") == "path" for parameter in parameters):
        codes.add("404")
    if "requestBody" in operation:
        codes |= {"413", "415"}
    return codes


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS entry: the error answers of every operation, in the `Error` shape."""
    ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code in _error_codes(method, operation):
                responses.setdefault(code, {"description": ERROR_DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = {"application/json": {"schema": ref}}
            operation["responses"] = dict(sorted(responses.items()))
    return result
