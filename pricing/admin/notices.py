"""Notices on a model's page from the apps above pricing, e.g. the refused events that wait for the model.

Refused usage lives above pricing, so the app that keeps it (usage) registers a function that draws its notice for
a model (or returns None); pricing only shows what it gets. Without a registered function the page is as before.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.utils.safestring import SafeString

from pricing.models import AIModel

ModelNotice = Callable[[HttpRequest, AIModel], SafeString | None]
_model_notices: list[ModelNotice] = []


def model_notice_register(notice: ModelNotice) -> None:
    """`notice(request, model)` returns HTML for the model's page, or None when it has nothing to say."""
    if notice not in _model_notices:
        _model_notices.append(notice)


def model_notices(request: HttpRequest, model: AIModel) -> list[SafeString]:
    drawn = (notice(request, model) for notice in _model_notices)
    return [html for html in drawn if html]
