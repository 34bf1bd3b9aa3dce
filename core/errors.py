"""The one base of every refusal a service raises: a stable `code`, the HTTP status it answers, and its message.

Pricing's, billing's and usage's errors subclass `DomainError`, so the API (core.api_errors), the commands and the
console report any of them alike without knowing the app that raised it.
"""

from typing import Any


class DomainError(Exception):
    code = "domain_error"
    status_code = 400
    fields: dict[str, Any] | None = None

    @property
    def message(self) -> str:
        return str(self)

    def field_messages(self) -> dict[str, list[str]]:
        """`fields` as the API's error body gives them: each field name with a list of messages."""
        return {name: value if isinstance(value, list) else [value] for name, value in (self.fields or {}).items()}
