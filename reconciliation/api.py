"""The reconciliation HTTP API, for staff (session or HTTP Basic; `is_staff`).

POST /api/admin/reconciliation/runs takes a multipart upload (`file`, optional `source`, tolerances, `dry_run`) and
answers the run; GET /api/admin/reconciliation/runs/<id> answers a run with a page of its lines. A body over
RECONCILIATION_UPLOAD_MAX_BYTES is refused with 413 before it is read.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import ApiError, PayloadTooLarge
from core.sign_in import BasicAuthentication
from reconciliation.conf import reconciliation_settings
from reconciliation.models import ReconciliationLine, ReconciliationRun
from reconciliation.parsers import SOURCES, UnreadableFile
from reconciliation.selectors import line_as_json, run_by_id, run_detail, run_lines
from reconciliation.services.runs import reconciliation_run

# Basic first, so an anonymous caller gets 401 (with WWW-Authenticate), a signed-in non-staff user 403.
STAFF_AUTHENTICATION: list[type[BaseAuthentication]] = [BasicAuthentication, SessionAuthentication]
STAFF_PERMISSIONS: list[type[BasePermission]] = [IsAdminUser]
MULTIPART_OVERHEAD = 64 * 1024  # the form's other fields and boundaries around the file
LINES_PAGE = 500
LINES_PAGE_MAX = 5000
BIGINT_MAX = 2**63 - 1 - LINES_PAGE_MAX  # offset + limit is sent to the database as a bigint

ErrorOutput = inline_serializer(
    name="ReconciliationError",
    fields={
        "error": serializers.CharField(),
        "message": serializers.CharField(),
        "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    },
)


class RunCreateInput(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=SOURCES, required=False, allow_blank=True, help_text="default: told from the file's header"
    )
    tolerance_pct = serializers.DecimalField(
        max_digits=9, decimal_places=4, min_value=0, max_value=100, required=False, help_text="default 5"
    )
    tolerance_usd = serializers.DecimalField(
        max_digits=24, decimal_places=12, min_value=0, required=False, help_text="default 0.05 (requests: 0.000001)"
    )
    dry_run = serializers.BooleanField(default=False, help_text="match and report, write nothing")


class RunOutput(serializers.Serializer):
    run_id = serializers.IntegerField(allow_null=True, help_text="null for a dry run")
    source = serializers.CharField()  # type: ignore[assignment]
    rows = serializers.IntegerField()
    matched = serializers.IntegerField()
    discrepancy = serializers.IntegerField()
    not_found = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]
    total_calculated_usd = serializers.CharField(help_text="decimal string")
    total_actual_usd = serializers.CharField(help_text="decimal string")
    difference_usd = serializers.CharField(help_text="actual - calculated, decimal string")
    match_rate = serializers.CharField(allow_null=True, help_text="matched / (matched + discrepancy + not_found)")
    not_in_export = serializers.IntegerField()
    status = serializers.CharField(required=False, help_text=" | ".join(ReconciliationRun.Status.values))
    failure = serializers.CharField(required=False)
    file_name = serializers.CharField(required=False)
    file_format = serializers.CharField(required=False)
    sha256 = serializers.CharField(required=False)
    size_bytes = serializers.IntegerField(required=False)
    same_file_as_run_id = serializers.IntegerField(allow_null=True, required=False)
    trigger = serializers.CharField(required=False)
    actor = serializers.CharField(allow_null=True, required=False)
    as_of = serializers.DateTimeField(required=False)
    started_at = serializers.DateTimeField(required=False)
    finished_at = serializers.DateTimeField(allow_null=True, required=False)
    duration_ms = serializers.IntegerField(allow_null=True, required=False)
    period_start = serializers.DateTimeField(allow_null=True, required=False)
    period_end = serializers.DateTimeField(allow_null=True, required=False)
    empty_buckets = serializers.IntegerField(required=False)
    events_updated = serializers.IntegerField(required=False)
    settings = serializers.DictField(required=False)
    dry_run = serializers.BooleanField(required=False)


class LineOutput(serializers.Serializer):
    key = serializers.CharField()
    status = serializers.CharField(help_text=" | ".join(ReconciliationLine.Status.values))
    calculated_usd = serializers.CharField()
    actual_usd = serializers.CharField(allow_null=True)
    difference_usd = serializers.CharField(allow_null=True)
    reason = serializers.CharField()
    reason_code = serializers.CharField()
    line_number = serializers.IntegerField(allow_null=True)
    day = serializers.DateField(allow_null=True)
    model_name = serializers.CharField()
    model_id = serializers.CharField()
    project = serializers.CharField()
    request_id = serializers.CharField()
    usage_event_id = serializers.IntegerField(allow_null=True)
    currency = serializers.CharField()
    events = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    cached_input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    provider_input_tokens = serializers.IntegerField(allow_null=True)
    provider_cached_input_tokens = serializers.IntegerField(allow_null=True)
    provider_output_tokens = serializers.IntegerField(allow_null=True)
    implied_input_per_million = serializers.CharField(allow_null=True)
    implied_cached_input_per_million = serializers.CharField(allow_null=True)
    implied_output_per_million = serializers.CharField(allow_null=True)


class RunDetailOutput(RunOutput):
    lines = LineOutput(many=True)
    lines_total = serializers.IntegerField()
    lines_offset = serializers.IntegerField()
    lines_limit = serializers.IntegerField()


class LinesQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=ReconciliationLine.Status.choices, required=False)
    offset = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=LINES_PAGE_MAX, default=LINES_PAGE)


def _content_length(request: Request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


class ReconciliationRunCreateApi(APIView):
    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = STAFF_PERMISSIONS
    parser_classes = [MultiPartParser, FormParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # before anything reads the body (session authentication's CSRF check reads the form)
        limit = reconciliation_settings().upload_max_bytes
        length = _content_length(request)
        if length is not None and length > limit + MULTIPART_OVERHEAD:
            raise PayloadTooLarge(f"The upload is {length} bytes; the limit is {limit} bytes.")
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="reconciliation_run_create",
        summary="Reconcile a provider file",
        request={"multipart/form-data": RunCreateInput},
        responses={
            201: RunOutput,
            200: OpenApiResponse(RunOutput, description="a dry run: nothing was written (run_id is null)"),
            400: OpenApiResponse(ErrorOutput, description="invalid form, or a file that cannot be read at all"),
            401: OpenApiResponse(ErrorOutput, description="not signed in"),
            403: OpenApiResponse(ErrorOutput, description="not staff"),
            413: OpenApiResponse(ErrorOutput, description="the upload is over the size limit"),
        },
        tags=["reconciliation"],
    )
    def post(self, request: Request) -> Response:
        form = RunCreateInput(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        limit = reconciliation_settings().upload_max_bytes
        if upload.size is not None and upload.size > limit:
            raise PayloadTooLarge(f"The file is {upload.size} bytes; the limit is {limit} bytes.")
        try:
            result = reconciliation_run(
                source=form.validated_data.get("source") or None,
                file=upload,
                file_name=upload.name or "upload",
                actor=request.user,
                tolerance_pct=form.validated_data.get("tolerance_pct"),
                tolerance_usd=form.validated_data.get("tolerance_usd"),
                dry_run=form.validated_data["dry_run"],
                trigger=ReconciliationRun.Trigger.API,
            )
        except UnreadableFile as exc:
            # answered, not raised: a raised API error rolls back the request's transaction, and the failed run
            # (who tried which file, and why it could not be read) is worth keeping
            error = ApiError("unreadable_file", str(exc), fields={"file": [str(exc)]})
            body = {"error": error.error_code, "message": str(error.detail), "fields": error.fields}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        if result.run is None:
            return Response({**result.summary, "dry_run": True}, status=status.HTTP_200_OK)
        return Response({**run_detail(result.run), "dry_run": False}, status=status.HTTP_201_CREATED)


class ReconciliationRunDetailApi(APIView):
    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = STAFF_PERMISSIONS

    @extend_schema(
        operation_id="reconciliation_run_detail",
        summary="A reconciliation run with a page of its lines",
        parameters=[
            OpenApiParameter("status", str, enum=ReconciliationLine.Status.values, description="lines of one status"),
            OpenApiParameter("offset", int, description="lines to skip (default 0)"),
            OpenApiParameter(
                "limit", int, description=f"lines to answer (default {LINES_PAGE}, at most {LINES_PAGE_MAX})"
            ),
        ],
        responses={
            200: RunDetailOutput,
            400: OpenApiResponse(ErrorOutput, description="bad query"),
            401: OpenApiResponse(ErrorOutput, description="not signed in"),
            403: OpenApiResponse(ErrorOutput, description="not staff"),
            404: OpenApiResponse(ErrorOutput, description="no such run"),
        },
        tags=["reconciliation"],
    )
    def get(self, request: Request, run_id: int) -> Response:
        query = LinesQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        run = run_by_id(run_id=run_id)
        if run is None:
            raise NotFound(f"No reconciliation run {run_id}.")
        lines = run_lines(run=run, status=query.validated_data.get("status"))
        offset, limit = query.validated_data["offset"], query.validated_data["limit"]
        return Response(
            {
                **run_detail(run),
                "lines": [line_as_json(line) for line in lines[offset : offset + limit]],
                "lines_total": lines.count(),
                "lines_offset": offset,
                "lines_limit": limit,
            }
        )
