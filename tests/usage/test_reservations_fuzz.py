"""Schema fuzzing of the reservation lifecycle and authorize with an account key: no generated request gets a 5xx,
and every answer is one the OpenAPI schema documents."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings

from config.wsgi import application
from tests.factories import AccountFactory
from usage.services.authorization import AuthorizeRequest, reservation_create
from usage.services.recording import usage_record_batch

pytestmark = pytest.mark.usefixtures("catalog")

EXAMPLES = 25
SKIPPED_CHECKS = ("Schema-valid request rejected",)  # a rule the schema cannot say (a model that exists)


@pytest.fixture
def connection_kept() -> Iterator[None]:
    """Requests called straight on the WSGI app would close the test's database connection when they end (on
    PostgreSQL, the test's transaction with it); Django's test client keeps it open the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_reservation_endpoints_answer_every_generated_request_as_documented(db: Any, connection_kept: None) -> None:
    account: Any = AccountFactory.create(plan="jive", credits="100")
    # known request ids, so the handlers also run past the lookup: one held, one recorded
    reservation_create(account=account, request=AuthorizeRequest("held", "qwen-3-32b", 10, 10))
    usage_record_batch(account=account, raw_events=[
        {"request_id": "recorded", "model": "qwen-3-32b", "input_tokens": 1, "output_tokens": 1}
    ])  # fmt: skip
    known = ("held", "recorded", None)
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application).include(
        path_regex="^/api/usage/(reservations|authorize)"
    )
    problems: list[tuple[Any, ...]] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        operations += 1

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate], derandomize=True,
            database=None, suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def check(case: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {account.api_key}"}
            pick = known[zlib.crc32(repr((case.body, case.path_parameters)).encode()) % 3]
            if pick and case.path_parameters:
                case.path_parameters["request_id"] = pick
            elif pick and isinstance(case.body, dict):
                case.body["request_id"] = pick
            response = case.call(app=application)
            if response.status_code >= 500:
                problems.append(
                    (case.method, case.formatted_path, case.body, response.status_code, response.text[:300])
                )
                return
            try:
                case.validate_response(response)
            except BaseException as exc:  # schemathesis raises a group of the checks that failed
                text = str(exc)
                if any(skipped in text for skipped in SKIPPED_CHECKS) and "Undocumented" not in text:
                    return
                problems.append((case.method, case.formatted_path, case.body, response.status_code, text[:500]))

        check()
    assert operations == 3
    assert problems == []
