"""What the usage console pages share: the capped-count paginator, JSON shown readably, the link to an account."""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

COUNT_CAP = 10_000  # the events changelist counts matches up to this, never the whole table


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 matches (a bounded subquery), so a page of a huge table never waits on COUNT(*)."""

    @cached_property
    def count(self) -> int:
        object_list: Any = self.object_list
        if isinstance(object_list, QuerySet):
            return object_list[: COUNT_CAP + 1].count()
        return len(object_list)


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def _account_url(account_id: int | None) -> str:
    if account_id is None:
        return ""
    try:
        return reverse("admin:billing_account_change", args=[account_id])
    except NoReverseMatch:
        return ""
