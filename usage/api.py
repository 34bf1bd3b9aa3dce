"""Account endpoints for metering: record events, authorize a call, estimate one, read stats, export CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import AccountApi, OwnTransactionAccountApi
from billing.authentication import request_account, request_account_ref, request_api_key_id, request_event_accounts
from billing.services.periods import period_current
from core.api_errors import ApiError, PayloadTooLarge
from core.decimals import DecimalStringField, decimal_string
from core.parsers import DecimalJSONParser
from pricing.money import PRECISE
from pricing.rating import FeatureUse
from pricing.selectors import catalog_snapshot, plan_terms_version
from usage.estimate import estimate_request, max_output_tokens_for, text_of
from usage.event_dimensions import SERVICE_TIER_NAMES
from usage.events import EVENT_FEATURES, INT32_MAX, MAX_COUNT, EventRefused
from usage.models import Reservation
from usage.selectors import BREAKDOWN_LIMIT, Bucket, reservation_by_request, usage_export_rows, usage_stats
from usage.services.authorization import AuthorizeRequest, reservation_create
from usage.services.customer_batches import EventRouting, event_customers, usage_record_routed
from usage.services.recording import DUPLICATE, RECORDED, REJECTED, EventResult
from usage.services.reservations import ReservationError, reservation_release
from usage.throttling import PlanRateThrottle, usage_events_rate_take


def money_field(**options: Any) -> serializers.DecimalField:
    """A precise amount as a decimal string (28 digits, 12 places)."""
    return serializers.DecimalField(max_digits=28, decimal_places=12, **options)


def amount_field(**options: Any) -> DecimalStringField:
    """A precise amount (28 digits, 12 places) answered as the API's decimal string, without trailing zeros."""
    return DecimalStringField(max_digits=28, decimal_places=12, **options)


def _client_ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def _body(request: Request) -> Any:
    try:
        return request.data
    except RequestDataTooBig:
        raise PayloadTooLarge(f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.") from None


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


def _amount_out(value: Decimal | None) -> str | None:
    """An amount as the API's decimal string (core.decimals), rounded to the 12 places the columns keep."""
    return None if value is None else decimal_string(value.quantize(PRECISE))


def _time_out(value: datetime) -> str:
    """A time as DRF's DateTimeField writes it: ISO 8601 in UTC, with Z."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _result_out(result: EventResult) -> dict[str, Any]:
    return {
        "request_id": result.request_id,
        "status": result.status,
        "cost_usd": _amount_out(result.cost_usd),
        "charge_usd": _amount_out(result.charge_usd),
        "credits": _amount_out(result.credits),
        "error": result.error,
        "over_reservation": result.over_reservation,
    }


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
        body = _body(request)
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
            ip=_client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", ""),
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


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                    "cepo": {"type": "boolean"},
                },
                "required": ["key"],
            },
        ]
    }
)
class FeatureUseField(serializers.Field):
    """A feature key, or {"key", "quantity"?, "cepo"?}: read by the same rules as an event's features."""

    def to_representation(self, value: FeatureUse) -> dict[str, Any]:
        return {"key": value.key, "quantity": str(value.quantity), "cepo": value.cepo}

    def to_internal_value(self, data: Any) -> FeatureUse:
        try:
            return EVENT_FEATURES.use_of(data)
        except EventRefused as exc:
            raise serializers.ValidationError(exc.message) from None


def features_distinct(uses: list[FeatureUse]) -> list[FeatureUse]:
    """Each feature listed once: a repeated key would compound its multiplier."""
    keys = [use.key for use in uses]
    if len(set(keys)) != len(keys):
        raise serializers.ValidationError(
            'each feature is listed once; a feature used several times is {"key", "quantity"}'
        )
    return uses


class PriceDimensionsSerializer(serializers.Serializer):
    """The price dimensions a client may know before a call (docs/pricing-dimensions.md): parts of `input_tokens`,
    the service tier and the units of other modes. `dimensions()` gives them as UsageLine fields."""

    cached_input_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    cache_write_input_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    cache_write_1h_input_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    image_input_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    audio_input_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    service_tier = serializers.ChoiceField(
        choices=sorted(SERVICE_TIER_NAMES),
        required=False,
        default="default",
        help_text="default, batch, flex, priority",
    )
    image_size = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    image_quality = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    seconds = serializers.DecimalField(
        max_digits=16,
        decimal_places=6,
        min_value=Decimal(0),
        max_value=Decimal(10**7),
        required=False,
        default=Decimal(0),
    )
    characters = serializers.IntegerField(min_value=0, max_value=10**10, required=False, default=0)
    requests = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)

    DIMENSIONS = (
        "cached_input_tokens", "cache_write_input_tokens", "cache_write_1h_input_tokens", "image_input_tokens",
        "audio_input_tokens", "image_size", "image_quality", "characters", "requests",
    )  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        parts = sum(attrs.get(name, 0) for name in self.DIMENSIONS if name.endswith("_tokens"))
        total = attrs.get("input_tokens")
        if total is not None and parts > total:
            raise serializers.ValidationError(
                {"input_tokens": "the cached, cache-write, image and audio input tokens are parts of input_tokens"}
            )
        return attrs

    @classmethod
    def dimensions(cls, values: dict[str, Any]) -> dict[str, Any]:
        out = {name: values.get(name) or (0 if name not in ("image_size", "image_quality") else "")
               for name in cls.DIMENSIONS}  # fmt: skip
        out["service_tier"] = SERVICE_TIER_NAMES[values.get("service_tier") or "default"]
        out["seconds"] = Decimal(values.get("seconds") or 0)
        return out


class UsageAuthorizeApi(OwnTransactionAccountApi):
    throttle_classes = [PlanRateThrottle]

    class AuthorizeInputSerializer(PriceDimensionsSerializer):
        request_id = serializers.CharField(min_length=1, max_length=128, trim_whitespace=False)
        model = serializers.CharField(max_length=200)
        input_tokens = serializers.IntegerField(min_value=0, max_value=10**9)
        max_output_tokens = serializers.IntegerField(
            min_value=0, max_value=10**9, required=False, allow_null=True, default=None,
            help_text="the most output the call may produce; left out, the model's max_output_tokens",
        )  # fmt: skip
        operation_type = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        images = serializers.IntegerField(min_value=0, max_value=10_000, required=False, default=0)
        features = serializers.ListField(child=FeatureUseField(), required=False, default=list, max_length=50)

        def validate_request_id(self, value: str) -> str:
            if not value.isprintable():
                raise serializers.ValidationError("1 to 128 printable characters")
            return value

        def validate_features(self, value: list[FeatureUse]) -> list[FeatureUse]:
            return features_distinct(value)

    class AuthorizeAlternativeSerializer(serializers.Serializer):
        model_id = serializers.CharField()
        credits = amount_field()
        charge_usd = amount_field()

    class AuthorizeOutputSerializer(serializers.Serializer):
        allowed = serializers.BooleanField()
        reservation_id = serializers.IntegerField(required=False)
        held_credits = amount_field(required=False)
        expires_at = serializers.DateTimeField(required=False)
        remaining = amount_field(required=False, allow_null=True)
        reason = serializers.CharField(required=False)
        message = serializers.CharField(required=False)
        alternatives = serializers.ListField(child=serializers.DictField(), required=False)

    @extend_schema(
        request=AuthorizeInputSerializer,
        responses={200: AuthorizeOutputSerializer, 400: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
        summary="May this call run now? If so, its worst-case cost is held until it is recorded",
        description=(
            "A request_id is used once. Asking again with the same parameters answers the first decision; with "
            "other parameters (model, token counts, operation, features, images) answers 409 idempotency_conflict; "
            "a request already recorded answers 409 already_recorded."
        ),
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        serializer = self.AuthorizeInputSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        snapshot = catalog_snapshot()
        try:
            decision = reservation_create(
                account=request_account_ref(request), snapshot=snapshot,
                request=AuthorizeRequest(
                    request_id=values["request_id"], model=values["model"], input_tokens=values["input_tokens"],
                    max_output_tokens=max_output_tokens_for(
                        model=values["model"], asked=values["max_output_tokens"], snapshot=snapshot
                    ),
                    operation_type=values["operation_type"], features=tuple(values["features"]),
                    images=values["images"], dimensions=PriceDimensionsSerializer.dimensions(values),
                ),
            )  # fmt: skip
        except ReservationError as exc:
            raise ApiError(exc.code, exc.message, status_code=exc.status_code) from None
        if not decision.allowed:
            body: dict[str, Any] = {"allowed": False, "reason": decision.reason, "message": decision.message}
            if decision.alternatives:
                body["alternatives"] = [
                    {"model_id": a.model_id, "credits": _amount_out(a.credits), "charge_usd": _amount_out(a.charge_usd)}
                    for a in decision.alternatives
                ]
            return Response(body)
        reservation = decision.reservation
        assert reservation is not None
        # written as AuthorizeOutputSerializer describes it, without a serializer on the hot path
        return Response(
            {
                "allowed": True,
                "reservation_id": reservation.pk,
                "held_credits": _amount_out(reservation.held_credits),
                "expires_at": _time_out(reservation.expires_at),
                "remaining": _amount_out(decision.remaining),
            }
        )


class UsageEstimateApi(AccountApi):
    throttle_classes = [PlanRateThrottle]

    class EstimateInputSerializer(PriceDimensionsSerializer):
        model = serializers.CharField(max_length=200)
        text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=2_000_000)
        messages = serializers.ListField(child=serializers.JSONField(), required=False, max_length=10_000)
        input_tokens = serializers.IntegerField(
            min_value=0, max_value=10**9, required=False, help_text="instead of text: the input tokens, counted"
        )
        max_output_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
        images = serializers.IntegerField(min_value=0, max_value=10_000, required=False, default=0)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "text" not in attrs and "messages" not in attrs and "input_tokens" not in attrs:
                raise serializers.ValidationError({"text": "send text, messages or input_tokens"})
            return super().validate(attrs)

    class EstimateOutputSerializer(serializers.Serializer):
        model_id = serializers.CharField()
        input_tokens = serializers.IntegerField()
        max_output_tokens = serializers.IntegerField()
        cost_usd = amount_field()
        charge_usd = amount_field()
        credits = amount_field()

    @extend_schema(
        request=EstimateInputSerializer, responses=EstimateOutputSerializer, summary="Tokens and cost of a request"
    )
    def post(self, request: Request) -> Response:
        serializer = self.EstimateInputSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        now = timezone.now()
        period = period_current(account=request_account(request), as_of=now)
        estimate = estimate_request(
            model=values["model"], text=text_of(text=values.get("text"), messages=values.get("messages")),
            max_output_tokens=values["max_output_tokens"], snapshot=catalog_snapshot(), tier=period.plan.code,
            terms=plan_terms_version(period.terms), at=now, input_tokens=values.get("input_tokens"),
            images=values["images"], dimensions=PriceDimensionsSerializer.dimensions(values),
        )  # fmt: skip
        return Response(self.EstimateOutputSerializer(vars(estimate)).data)


# The days a range may name: usage exists from 1970 on, and the day after `to` must still be a date.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)


def _day(request: Request, name: str, default: date) -> date:
    value = request.query_params.get(name)
    if not value:
        return default
    try:
        # a day, or a full ISO time (its date, as written): never a prefix of something that is not a time
        day = datetime.fromisoformat(value).date()
    except ValueError:
        raise ApiError("invalid", f"{name} must be a date, e.g. 2026-11-01", fields={name: "YYYY-MM-DD"}) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ApiError(
            "invalid", f"{name} must be between {FIRST_DAY} and {LAST_DAY}", fields={name: "a day from 1970 to 9998"}
        )
    return day


def _range(request: Request) -> tuple[date, date]:
    today = timezone.now().date()
    start = _day(request, "from", today.replace(day=1))
    end = _day(request, "to", today)
    if end < start:
        raise ApiError("invalid", "to is before from", fields={"to": "on or after from"})
    if (end - start).days > 366:
        raise ApiError("invalid", "a range covers at most 366 days", fields={"to": "at most 366 days after from"})
    return start, end


def _bucket(bucket: Bucket) -> dict[str, Any]:
    return {
        "events": bucket.events, "input_tokens": bucket.input_tokens, "output_tokens": bucket.output_tokens,
        "total_tokens": bucket.total_tokens, "cost_usd": decimal_string(bucket.cost_usd),
        "charge_usd": decimal_string(bucket.charge_usd), "credits": decimal_string(bucket.credits),
    }  # fmt: skip


RANGE_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="first UTC day (default: the 1st of this month)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="last UTC day, inclusive (default: today)"),
]


class UsageBucketSerializer(serializers.Serializer):
    events = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = amount_field(help_text="provider cost")
    charge_usd = amount_field(help_text="customer charge")
    credits = amount_field()


def breakdown_field(help_text: str) -> serializers.DictField:
    return serializers.DictField(child=UsageBucketSerializer(), help_text=help_text)


class UsageStatsOutputSerializer(serializers.Serializer):
    """What UsageStatsApi answers (written by hand there: the schema is this)."""

    from_ = serializers.DateField()
    to = serializers.DateField()
    total_events = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    total_cost_usd = amount_field(help_text="customer charge")
    total_provider_cost_usd = amount_field()
    avg_cost_usd = amount_field()
    by_operation_type = breakdown_field("per operation type (`unspecified`: sent without one)")
    by_model = breakdown_field("per catalog model")
    by_day = breakdown_field("per UTC day, YYYY-MM-DD")
    by_user = breakdown_field(
        f"per end user (the events' `user`; `unspecified`: sent without one), the {BREAKDOWN_LIMIT} largest charges"
    )
    by_api_key = breakdown_field(
        "per account API key, by its prefix (never the secret); `unspecified`: recorded by a server key or the "
        f"customers API, or by a key since deleted; the {BREAKDOWN_LIMIT} largest charges"
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        return {"from": fields.pop("from_"), **fields}  # `from` is a Python keyword


class UsageStatsApi(AccountApi):
    @extend_schema(parameters=RANGE_PARAMETERS, responses=UsageStatsOutputSerializer,
                   summary="Usage totals and breakdowns")  # fmt: skip
    def get(self, request: Request) -> Response:
        start, end = _range(request)
        stats = usage_stats(account=request_account(request), start=start, end=end)
        total = stats.total
        return Response(
            {
                "from": start.isoformat(),
                "to": end.isoformat(),
                "total_events": total.events,
                "total_tokens": total.total_tokens,
                "total_cost_usd": decimal_string(total.charge_usd),
                "total_provider_cost_usd": decimal_string(total.cost_usd),
                "avg_cost_usd": decimal_string(total.charge_usd / total.events) if total.events else "0",
                "by_operation_type": {k: _bucket(v) for k, v in stats.by_operation_type.items()},
                "by_model": {k: _bucket(v) for k, v in stats.by_model.items()},
                "by_day": {k: _bucket(v) for k, v in stats.by_day.items()},
                "by_user": {k: _bucket(v) for k, v in stats.by_user.items()},
                "by_api_key": {k: _bucket(v) for k, v in stats.by_api_key.items()},
            }
        )


class UsageExportApi(AccountApi):
    @extend_schema(parameters=RANGE_PARAMETERS, responses={(200, "text/csv"): OpenApiTypes.STR},
                   summary="The account's events as CSV (streamed)")  # fmt: skip
    def get(self, request: Request) -> StreamingHttpResponse:
        start, end = _range(request)
        rows = usage_export_rows(
            account=request_account(request),
            start=datetime.combine(start, time.min, tzinfo=UTC),
            end=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
        )
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="usage-{start}-{end}.csv"'
        return response


class ReservationOutputSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    status = serializers.ChoiceField(choices=Reservation.Status.choices)
    model_id = serializers.CharField()
    held_credits = amount_field()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class ReservationDetailApi(AccountApi):
    @extend_schema(
        responses={200: ReservationOutputSerializer, 404: OpenApiTypes.OBJECT},
        summary="A reservation: active, settled (recorded), released or expired, with what it holds",
        examples=[
            OpenApiExample(
                "An active hold",
                response_only=True,
                value={
                    "request_id": "chat-42", "status": "active", "model_id": "qwen-3-32b", "held_credits": "1.5",
                    "created_at": "2026-12-07T10:00:00Z", "expires_at": "2026-12-07T10:10:00Z", "closed_at": None,
                },
            )
        ],
    )  # fmt: skip
    def get(self, request: Request, request_id: str) -> Response:
        reservation = reservation_by_request(account=request_account(request), request_id=request_id)
        if reservation is None:
            raise ApiError("not_found", f"No reservation for request {request_id!r}.", status_code=404)
        return Response(ReservationOutputSerializer(reservation).data)


class ReservationReleaseApi(AccountApi):
    class ReleaseOutputSerializer(serializers.Serializer):
        request_id = serializers.CharField()
        status = serializers.ChoiceField(choices=[Reservation.Status.RELEASED, Reservation.Status.EXPIRED])
        released_credits = amount_field()

    @extend_schema(
        request=None,
        responses={200: ReleaseOutputSerializer, 404: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
        summary="The call failed or was cancelled: free its hold now",
        description=(
            "Idempotent: releasing again answers the same. A reservation that expired answers status expired "
            "(its hold was freed by the expiry). A request already recorded answers 409 already_recorded; an "
            "unknown request_id 404 not_found."
        ),
        examples=[
            OpenApiExample(
                "Released",
                response_only=True,
                value={"request_id": "chat-42", "status": "released", "released_credits": "1.5"},
            )
        ],
    )
    def post(self, request: Request, request_id: str) -> Response:
        try:
            reservation = reservation_release(account=request_account(request), request_id=request_id)
        except ReservationError as exc:
            raise ApiError(exc.code, exc.message, status_code=exc.status_code) from None
        return Response(
            self.ReleaseOutputSerializer(
                {
                    "request_id": reservation.request_id,
                    "status": reservation.status,
                    "released_credits": reservation.held_credits,
                }
            ).data
        )
