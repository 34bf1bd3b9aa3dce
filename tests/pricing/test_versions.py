"""Effective-dated versions, the errors that keep an event from ever rating at $0, and the catalog services' rules."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.apps import apps
from django.core.management import call_command

from pricing import services
from pricing.errors import (
    CatalogValidationError,
    InactiveModel,
    ModelNotAllowed,
    NoPriceInForce,
    PricingError,
    UnknownFeature,
    UnknownModel,
)
from pricing.models import AIModel, CatalogAudit, Feature, ModelPrice, Plan
from pricing.rating import FeatureUse, UsageLine, rate_usage
from pricing.seed import SEED_EFFECTIVE_FROM
from pricing.selectors import catalog_snapshot

CHANGE = datetime(2026, 10, 1, 12, tzinfo=UTC)  # when the new price starts
MADE = CHANGE - timedelta(days=7)  # when it was entered: ahead of time, so not backdated
MICROSECOND = timedelta(microseconds=1)


def _model(model_id: str) -> AIModel:
    return AIModel.objects.get(model_id=model_id)


def _cost(at: datetime, *, model: str = "gpt-4o-mini", tier: str = "jive", **counts: Any) -> Decimal:
    line = UsageLine(model=model, occurred_at=at, **(counts or {"input_tokens": 1_000_000}))
    return rate_usage(line, catalog_snapshot(), tier=tier).cost_usd


def _row_counts() -> dict[str, int]:
    return {model.__name__: model._default_manager.count() for model in apps.get_app_config("pricing").get_models()}


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a catalog write as if its transaction committed, so its cache invalidation runs."""

    def run(write: Callable[[], Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return write()

    return run


# --- prices of the event's own time -----------------------------------------------------------------------------


def test_an_event_before_a_price_change_rates_at_the_old_price(seeded_catalog, committed):
    new = committed(
        lambda: services.model_price_set(
            model=_model("gpt-4o-mini"),
            input_per_million="0.30",
            output_per_million="1.20",
            effective_from=CHANGE,
            now=MADE,
        )
    )

    assert not new.backdated
    assert _cost(CHANGE - timedelta(hours=1)) == Decimal("0.15")
    assert _cost(CHANGE + timedelta(days=30)) == Decimal("0.30")
    # cached input falls back to the new input price when the new version leaves it empty
    assert _cost(CHANGE, input_tokens=1_000_000, cached_input_tokens=1_000_000) == Decimal("0.30")
    assert _cost(CHANGE - MICROSECOND, input_tokens=1_000_000, cached_input_tokens=1_000_000) == Decimal("0.075")


def test_a_version_takes_effect_exactly_at_its_effective_from(seeded_catalog, committed):
    new = committed(
        lambda: services.model_price_set(
            model=_model("claude-3-5-haiku"),
            input_per_million="1",
            output_per_million="5",
            effective_from=CHANGE,
            now=MADE,
        )
    )
    snapshot = catalog_snapshot()

    def version_at(at: datetime) -> int:
        line = UsageLine(model="claude-3-5-haiku", occurred_at=at, input_tokens=1_000_000)
        return rate_usage(line, snapshot, tier="jive").price_version_id

    seed_version = version_at(SEED_EFFECTIVE_FROM)
    assert version_at(CHANGE - MICROSECOND) == seed_version
    assert version_at(CHANGE) == new.pk
    # the same instant written in another time zone is the same instant
    assert version_at(CHANGE.astimezone(timezone(timedelta(hours=2)))) == new.pk
    assert version_at((CHANGE - MICROSECOND).astimezone(timezone(timedelta(hours=-5)))) == seed_version
    assert _cost(CHANGE, model="claude-3-5-haiku") == Decimal("1")
    assert _cost(CHANGE - MICROSECOND, model="claude-3-5-haiku") == Decimal("0.8")


def test_a_price_set_now_applies_from_now_and_not_before(seeded_catalog, committed):
    travelled_to = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
    with time_machine.travel(travelled_to):
        new = committed(
            lambda: services.model_price_set(
                model=_model("qwen-3-32b"), input_per_million="0.20", output_per_million="0.20"
            )
        )

        assert timedelta(0) <= new.effective_from - travelled_to < timedelta(seconds=5)
        assert not new.backdated
        assert _cost(new.effective_from - MICROSECOND, model="qwen-3-32b") == Decimal("0.10")
        assert _cost(new.effective_from, model="qwen-3-32b") == Decimal("0.20")


def test_a_backdated_version_needs_a_reason_and_re_rates_the_past(seeded_catalog, committed):
    past = datetime(2025, 3, 1, tzinfo=UTC)
    now = datetime(2026, 1, 1, tzinfo=UTC)

    version = committed(
        lambda: services.model_price_set(
            model=_model("gpt-4o-mini"),
            input_per_million="0.16",
            output_per_million="0.64",
            effective_from=past,
            reason="provider corrected its March invoice",
            now=now,
        )
    )

    version.refresh_from_db()
    assert version.backdated is True
    assert version.reason == "provider corrected its March invoice"
    assert _cost(past - MICROSECOND) == Decimal("0.15")
    assert _cost(past + timedelta(days=1)) == Decimal("0.16")
    audit = CatalogAudit.objects.filter(action="price_version", object_key="gpt-4o-mini").latest("id")
    assert audit.after is not None
    assert audit.after["backdated"] is True
    assert audit.reason == "provider corrected its March invoice"


def test_a_version_a_few_seconds_in_the_past_is_not_backdated(seeded_catalog):
    now = datetime(2026, 1, 1, tzinfo=UTC)

    version = services.model_price_set(
        model=_model("gpt-4o-mini"), input_per_million="0.16", effective_from=now - timedelta(seconds=30), now=now
    )

    assert version.backdated is False


# --- errors, never $0 -------------------------------------------------------------------------------------------


def test_an_unknown_model_is_an_error(seeded_catalog):
    with pytest.raises(UnknownModel, match="gpt-5-turbo"):
        _cost(CHANGE, model="gpt-5-turbo")


def test_an_inactive_model_is_an_error_also_by_its_alias(seeded_catalog, committed):
    committed(lambda: services.model_set_active(model=_model("gpt-4o-mini"), is_active=False))

    with pytest.raises(InactiveModel, match="gpt-4o-mini"):
        _cost(CHANGE, model="gpt-4o-mini")
    with pytest.raises(InactiveModel, match="gpt-4o-mini"):
        _cost(CHANGE, model="gpt-4o-mini-2024-07-18")

    committed(lambda: services.model_set_active(model=_model("gpt-4o-mini"), is_active=True))
    assert _cost(CHANGE, model="gpt-4o-mini-2024-07-18") == Decimal("0.15")


def test_a_model_not_allowed_for_the_tier_is_an_error(seeded_catalog):
    with pytest.raises(ModelNotAllowed, match="free"):
        _cost(CHANGE, model="flux-1.1-pro", tier="free", images=1)

    assert _cost(CHANGE, model="flux-1.1-pro", tier="jive", images=1) == Decimal("0.04")


def test_an_unknown_feature_is_an_error(seeded_catalog):
    line = UsageLine(model="qwen-3-32b", occurred_at=CHANGE, input_tokens=10, features=(FeatureUse("telepathy"),))
    with pytest.raises(UnknownFeature, match="telepathy"):
        rate_usage(line, seeded_catalog, tier="jive")


def test_an_event_before_the_first_version_has_no_price(seeded_catalog):
    with pytest.raises(NoPriceInForce, match="gpt-4o-mini"):
        _cost(SEED_EFFECTIVE_FROM - MICROSECOND)

    assert _cost(SEED_EFFECTIVE_FROM) == Decimal("0.15")


def test_the_errors_are_distinct_types_with_distinct_codes():
    kinds = [UnknownModel, InactiveModel, ModelNotAllowed, UnknownFeature, NoPriceInForce]

    for kind in kinds:
        assert issubclass(kind, PricingError)
        assert not any(issubclass(kind, other) for other in kinds if other is not kind)
    assert len({kind.code for kind in kinds}) == len(kinds)


# --- the services refuse bad input and write nothing ------------------------------------------------------------


def _price(**values: Any) -> Callable[[], Any]:
    return lambda: services.model_price_set(model=_model("gpt-4o-mini"), **values)


def _cost_version(**values: Any) -> Callable[[], Any]:
    values = {"cost_type": "multiplier", "cost_usd": "1", **values}
    return lambda: services.feature_cost_set(feature=Feature.objects.get(feature_key="optillm_cot"), **values)


def _terms(**values: Any) -> Callable[[], Any]:
    values = {"unit": "messages", "fee": "5", **values}
    return lambda: services.plan_terms_set(plan=Plan.objects.get(code="starter"), **values)


NOW = datetime(2026, 1, 1, tzinfo=UTC)

BAD_WRITES: list[tuple[str, Callable[[], Any], str]] = [
    ("negative price", _price(input_per_million="-0.01"), "input_per_million"),
    ("negative Decimal price", _price(output_per_million=Decimal("-1")), "output_per_million"),
    ("NaN price", _price(output_per_million="NaN"), "output_per_million"),
    ("infinite price", _price(image_price="Infinity"), "image_price"),
    ("float price", _price(input_per_million=0.15), "input_per_million"),
    ("float cached price", _price(cached_input_per_million=0.075), "cached_input_per_million"),
    ("text price", _price(input_per_million="cheap"), "input_per_million"),
    ("naive effective_from", _price(effective_from=datetime(2026, 10, 1)), "effective_from"),
    ("backdated without reason", _price(effective_from=NOW - timedelta(days=1), now=NOW), "reason"),
    ("backdated with a blank reason", _price(effective_from=NOW - timedelta(days=1), reason="  ", now=NOW), "reason"),
    (
        "a second version at the same instant",
        _price(effective_from=SEED_EFFECTIVE_FROM, reason="again"),
        "effective_from",
    ),
    ("rate 0", lambda: services.exchange_rate_set(currency="ZAR", rate="0"), "rate"),
    ("negative rate", lambda: services.exchange_rate_set(currency="ZAR", rate="-18"), "rate"),
    ("float rate", lambda: services.exchange_rate_set(currency="ZAR", rate=18.5), "rate"),
    ("unknown currency", lambda: services.exchange_rate_set(currency="XYZ", rate="2"), "currency"),
    ("rate for USD itself", lambda: services.exchange_rate_set(currency="USD", rate="1"), "currency"),
    ("tier multiplier 0", _cost_version(tier_multipliers={"jive": "0"}), "tier_multipliers.jive"),
    ("negative tier multiplier", _cost_version(tier_multipliers={"jive": "-1.3"}), "tier_multipliers.jive"),
    ("CePO multiplier 0", _cost_version(cepo_multiplier="0"), "cepo_multiplier"),
    ("multiplier feature at 0", _cost_version(cost_usd="0"), "cost_usd"),
    ("unknown cost type", _cost_version(cost_type="per_vibe"), "cost_type"),
    ("negative feature cost", _cost_version(cost_type="per_use", cost_usd="-0.01"), "cost_usd"),
    ("markup 0", _terms(markup="0"), "markup"),
    ("negative fee", _terms(fee="-5"), "fee"),
    ("plan in an unknown currency", _terms(currency="XYZ"), "currency"),
    ("plan in credits", _terms(currency="CREDITS"), "currency"),
    ("plan terms backdated without reason", _terms(effective_from=NOW - timedelta(days=1), now=NOW), "reason"),
    (
        "alias taken by another model",
        lambda: services.model_alias_add(model=_model("claude-3-5-haiku"), alias="gpt-4o-mini-2024-07-18"),
        "alias",
    ),
    (
        "alias that is another model's id",
        lambda: services.model_alias_add(model=_model("claude-3-5-haiku"), alias="gpt-4o-mini"),
        "alias",
    ),
    (
        "new model with an alias already taken",
        lambda: services.model_create(
            model_id="claude-next",
            display_name="Claude next",
            provider="anthropic",
            aliases=["claude-3-5-haiku-20241022"],
        ),
        "alias",
    ),
    (
        "new model whose id is already an alias",
        lambda: services.model_create(model_id="gpt-4o-mini-2024-07-18", display_name="x", provider="openai"),
        "model_id",
    ),
    (
        "model id taken",
        lambda: services.model_create(model_id="qwen-3-32b", display_name="x", provider="cerebras"),
        "model_id",
    ),
]


@pytest.mark.parametrize(("write", "field"), [case[1:] for case in BAD_WRITES], ids=[case[0] for case in BAD_WRITES])
def test_a_bad_catalog_write_is_refused_and_writes_nothing(
    seeded_catalog, django_capture_on_commit_callbacks, write, field
):
    before = _row_counts()

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(CatalogValidationError) as refused:
        write()

    assert field in refused.value.fields, refused.value.fields
    assert refused.value.code == "invalid"
    assert _row_counts() == before
    assert callbacks == []  # nothing to invalidate either


def test_a_bad_write_does_not_change_what_rates(seeded_catalog):
    with pytest.raises(CatalogValidationError):
        services.model_price_set(model=_model("gpt-4o-mini"), input_per_million="NaN", effective_from=CHANGE, now=MADE)

    assert not ModelPrice.objects.filter(effective_from=CHANGE).exists()
    assert _cost(CHANGE) == Decimal("0.15")


# --- seed and audit ---------------------------------------------------------------------------------------------


def test_seed_catalog_twice_creates_nothing_the_second_time(db):
    first = io.StringIO()
    call_command("seed_catalog", stdout=first)
    after_first = _row_counts()
    second = io.StringIO()
    call_command("seed_catalog", stdout=second)

    assert _row_counts() == after_first
    assert all(count > 0 for count in after_first.values()), after_first
    assert json.loads(first.getvalue())["created"]["models"] == 7
    assert set(json.loads(second.getvalue())["created"].values()) == {0}


def test_the_seed_prices_claude_cache_writes_as_anthropic_bills_them(db):
    """Claude 3.5 Haiku on Anthropic's price page: input $0.80, 5-minute cache writes $1.00 (1.25x), 1-hour writes
    $1.60 (2x), cache reads $0.08, output $4.00 per 1M. A call of 100 uncached, 2,000 read, 300 + 200 written and 400
    output tokens: (100 x 0.80 + 2,000 x 0.08 + 300 x 1.00 + 200 x 1.60 + 400 x 4.00) / 1M = $0.00246."""
    call_command("seed_catalog", stdout=io.StringIO())
    line = UsageLine(model="claude-3-5-haiku", occurred_at=datetime(2026, 12, 7, tzinfo=UTC), input_tokens=2600,
                     output_tokens=400, cached_input_tokens=2000, cache_write_input_tokens=300,
                     cache_write_1h_input_tokens=200)  # fmt: skip
    assert rate_usage(line, catalog_snapshot(), tier="jive").cost_usd == Decimal("0.00246")


def _feature() -> Feature:
    return Feature.objects.get(feature_key="image_gen")


AUDITED_WRITES: list[tuple[str, Callable[[], Any], str, str]] = [
    (
        "model_create",
        lambda: services.model_create(model_id="mistral-small", display_name="Mistral Small", provider="mistral"),
        "create",
        "mistral-small",
    ),
    ("model_update", lambda: services.model_update(model=_model("qwen-3-32b"), display_name="Qwen 3"), "update", "qwen-3-32b"),
    ("model_set_active", lambda: services.model_set_active(model=_model("qwen-3-32b"), is_active=False), "deactivate", "qwen-3-32b"),
    ("model_alias_add", lambda: services.model_alias_add(model=_model("qwen-3-32b"), alias="qwen3-32b"), "alias_add", "qwen3-32b"),
    ("model_price_set", _price(input_per_million="0.2", effective_from=CHANGE, now=MADE), "price_version", "gpt-4o-mini"),
    ("feature_create", lambda: services.feature_create(feature_key="web_search", display_name="Web"), "create", "web_search"),
    (
        "feature_cost_set",
        lambda: services.feature_cost_set(feature=_feature(), cost_type="per_image", cost_usd="0.05", effective_from=CHANGE, now=MADE),
        "cost_version",
        "image_gen",
    ),
    (
        "exchange_rate_set",
        lambda: services.exchange_rate_set(currency="EUR", rate="0.92", effective_from=CHANGE, now=MADE),
        "rate_version",
        "EUR",
    ),
    ("plan_create", lambda: services.plan_create(code="team", name="Team", family="messages"), "create", "team"),
    ("plan_terms_set", _terms(effective_from=CHANGE, now=MADE), "terms_version", "starter"),
    (
        "operation_limit_set",
        lambda: services.operation_limit_set(plan=None, operation_type="chat_message", max_input_tokens=20_000),
        "limits",
        "*:chat_message",
    ),
    ("catalog_cache_flush", lambda: services.catalog_cache_flush(), "cache_flush", "*"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("write", "action", "key"), [case[1:] for case in AUDITED_WRITES], ids=[case[0] for case in AUDITED_WRITES]
)
def test_every_catalog_write_adds_one_audit_row(seeded_catalog, write, action, key):
    before = CatalogAudit.objects.count()
    last = CatalogAudit.objects.order_by("-id").values_list("id", flat=True).first()

    write()

    assert CatalogAudit.objects.count() == before + 1
    audit = CatalogAudit.objects.get(id__gt=last)
    assert (audit.action, audit.object_key) == (action, key)


def test_a_model_created_with_aliases_audits_each_alias(db):
    services.model_create(
        model_id="mistral-small", display_name="Mistral Small", provider="mistral", aliases=["ms-2501", "ms-latest"]
    )

    assert sorted(CatalogAudit.objects.values_list("action", "object_key")) == [
        ("alias_add", "ms-2501"),
        ("alias_add", "ms-latest"),
        ("create", "mistral-small"),
    ]
