"""Change previews in the catalog forms: before a new model price, feature cost or plan terms version is saved,
what it would have done to last period's usage.

Recorded usage lives above pricing, so the app that reads it (the console) registers a function per kind that
draws the preview of a version; pricing only asks for it. The version shown is the one the service would write:
it is written inside a transaction, drawn, and rolled back. Without a registered function the forms save as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.utils.safestring import SafeString

PREVIEW = "_preview"
MODEL_PRICE, FEATURE_COST, PLAN_TERMS = "model_price", "feature_cost", "plan_terms"

Previewer = Callable[[Any], SafeString]
_previewers: dict[str, Previewer] = {}


def change_preview_register(kind: str, previewer: Previewer) -> None:
    """`previewer(version)` gets the unsaved-for-good ModelPrice, FeatureCost or PlanTerms and returns HTML."""
    _previewers[kind] = previewer


def change_preview_offered(kind: str) -> bool:
    return kind in _previewers


def change_preview_wanted(request: HttpRequest, kind: str) -> bool:
    return request.method == "POST" and PREVIEW in request.POST and kind in _previewers


def change_preview_draw(kind: str, version: Any) -> SafeString:
    return _previewers[kind](version)
