"""What the usage console pages share: the capped-count paginator, JSON shown readably, the link to an account."""

from __future__ import annotations

import json
from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def _account_url(account_id: int | None) -> str:
    if account_id is None:
        return ""
    try:
        return reverse("admin:billing_account_change", args=[account_id])
    except NoReverseMatch:
        return ""
