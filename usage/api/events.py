"""POST /api/usage/events: record a batch of events (an account's, or a server key's across customers)."""

from __future__ import annotations

import gc
import threading
from decimal import Decimal
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import OwnTransactionAccountApi
from billing.authentication import request_api_key_id, request_event_accounts
from core.api_errors import ApiError, PayloadTooLarge
from core.client_ip import client_ip
from core.parsers import DecimalJSONParser
from usage.api.common import amount_field, amount_out, money_field, request_body
from usage.event_dimensions import SERVICE_TIER_NAMES
from usage.events import INT32_MAX, MAX_COUNT
from usage.services.customer_batches import EventRouting, event_customers, usage_record_routed
from usage.services.recording import DUPLICATE, RECORDED, REJECTED, EventResult
from usage.throttling import usage_events_rate_take


class EventResultSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    status = serializers.ChoiceField(choices=[RECORDED, DUPLICATE, REJECTED])
    cost_usd = amount_field(allow_null=True)
    charge_usd = amount_field(allow_null=True)
    credits = amount_field(allow_null=True)
    error = serializers.DictField(child=serializers.CharField(), allow_null=True)
    over_reservation = serializers.BooleanField(help_text="used more than its reservation was authorized for")


class UsageEventInputSerializer(serializers.Serializer):
    """One event as CONTRACT.md describes it (documentation; each event is checked by usage.events.EVENT_FIELDS,
    whose limits these repeat)."""

    request_id = serializers.CharField(max_length=128)
    model = serializers.CharField(max_length=200)
    input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    output_tokens = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    cached_input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    reasoning_tokens = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    images = serializers.IntegerField(min_value=0, max_value=INT32_MAX, required=False)
    features = serializers.ListField(child=serializers.JSONField(), required=False, max_length=50)
    multiplier = money_field(required=False, min_value=1, max_value=1000)
    operation_type = serializers.CharField(required=False, max_length=100)
    user = serializers.CharField(required=False, max_length=200)
    conversation_id = serializers.CharField(required=False, max_length=200)
    cache_write_input_tokens = serializers.IntegerField(
        min_value=0, max_value=MAX_COUNT, required=False, help_text="5-minute writes"
    )
    cache_write_1h_input_tokens = serializers.IntegerField(
        min_value=0, max_value=MAX_COUNT, required=False, help_text="1-hour writes"
    )
    image_input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    image_output_tokens = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    audio_input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    audio_output_tokens = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    image_size = serializers.CharField(max_length=20, required=False, help_text="e.g. 1024x1024")
    image_quality = serializers.CharField(max_length=20, required=False, help_text="e.g. standard, hd, high")
    seconds = serializers.DecimalField(
        max_digits=20, decimal_places=12, min_value=Decimal(0), max_value=Decimal(10**7), required=False
    )
    characters = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    requests = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    service_tier = serializers.ChoiceField(choices=sorted(SERVICE_TIER_NAMES), required=False)
    provider_request_id = serializers.CharField(max_length=200, required=False)
    occurred_at = serializers.DateTimeField(required=False)
    metadata = serializers.DictField(required=False)
    customer = serializers.CharField(
        required=False, max_length=128,
        help_text="the customer's external id: with a server key any customer (default: the TokenLedger-Customer "
        "header); with an account key only its own",
    )  # fmt: skip


class UsageBatchInputSerializer(serializers.Serializer):
    events = UsageEventInputSerializer(many=True)


def _result_out(result: EventResult) -> dict[str, Any]:
    return {
        "request_id": result.request_id,
        "status": result.status,
        "cost_usd": amount_out(result.cost_usd),
        "charge_usd": amount_out(result.charge_usd),
        "credits": amount_out(result.credits),
        "error": result.error,
        "over_reservation": result.over_reservation,
    }


class CollectorPause:
    """Python's cyclic garbage collector paused while a batch is read, recorded and answered.

    A batch of 1,000 events makes tens of thousands of objects (parsed events, ratings, rows, results) that all live
    until its answer is made; each 700 of them started a collection that traced every one still alive, about a
    tenth of the batch's time, to find no cycle. Reference counting frees them as before. The batch that finds the
    collector enabled pauses it and enables it again when it ends; a batch overlapping it (threads share the
    collector) runs as it finds it, so under overlapping batches the collector is never off longer than one batch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread whose batch paused it

    def __enter__(self) -> None:
        with self._lock:
            if self._owner is None and gc.isenabled():
                gc.disable()
                self._owner = threading.get_ident()

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            if self._owner == threading.get_ident():
                self._owner = None
                gc.enable()


collector_pause = CollectorPause()


class UsageRecordApi(OwnTransactionAccountApi):
    # JSON only: a form or multipart body (a file part) answers 415 unsupported_media_type
    parser_classes = [DecimalJSONParser]

    class UsageRecordOutputSerializer(serializers.Serializer):
        results = EventResultSerializer(many=True)
        recorded = serializers.IntegerField()
        duplicate = serializers.IntegerField()
        rejected = serializers.IntegerField()

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="UsageEventsInput",
            serializers=[UsageEventInputSerializer, UsageBatchInputSerializer],
            resource_type_field_name=None,
        ),
        responses={
            200: UsageRecordOutputSerializer,
            201: UsageRecordOutputSerializer,
            400: UsageRecordOutputSerializer,
            413: OpenApiTypes.OBJECT,
            415: OpenApiTypes.OBJECT,
        },
        summary='Record one event, or a batch of up to 1,000 ({"events": [...]})',
        description=(
            "Each event is answered recorded, duplicate (its request_id was recorded before: the first result's "
            "amounts, nothing changes) or rejected (with a code; kept for an admin to replay). A single event "
            "answers 201 when recorded, 200 when a duplicate and 400 when rejected; a batch always answers 200."
        ),
    )
    def post(self, request: Request) -> Response:
        with collector_pause:
            return self._record(request)

    def _record(self, request: Request) -> Response:
        body = request_body(request)
        single = isinstance(body, dict) and "events" not in body
        events = [body] if single else (body.get("events") if isinstance(body, dict) else None)
        if not isinstance(events, list) or not events:
            raise ApiError("invalid", 'Send one event object, or {"events": [...]} with at least one event.')
        if len(events) > settings.USAGE_MAX_BATCH:
            raise PayloadTooLarge(
                f"A batch holds at most {settings.USAGE_MAX_BATCH} events; this one has {len(events)}."
            )
        usage_events_rate_take(request=request, events=len(events))
        # each event may name its `customer` (server keys: any customer; account keys: only their own)
        default, customers, own_only = request_event_accounts(request, event_customers(events))
        batch = usage_record_routed(
            routing=EventRouting(default=default, customers=customers, own_only=own_only,
                                 api_key_id=request_api_key_id(request)),
            raw_events=events,
            ip=client_ip(request._request), user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )  # fmt: skip
        # written as UsageRecordOutputSerializer describes it, without a serializer field per value: a batch
        # answers 1,000 results, and each amount is already a Decimal with at most 12 places
        data: dict[str, Any] = {
            "results": [_result_out(r) for r in batch.results],
            "recorded": batch.count(RECORDED),
            "duplicate": batch.count(DUPLICATE),
            "rejected": batch.count(REJECTED),
        }
        if not single:
            return Response(data)
        result = batch.results[0]
        if result.status == REJECTED and result.error:
            data.update({"error": result.error["code"], "message": result.error["message"], "fields": {}})
            return Response(data, status=status.HTTP_400_BAD_REQUEST)
        return Response(data, status=status.HTTP_201_CREATED if result.status == RECORDED else status.HTTP_200_OK)
