"""The pricing HTTP API: what a caller sees, what a staff write changes, and what bad input is refused with."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from core.parsers import DecimalJSONParser
from pricing.errors import InactiveModel, UnknownModel
from pricing.models import AIModel, CatalogAudit, ExchangeRate, FeatureCost, ModelPrice, PlanTerms
from pricing.rating import FeatureUse, UsageLine, rate_usage
from pricing.selectors import catalog_snapshot

MODELS = "/api/tokens/models"
FEATURES = "/api/tokens/features"
EXCHANGE = "/api/tokens/exchange"
ADMIN = "/api/admin/tokens"
LLAMA = "meta-llama/llama-3.3-70b-instruct"


def _user(username: str, *, staff: bool = False):
    return get_user_model().objects.create_user(username=username, password="pw-for-tests-only", is_staff=staff)


def _basic(username: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:pw-for-tests-only".encode()).decode()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user_client(seeded_catalog):
    client = APIClient()
    client.force_login(_user("alice"))
    return client


@pytest.fixture
def staff_client(seeded_catalog):
    client = APIClient()
    client.force_login(_user("root", staff=True))
    return client


def _put(client, path, body, **extra):
    return client.put(path, json.dumps(body), content_type="application/json", **extra)


def _post(client, path, body=None, **extra):
    return client.post(path, json.dumps(body or {}), content_type="application/json", **extra)


def _by(rows, key, value):
    return next(row for row in rows if row[key] == value)


def _rate(snapshot, at, *, model="gpt-4o-mini", tier="jive", **counts):
    return rate_usage(UsageLine(model=model, occurred_at=at, **counts), snapshot, tier=tier)


def _catalog_rows():
    return (ModelPrice.objects.count(), FeatureCost.objects.count(), ExchangeRate.objects.count(),
            PlanTerms.objects.count(), CatalogAudit.objects.count())  # fmt: skip


# --- who may call ---------------------------------------------------------------------------------------------------


def test_reads_need_a_signed_in_user(seeded_catalog):
    response = APIClient().get(MODELS)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response.json()["fields"] == {}
    assert response["WWW-Authenticate"].startswith("Basic")


def test_reads_accept_http_basic(seeded_catalog):
    _user("bob")
    response = APIClient().get(EXCHANGE, HTTP_AUTHORIZATION=_basic("bob"))
    assert response.status_code == 200


def test_writes_need_staff(seeded_catalog):
    _user("bob")
    body = {"output_price_per_million": "1"}
    assert _put(APIClient(), f"{ADMIN}/models/gpt-4o-mini", body).status_code == 401
    refused = _put(APIClient(), f"{ADMIN}/models/gpt-4o-mini", body, HTTP_AUTHORIZATION=_basic("bob"))
    assert refused.status_code == 403
    assert refused.json()["error"] == "permission_denied"
    assert ModelPrice.objects.filter(model__model_id="gpt-4o-mini").count() == 1


def test_staff_write_over_http_basic(seeded_catalog):
    _user("ops", staff=True)
    response = _put(
        APIClient(),
        f"{ADMIN}/models/gpt-4o-mini",
        {"output_price_per_million": "0.7"},
        HTTP_AUTHORIZATION=_basic("ops"),
    )
    assert response.status_code == 200
    assert response.json()["price_version"]["output_price_per_million"] == "0.7"


# --- reads ----------------------------------------------------------------------------------------------------------


def test_models_list_shows_prices_in_force_as_decimal_strings(user_client):
    response = user_client.get(MODELS)
    assert response.status_code == 200
    rows = response.json()
    assert [row["model_id"] for row in rows] == sorted(row["model_id"] for row in rows)
    mini = _by(rows, "model_id", "gpt-4o-mini")
    assert mini == {
        "model_id": "gpt-4o-mini",
        "display_name": "GPT-4o mini",
        "provider": "openai",
        "allowed_tiers": sorted(mini["allowed_tiers"]),
        "effective_from": "2024-01-01T00:00:00Z",
        "input_price_per_million": "0.15",
        "cached_input_price_per_million": "0.075",
        "output_price_per_million": "0.6",
        "image_price_per_unit": "0",
        "input_credits_per_million": "1500",
        "cached_input_credits_per_million": "750",
        "output_credits_per_million": "6000",
        "image_credits_per_unit": "0",
        "mode": "chat",
        "max_input_tokens": None,
        "max_output_tokens": None,
        "prices": {"input_per_million": "0.15", "cached_input_per_million": "0.075", "output_per_million": "0.6",
                   "image_price": "0"},
    }  # fmt: skip
    # no cached price of its own: cached input costs the input price
    assert _by(rows, "model_id", "qwen-3-32b")["cached_input_price_per_million"] == "0.1"
    assert _by(rows, "model_id", "flux-1.1-pro")["image_credits_per_unit"] == "400"


def test_models_list_for_a_tier(user_client):
    rows = user_client.get(MODELS, {"tier": "free"}).json()
    ids = {row["model_id"] for row in rows}
    assert "qwen-3-32b" in ids and LLAMA in ids
    assert "flux-1.1-pro" not in ids and "qwen-3-235b-a22b-instruct-2507" not in ids
    assert "flux-1.1-pro" in {row["model_id"] for row in user_client.get(MODELS, {"tier": "jive"}).json()}


def test_models_list_unknown_tier_is_400(user_client):
    response = user_client.get(MODELS, {"tier": "platinum"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "tier" in response.json()["fields"]


def test_provider_prices_hidden_from_users_when_switched_off(user_client, staff_client, settings):
    settings.PRICING_SHOW_PROVIDER_PRICES = False
    mini = _by(user_client.get(MODELS).json(), "model_id", "gpt-4o-mini")
    assert not any(name.endswith("_price_per_million") or name == "image_price_per_unit" for name in mini)
    assert mini["input_credits_per_million"] == "1500" and mini["output_credits_per_million"] == "6000"
    features = user_client.get(FEATURES).json()
    assert "cost_usd" not in _by(features, "feature_key", "image_gen")
    assert _by(features, "feature_key", "image_gen")["cost_credits"] == "400"
    # a multiplier feature's cost_usd is a factor, not a price
    assert _by(features, "feature_key", "optillm_cot")["cost_usd"] == "1"

    staff_mini = _by(staff_client.get(MODELS).json(), "model_id", "gpt-4o-mini")
    assert staff_mini["input_price_per_million"] == "0.15"
    assert _by(staff_client.get(FEATURES).json(), "feature_key", "image_gen")["cost_usd"] == "0.04"


def test_features_list(user_client):
    rows = user_client.get(FEATURES).json()
    assert {row["feature_key"] for row in rows} == {"rag_search", "chart_gen", "math_tools", "optillm_cot", "image_gen"}
    cot = _by(rows, "feature_key", "optillm_cot")
    assert cot["cost_type"] == "multiplier"
    assert cot["tier_multipliers"] == {"free": "1.1", "jigga": "1.5", "jive": "1.3"}
    assert cot["cepo_multiplier"] == "1" and cot["is_billable"] is True and cot["cost_credits"] is None
    assert _by(rows, "feature_key", "rag_search")["is_billable"] is False
    image = _by(rows, "feature_key", "image_gen")
    assert (image["cost_type"], image["cost_usd"], image["cost_credits"]) == ("per_image", "0.04", "400")


def test_exchange_list(user_client):
    assert user_client.get(EXCHANGE).json() == [
        {"from_currency": "USD", "to_currency": "CREDITS", "rate": "10000", "effective_from": "2024-01-01T00:00:00Z"},
        {"from_currency": "USD", "to_currency": "ZAR", "rate": "18.5", "effective_from": "2024-01-01T00:00:00Z"},
    ]


@pytest.mark.parametrize("path", [MODELS, FEATURES, EXCHANGE])
def test_reads_carry_cache_headers_and_revalidate(user_client, path, settings):
    response = user_client.get(path)
    assert "max-age=300" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert "Authorization" in response["Vary"]
    etag = response["ETag"]
    revalidated = user_client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert revalidated.status_code == 304
    assert revalidated["ETag"] == etag
    assert user_client.get(path, HTTP_IF_NONE_MATCH='"stale"').status_code == 200


def test_a_price_change_changes_the_etag_and_the_list(user_client, staff_client, django_capture_on_commit_callbacks):
    before = user_client.get(MODELS)
    with django_capture_on_commit_callbacks(execute=True):
        _put(staff_client, f"{ADMIN}/models/gpt-4o-mini", {"input_price_per_million": "0.2"})
    after = user_client.get(MODELS, HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200
    assert _by(after.json(), "model_id", "gpt-4o-mini")["input_price_per_million"] == "0.2"


def test_max_age_stops_at_a_scheduled_price_change(user_client, staff_client, django_capture_on_commit_callbacks):
    start = timezone.now() + timedelta(seconds=100)
    with django_capture_on_commit_callbacks(execute=True):
        body = {"input_price_per_million": "0.2", "effective_from": start.isoformat()}
        assert _put(staff_client, f"{ADMIN}/models/gpt-4o-mini", body).status_code == 200
    response = user_client.get(MODELS)
    max_age = int(response["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 100
    # the scheduled price is not in force yet
    assert _by(response.json(), "model_id", "gpt-4o-mini")["input_price_per_million"] == "0.15"


# --- staff writes: models -------------------------------------------------------------------------------------------


def test_put_creates_a_model_with_a_slash_in_its_id(staff_client, user_client, django_capture_on_commit_callbacks):
    body = {
        "display_name": "Mistral Large",
        "provider": "mistral",
        "allowed_tiers": ["jigga", "pro"],
        "input_price_per_million": "2",
        "output_price_per_million": 6,
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = _put(staff_client, f"{ADMIN}/models/mistralai/mistral-large", body)
    assert response.status_code == 201
    shown = response.json()
    assert shown["model_id"] == "mistralai/mistral-large"
    assert shown["created"] is True and shown["is_active"] is True and shown["allowed_tiers"] == ["jigga", "pro"]
    assert shown["price_version"]["input_price_per_million"] == "2"
    assert shown["price_version"]["cached_input_price_per_million"] is None
    listed = _by(user_client.get(MODELS).json(), "model_id", "mistralai/mistral-large")
    assert listed["output_price_per_million"] == "6" and listed["cached_input_price_per_million"] == "2"
    rating = _rate(catalog_snapshot(), timezone.now(), model="mistralai/mistral-large", tier="jigga",
                   input_tokens=1_000_000, output_tokens=1_000_000)  # fmt: skip
    assert rating.cost_usd == Decimal(8)


def test_put_without_prices_updates_fields_and_adds_no_version(staff_client):
    response = _put(staff_client, f"{ADMIN}/models/{LLAMA}", {"display_name": "Llama 3.3 70B"})
    assert response.status_code == 200
    assert response.json()["display_name"] == "Llama 3.3 70B"
    assert response.json()["created"] is False and response.json()["price_version"] is None
    assert ModelPrice.objects.filter(model__model_id=LLAMA).count() == 1


def test_a_price_change_is_a_new_version_and_rates_events_at_their_own_time(
    seeded_catalog, staff_client, django_capture_on_commit_callbacks
):
    change = datetime(2026, 6, 1, tzinfo=UTC)
    before, after = change - timedelta(days=1), change + timedelta(days=1)
    old = _rate(seeded_catalog, after, input_tokens=2000, cached_input_tokens=1000, output_tokens=100)
    assert old.cost_usd == Decimal("0.000285")

    with django_capture_on_commit_callbacks(execute=True):
        response = _put(
            staff_client,
            f"{ADMIN}/models/gpt-4o-mini",
            {"output_price_per_million": "1.2", "effective_from": change.isoformat(), "reason": "provider repriced"},
        )
    assert response.status_code == 200
    version = response.json()["price_version"]
    # prices not given keep their value in force
    assert (version["input_price_per_million"], version["cached_input_price_per_million"]) == ("0.15", "0.075")
    assert version["output_price_per_million"] == "1.2" and version["reason"] == "provider repriced"
    assert ModelPrice.objects.filter(model__model_id="gpt-4o-mini").count() == 2

    snapshot = catalog_snapshot()
    assert _rate(snapshot, before, input_tokens=2000, cached_input_tokens=1000, output_tokens=100) == _rate(
        seeded_catalog, before, input_tokens=2000, cached_input_tokens=1000, output_tokens=100
    )
    new = _rate(snapshot, after, input_tokens=2000, cached_input_tokens=1000, output_tokens=100)
    assert new.cost_usd == Decimal("0.000345")  # 0.00015 + 0.000075 + 100 x 1.2 / 1M
    assert new.price_version_id == version["id"]


def test_backdating_needs_a_reason(staff_client):
    past = (timezone.now() - timedelta(days=3)).isoformat()
    refused = _put(
        staff_client, f"{ADMIN}/models/gpt-4o-mini", {"input_price_per_million": "0.2", "effective_from": past}
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid" and "reason" in refused.json()["fields"]
    assert ModelPrice.objects.filter(model__model_id="gpt-4o-mini").count() == 1

    body = {"input_price_per_million": "0.2", "effective_from": past, "reason": "missed the provider's change"}
    accepted = _put(staff_client, f"{ADMIN}/models/gpt-4o-mini", body)
    assert accepted.status_code == 200
    assert accepted.json()["price_version"]["backdated"] is True


LONG_PRICE = b'{"input_price_per_million": 1234567890.123456789012, "output_price_per_million": 1.5e-7}'


def test_a_json_number_becomes_an_exact_decimal(staff_client):
    # 22 significant digits: a float would keep about 17 of them
    response = staff_client.put(f"{ADMIN}/models/gpt-4o-mini", LONG_PRICE, content_type="application/json")
    assert response.status_code == 200, response.json()
    assert response.json()["price_version"]["input_price_per_million"] == "1234567890.123456789012"
    assert response.json()["price_version"]["output_price_per_million"] == "0.00000015"


@pytest.mark.postgres
def test_a_json_number_is_stored_exactly(staff_client):
    # SQLite keeps `decimal` columns as REAL (about 15 significant digits); PostgreSQL's numeric keeps all 28
    response = staff_client.put(f"{ADMIN}/models/gpt-4o-mini", LONG_PRICE, content_type="application/json")
    version = ModelPrice.objects.get(pk=response.json()["price_version"]["id"])
    assert version.input_per_million == Decimal("1234567890.123456789012")
    assert version.output_per_million == Decimal("0.00000015")


def test_the_parser_never_makes_a_float():
    parsed = DecimalJSONParser().parse(io.BytesIO(b'{"a": 0.1, "b": [2.5e-3], "c": 7}'), parser_context={})
    assert parsed == {"a": Decimal("0.1"), "b": [Decimal("0.0025")], "c": 7}
    assert isinstance(parsed["a"], Decimal)


BAD_MODEL_PRICES = [
    ({"input_price_per_million": "-0.01"}, "input_price_per_million"),
    ({"output_price_per_million": -1}, "output_price_per_million"),
    ({"image_price_per_unit": "NaN"}, "image_price_per_unit"),
    ({"input_price_per_million": "Infinity"}, "input_price_per_million"),
    ({"input_price_per_million": "-Infinity"}, "input_price_per_million"),
    ({"input_price_per_million": "1e30"}, "input_price_per_million"),
    ({"input_price_per_million": 1e300}, "input_price_per_million"),
    ({"input_price_per_million": "0.0000000000001"}, "input_price_per_million"),
    ({"input_price_per_million": "cheap"}, "input_price_per_million"),
    ({"input_price_per_million": True}, "input_price_per_million"),
    ({"input_price_per_million": [1]}, "input_price_per_million"),
    ({"input_price_per_million": {"usd": 1}}, "input_price_per_million"),
    ({"input_price_per_million": "9" * 5000}, "input_price_per_million"),
    ({"cached_input_price_per_million": "-1"}, "cached_input_price_per_million"),
    ({"allowed_tiers": ["free", "platinum"]}, "allowed_tiers"),
    ({"allowed_tiers": "free"}, "allowed_tiers"),
    ({"display_name": "x" * 201}, "display_name"),
    ({"effective_from": "yesterday"}, "effective_from"),
    ({"reason": "r" * 501}, "reason"),
]


@pytest.mark.parametrize(("body", "field"), BAD_MODEL_PRICES)
def test_bad_model_input_is_a_400_with_field_errors_and_writes_nothing(staff_client, body, field):
    before = _catalog_rows()
    response = _put(staff_client, f"{ADMIN}/models/gpt-4o-mini", body)
    assert response.status_code == 400, response.content
    shown = response.json()
    assert shown["error"] == "invalid"
    assert field in shown["fields"] and shown["message"].startswith(field)
    assert _catalog_rows() == before


@pytest.mark.parametrize(
    "raw",
    [
        b'{"input_price_per_million": NaN}',
        b'{"input_price_per_million": Infinity}',
        b'{"input_price_per_million": -Infinity}',
        b'{"input_price_per_million": 0.1',
        b"\xff\xfe not utf-8",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"input_price_per_million": 1' + b"0" * 5000 + b"}",
    ],
)
def test_malformed_json_is_a_400(staff_client, raw):
    before = _catalog_rows()
    response = staff_client.put(f"{ADMIN}/models/gpt-4o-mini", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_request"
    assert _catalog_rows() == before


@pytest.mark.parametrize("body", [[], "0.15", 42, None])
def test_a_body_that_is_not_an_object_is_a_400(staff_client, body):
    response = _put(staff_client, f"{ADMIN}/models/gpt-4o-mini", body)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid", "malformed_request")


def test_an_unknown_charset_is_not_a_500(staff_client):
    before = _catalog_rows()
    response = staff_client.put(
        f"{ADMIN}/models/gpt-4o-mini", b"{}", content_type="application/json; charset=no-such-charset"
    )
    assert response.status_code == 200  # Django ignores a charset it does not know
    assert _catalog_rows() == before


def test_form_bodies_are_refused(staff_client):
    response = staff_client.put(
        f"{ADMIN}/models/gpt-4o-mini", "input_price_per_million=1", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_creating_a_model_needs_a_provider(staff_client):
    before = _catalog_rows()
    response = _put(staff_client, f"{ADMIN}/models/new-model", {"input_price_per_million": "1"})
    assert response.status_code == 400
    assert "provider" in response.json()["fields"]
    assert _catalog_rows() == before


def test_a_new_model_with_a_bad_price_is_not_created(staff_client):
    response = _put(
        staff_client, f"{ADMIN}/models/new-model", {"provider": "x", "input_price_per_million": "1", "reason": "r",
                                                     "effective_from": "2020-01-01T00:00:00Z",
                                                     "output_price_per_million": "-2"}
    )  # fmt: skip
    assert response.status_code == 400
    assert "output_price_per_million" in response.json()["fields"]
    assert not AIModel.objects.filter(model_id="new-model").exists()


@pytest.mark.parametrize("model_id", ["gpt-4o-mini-2024-07-18", "has space", "trailing/", "a//b", "x" * 201])
def test_bad_model_ids_are_refused(staff_client, model_id):
    before = _catalog_rows()
    response = _put(staff_client, f"{ADMIN}/models/{model_id}", {"provider": "x", "input_price_per_million": "1"})
    assert response.status_code == 400
    assert "model_id" in response.json()["fields"]
    assert _catalog_rows() == before


def test_add_an_alias_and_rate_by_it(staff_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(staff_client, f"{ADMIN}/models/{LLAMA}/aliases", {"alias": "llama-3.3-70b"})
    assert response.status_code == 201
    assert response.json()["aliases"] == ["llama-3.3-70b"]
    rating = _rate(catalog_snapshot(), timezone.now(), model="llama-3.3-70b", input_tokens=1_000_000)
    assert rating.model_id == LLAMA and rating.cost_usd == Decimal("0.35")


def test_remove_an_alias_then_it_rates_nothing(staff_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _post(staff_client, f"{ADMIN}/models/{LLAMA}/aliases", {"alias": "meta/llama-latest"})
        response = staff_client.delete(f"{ADMIN}/models/{LLAMA}/aliases/meta/llama-latest")
    assert response.status_code == 200 and response.json()["aliases"] == []
    with pytest.raises(UnknownModel):
        _rate(catalog_snapshot(), timezone.now(), model="meta/llama-latest", input_tokens=1)
    again = staff_client.delete(f"{ADMIN}/models/{LLAMA}/aliases/meta/llama-latest")
    assert (again.status_code, again.json()["error"]) == (404, "not_found")


def test_patch_a_feature_and_a_plan(staff_client, user_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        feature = staff_client.patch(f"{ADMIN}/features/image_gen", {"is_active": False}, format="json")
        plan = staff_client.patch(f"{ADMIN}/plans/starter", {"name": "Starter (legacy)", "is_active": False},
                                  format="json")  # fmt: skip
    assert feature.status_code == 200 and feature.json()["is_active"] is False
    assert "image_gen" not in {row["feature_key"] for row in user_client.get(FEATURES).json()}
    assert plan.status_code == 200
    assert (plan.json()["name"], plan.json()["is_active"], plan.json()["is_public"]) == (
        "Starter (legacy)",
        False,
        True,
    )
    assert user_client.patch(f"{ADMIN}/plans/starter", {"is_active": True}, format="json").status_code == 403
    blank = staff_client.patch(f"{ADMIN}/plans/starter", {"name": " "}, format="json")
    assert blank.status_code == 400 and "name" in blank.json()["fields"]
    assert staff_client.patch(f"{ADMIN}/plans/nope", {"name": "x"}, format="json").status_code == 404


@pytest.mark.parametrize("alias", ["gpt-4o-mini-2024-07-18", "qwen-3-32b", "", "a" * 201, None, ["x"]])
def test_a_taken_or_bad_alias_is_a_400(staff_client, alias):
    before = _catalog_rows()
    response = _post(staff_client, f"{ADMIN}/models/{LLAMA}/aliases", {"alias": alias})
    assert response.status_code == 400
    assert "alias" in response.json()["fields"]
    assert _catalog_rows() == before


def test_unknown_models_are_404(staff_client):
    for path in ("no-such/model/aliases", "no-such/model/activate", "no-such/model/deactivate"):
        response = _post(staff_client, f"{ADMIN}/models/{path}", {"alias": "x"})
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_deactivate_and_activate(staff_client, user_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(staff_client, f"{ADMIN}/models/{LLAMA}/deactivate")
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert LLAMA not in {row["model_id"] for row in user_client.get(MODELS).json()}
    with pytest.raises(InactiveModel):
        _rate(catalog_snapshot(), timezone.now(), model=LLAMA, input_tokens=10)

    with django_capture_on_commit_callbacks(execute=True):
        assert _post(staff_client, f"{ADMIN}/models/{LLAMA}/activate").json()["is_active"] is True
    assert LLAMA in {row["model_id"] for row in user_client.get(MODELS).json()}


# --- staff writes: features, rates, plans ---------------------------------------------------------------------------


def test_feature_cost_version_with_tier_multipliers(
    seeded_catalog, staff_client, user_client, django_capture_on_commit_callbacks
):
    at = timezone.now() + timedelta(minutes=5)
    usage: dict[str, Any] = {
        "model": "qwen-3-32b",
        "input_tokens": 1000,
        "output_tokens": 500,
        "features": (FeatureUse("optillm_cot"),),
    }
    assert rate_usage(UsageLine(occurred_at=at, **usage), seeded_catalog, tier="jive").charge_usd == Decimal("0.000195")

    with django_capture_on_commit_callbacks(execute=True):
        response = _put(
            staff_client,
            f"{ADMIN}/features/optillm_cot",
            {"tier_multipliers": {"free": "1.1", "jive": 1.4, "jigga": "1.6"}},
        )
    assert response.status_code == 200
    shown = response.json()
    assert shown["tier_multipliers"] == {"free": "1.1", "jigga": "1.6", "jive": "1.4"}
    assert shown["cost_type"] == "multiplier" and shown["cost_usd"] == "1"  # kept from the version in force
    assert FeatureCost.objects.filter(feature__feature_key="optillm_cot").count() == 2
    assert _by(user_client.get(FEATURES).json(), "feature_key", "optillm_cot")["tier_multipliers"]["jive"] == "1.4"
    after = rate_usage(UsageLine(occurred_at=at, **usage), catalog_snapshot(), tier="jive")
    assert after.charge_usd == Decimal("0.000210")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tier_multipliers": {"jive": "0"}}, "tier_multipliers.jive"),
        ({"tier_multipliers": {"jive": "-1.2"}}, "tier_multipliers.jive"),
        ({"tier_multipliers": {"platinum": "1.2"}}, "tier_multipliers"),
        ({"tier_multipliers": {"jive": "NaN"}}, "tier_multipliers"),
        ({"tier_multipliers": ["jive"]}, "tier_multipliers"),
        ({"cepo_multiplier": "0"}, "cepo_multiplier"),
        ({"cost_usd": "0"}, "cost_usd"),  # a multiplier feature's default multiplier must be > 0
        ({"cost_type": "per_hour"}, "cost_type"),
        ({"is_billable": "maybe"}, "is_billable"),
    ],
)
def test_bad_feature_input_is_a_400(staff_client, body, field):
    before = _catalog_rows()
    response = _put(staff_client, f"{ADMIN}/features/optillm_cot", body)
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert _catalog_rows() == before


def test_unknown_feature_is_404(staff_client):
    assert _put(staff_client, f"{ADMIN}/features/teleport", {"cost_type": "per_use"}).status_code == 404


def test_exchange_rate_version(seeded_catalog, staff_client, user_client, django_capture_on_commit_callbacks):
    at = timezone.now() + timedelta(minutes=5)
    assert _rate(seeded_catalog, at, model="flux-1.1-pro", images=2).credits == Decimal(800)
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(staff_client, f"{ADMIN}/exchange", {"currency": "credits", "rate": 12000})
    assert response.status_code == 201
    assert response.json()["from_currency"] == "USD"
    assert (response.json()["to_currency"], response.json()["rate"]) == ("CREDITS", "12000")
    assert _by(user_client.get(EXCHANGE).json(), "to_currency", "CREDITS")["rate"] == "12000"
    assert _rate(catalog_snapshot(), at, model="flux-1.1-pro", images=2).credits == Decimal(960)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currency": "ZAR", "rate": 0}, "rate"),
        ({"currency": "ZAR", "rate": "-18"}, "rate"),
        ({"currency": "ZAR", "rate": "Infinity"}, "rate"),
        ({"currency": "ZAR"}, "rate"),
        ({"currency": "XYZ", "rate": "1.2"}, "currency"),
        ({"currency": "USD", "rate": "1"}, "currency"),
        ({"currency": "ZARZARZARZAR", "rate": "1"}, "currency"),
        ({"rate": "18"}, "currency"),
        ({"currency": "ZAR", "rate": "19", "effective_from": "2020-01-01T00:00:00Z"}, "reason"),
    ],
)
def test_bad_exchange_rates_are_a_400(staff_client, body, field):
    before = _catalog_rows()
    response = _post(staff_client, f"{ADMIN}/exchange", body)
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert _catalog_rows() == before


def test_plan_terms_version_keeps_the_terms_not_given(staff_client):
    response = _put(staff_client, f"{ADMIN}/plans/starter", {"fee": "7.50", "reason": "price rise"})
    assert response.status_code == 200, response.content
    shown = response.json()
    assert shown["plan_code"] == "starter" and shown["fee"] == "7.5"
    assert (shown["unit"], shown["included_units"], shown["monthly_spend_cap"]) == ("messages", "1000", "50")
    assert shown["overage_rate"] == "0.00015" and shown["alert_thresholds"] == [75, 90, 100]
    assert PlanTerms.objects.filter(plan__code="starter").count() == 2


def test_plan_terms_can_clear_a_limit(staff_client):
    response = _put(staff_client, f"{ADMIN}/plans/starter", {"monthly_spend_cap": None, "requests_per_hour": 60})
    assert response.status_code == 200
    assert response.json()["monthly_spend_cap"] is None and response.json()["requests_per_hour"] == 60


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"markup": "0"}, "markup"),
        ({"fee": "-5"}, "fee"),
        ({"unit": "minutes"}, "unit"),
        ({"currency": "XYZ"}, "currency"),
        ({"requests_per_hour": 0}, "requests_per_hour"),
        ({"requests_per_hour": 10**12}, "requests_per_hour"),
        ({"alert_thresholds": [75, "high"]}, "alert_thresholds"),
        ({"overage_rate": "1e20"}, "overage_rate"),
        ({"interval": "week"}, "interval"),
    ],
)
def test_bad_plan_terms_are_a_400(staff_client, body, field):
    before = _catalog_rows()
    response = _put(staff_client, f"{ADMIN}/plans/starter", body)
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert _catalog_rows() == before


def test_unknown_plan_is_404(staff_client):
    assert _put(staff_client, f"{ADMIN}/plans/platinum", {"fee": "1"}).status_code == 404


# --- the catalog cache across a real commit -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_committed_write_is_seen_by_the_next_read():
    from django.core.management import call_command

    call_command("seed_catalog", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    reader, writer = APIClient(), APIClient()
    reader.force_login(_user("reader"))
    writer.force_login(_user("writer", staff=True))
    assert _by(reader.get(MODELS).json(), "model_id", "claude-3-5-haiku")["output_price_per_million"] == "4"
    assert _put(writer, f"{ADMIN}/models/claude-3-5-haiku", {"output_price_per_million": "4.5"}).status_code == 200
    assert _by(reader.get(MODELS).json(), "model_id", "claude-3-5-haiku")["output_price_per_million"] == "4.5"


# --- the schema -----------------------------------------------------------------------------------------------------


def test_schema_documents_every_pricing_operation_without_warnings():
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    from pricing.urls import urlpatterns

    GENERATOR_STATS.reset()
    schema = SchemaGenerator(patterns=urlpatterns).get_schema(request=None, public=True)
    assert not GENERATOR_STATS, (dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache))
    operations = {op["operationId"] for methods in schema["paths"].values() for op in methods.values()}
    assert operations == {
        "tokens_models_list", "tokens_features_list", "tokens_exchange_list", "admin_tokens_model_put",
        "admin_tokens_model_alias_add", "admin_tokens_model_activate", "admin_tokens_model_deactivate",
        "admin_tokens_feature_cost_set", "admin_tokens_exchange_rate_set", "admin_tokens_plan_terms_set",
        "admin_tokens_model_alias_remove", "admin_tokens_feature_update", "admin_tokens_plan_update",
    }  # fmt: skip
    put = schema["paths"]["/api/admin/tokens/models/{model_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ModelPutInputRequest")
    # the error answers every operation may give come from core.openapi (404 for a path parameter, 413/415 for a body)
    assert set(put["responses"]) == {"200", "201", "400", "401", "403", "404", "413", "415", "429", "503"}
    assert "input_price_per_million" in schema["components"]["schemas"]["ModelListOutput"]["properties"]


# --- price dimensions over the API (docs/pricing-dimensions.md) ----------------------------------------------------


def test_put_and_list_every_dimension_and_rating_uses_them(
    staff_client, user_client, django_capture_on_commit_callbacks
):
    body = {
        "provider": "anthropic", "mode": "chat", "max_input_tokens": 1_000_000, "max_output_tokens": 64_000,
        "input_price_per_million": "3", "cached_input_price_per_million": "0.3", "output_price_per_million": 15,
        "cache_write_per_million": "3.75", "cache_write_1h_per_million": "6",
        "tiers": [{"above_input_tokens": 200_000, "input_per_million": "6", "output_per_million": "22.5"}],
        "service_tiers": {"batch": {"input_per_million": "1.5", "output_per_million": "7.5"}},
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = _put(staff_client, f"{ADMIN}/models/claude-sonnet-4-5", body)
    assert response.status_code == 201, response.content
    shown = response.json()
    assert (shown["mode"], shown["max_output_tokens"]) == ("chat", 64_000)
    assert shown["price_version"]["cache_write_per_million"] == "3.75"
    assert shown["price_version"]["tiers"] == [
        {"above_input_tokens": 200_000, "input_per_million": "6", "output_per_million": "22.5"}
    ]
    listed = _by(user_client.get(MODELS).json(), "model_id", "claude-sonnet-4-5")
    assert listed["prices"] == {
        "input_per_million": "3", "cached_input_per_million": "0.3", "cache_write_per_million": "3.75",
        "cache_write_1h_per_million": "6", "output_per_million": "15", "image_price": "0",
        "tiers": [{"above_input_tokens": 200_000, "input_per_million": "6", "output_per_million": "22.5"}],
        "service_tiers": {"batch": {"input_per_million": "1.5", "output_per_million": "7.5"}},
    }  # fmt: skip
    # 250,000 x $6 + 1,000 x $22.50
    rating = _rate(catalog_snapshot(), timezone.now(), model="claude-sonnet-4-5", tier="jigga",
                   input_tokens=250_000, output_tokens=1_000)  # fmt: skip
    assert rating.cost_usd == Decimal("1.5225")

    # a later PUT of one price keeps every other dimension in force
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            _put(staff_client, f"{ADMIN}/models/claude-sonnet-4-5", {"output_price_per_million": "16"}).status_code
            == 200
        )
    listed = _by(user_client.get(MODELS).json(), "model_id", "claude-sonnet-4-5")
    assert listed["prices"]["output_per_million"] == "16"
    assert listed["prices"]["tiers"][0]["above_input_tokens"] == 200_000
    assert listed["prices"]["cache_write_1h_per_million"] == "6"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tiers": [{"above_input_tokens": -5, "input_per_million": "6"}]}, "tiers.0.above_input_tokens"),
        ({"tiers": [{"above_input_tokens": 100, "inptu_per_million": "6"}]}, "tiers.0.inptu_per_million"),
        ({"tiers": [{"above_input_tokens": 200, "input_per_million": "6"},
                    {"above_input_tokens": 100, "input_per_million": "7"}]}, "tiers.1.above_input_tokens"),
        ({"service_tiers": {"turbo": {"input_per_million": "1"}}}, "service_tiers.turbo"),
        ({"off_peak": [{"start": "25:00", "end": "01:00", "input_per_million": "1"}]}, "off_peak.0.start"),
        ({"cache_write_per_million": "-1"}, "cache_write_per_million"),
        ({"image_prices": {"1024x1024/hd": "abc"}}, "image_prices"),
        ({"mode": "telepathy"}, "mode"),
    ],
)  # fmt: skip
def test_bad_dimensions_are_a_400_naming_the_field(staff_client, body, field):
    response = _put(staff_client, f"{ADMIN}/models/gpt-4o-mini", {"input_price_per_million": "0.15", **body})
    assert response.status_code == 400, response.content
    assert any(name.startswith(field) for name in response.json()["fields"]), response.json()
