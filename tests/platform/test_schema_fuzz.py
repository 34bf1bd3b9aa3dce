"""Schema fuzzing: schemathesis drives every operation of /api/schema/ through the live WSGI app.

Each operation is sent generated requests (valid and invalid) as an account (bearer key) and as staff (HTTP
Basic). Every answer must be below 500 and conform to the schema: a documented status code, a documented content
type and a body that matches its documented shape. Bounded (a few examples per operation, no shrinking,
derandomized) so the module stays within a few minutes on one core and gives the same cases on every run.
"""

from __future__ import annotations

import base64

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.billing.stripe_samples import Recorded, stripe_recorder  # noqa: F401 (a fixture)
from tests.factories import AccountFactory, UserFactory

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
STAFF_PASSWORD = "pw-for-tests-only"
FUZZ_SETTINGS = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _served_schema() -> dict:
    """The document /api/schema/ serves, built by the same generator at collection time (when no test database
    exists yet); test_the_fuzzed_schema_is_the_served_one checks that the two are the same."""
    return SchemaGenerator().get_schema(request=None, public=True)


schema = schemathesis.openapi.from_dict(_served_schema())
schema.app = WSGIHandler()
schema.location = "/api/schema/"


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """One catalog, one account and one staff user for the whole module, written outside any test transaction:
    requests run in autocommit as in production (some views run outside a request transaction, and a refusal
    there must not break a test-wide transaction for the next request), and the database is emptied once at the
    end instead of after each of the ~130 tests."""
    with django_db_blocker.unblock():
        call_command("seed_catalog", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
        account = AccountFactory.create(plan="jive", credits="10000")
        staff = UserFactory.create(username="fuzz-staff@example.com", is_staff=True, is_superuser=True)
        try:
            yield {
                "account": {"Authorization": f"Bearer {account.api_key}"},  # type: ignore[attr-defined]
                "staff": {
                    "Authorization": "Basic " + base64.b64encode(f"{staff.username}:{STAFF_PASSWORD}".encode()).decode()
                },
            }
        finally:
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def stripe(stripe_recorder):  # noqa: F811
    """Stripe "configured" and answered in-process (nothing leaves the machine), so top-ups and subscriptions run
    their real code instead of answering 503 stripe_not_configured."""

    def checkout(req: Recorded) -> dict:
        session_id = stripe_recorder.next_id("cs")
        return {"id": session_id, "object": "checkout.session", "mode": req.form.get("mode"),
                "url": f"https://checkout.stripe.com/c/pay/{session_id}"}  # fmt: skip

    stripe_recorder.on("POST", "/v1/checkout/sessions", checkout)
    return stripe_recorder


@pytest.fixture
def account_headers(world, stripe):
    return world["account"]


@pytest.fixture
def staff_headers(world, stripe):
    return world["staff"]


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_as_an_account(case, account_headers):
    case.call_and_validate(headers=account_headers, checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_as_staff(case, staff_headers):
    case.call_and_validate(headers=staff_headers, checks=CHECKS)


def test_the_fuzzed_schema_is_the_served_one(db, client):
    served = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200
    assert served.json()["paths"].keys() == _served_schema()["paths"].keys()


def test_every_operation_documents_its_error_answers_in_the_error_shape():
    document = _served_schema()
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "message", "fields"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert {"429", "503"} <= codes, (method, path)
            if operation.get("security") and {} not in operation["security"]:
                assert {"401", "403"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= codes, (method, path)
            for code, response in operation["responses"].items():
                if code[0] in "45":
                    assert response["content"] == error, (method, path, code)


def test_the_schema_says_what_billing_answers():
    paths = _served_schema()["paths"]
    invoices = paths["/api/billing/invoices"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert "$ref" in invoices  # an object, not a bare list
    component = invoices["$ref"].rsplit("/", 1)[1]
    listed = _served_schema()["components"]["schemas"][component]
    assert listed["properties"]["results"]["type"] == "array"
    cancel = paths["/api/billing/subscription"]["delete"]["responses"]
    assert "200" in cancel and "204" not in cancel
