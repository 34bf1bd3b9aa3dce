"""The pricing console (the Django admin), asserted as a person sees it: every page renders with the real numbers,
every write goes through the services (a new version, audited, the cache refreshed), and bad input comes back as a
visible error with nothing written."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from pricing.models import (
    AIModel,
    CatalogAudit,
    ExchangeRate,
    Feature,
    FeatureCost,
    FeatureTierMultiplier,
    ModelAlias,
    ModelPrice,
    OperationLimit,
    Plan,
    PlanTerms,
)
from pricing.selectors import catalog_generation, catalog_snapshot


def text(response) -> str:
    """The page as a person reads it: no tags, scripts or styles, whitespace collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def errors(response) -> str:
    """Every error shown on a form page (field and non-field)."""
    found = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), flags=re.S)
    return " | ".join(" ".join(unescape(re.sub(r"<[^>]+>", " ", chunk)).split()) for chunk in found)


def model(model_id: str = "gpt-4o-mini") -> AIModel:
    return AIModel.objects.get(model_id=model_id)


def counts() -> dict[str, int]:
    """How many rows each catalog table has: 'nothing written' means these do not move."""
    tables = (AIModel, ModelAlias, ModelPrice, Feature, FeatureCost, FeatureTierMultiplier, ExchangeRate, Plan,
              PlanTerms, OperationLimit, CatalogAudit)  # fmt: skip
    return {table.__name__: table.objects.count() for table in tables}


def price_data(**changes: str) -> dict[str, str]:
    data = {
        "input_per_million": "0.20",
        "cached_input_per_million": "0.10",
        "output_per_million": "0.80",
        "image_price": "0",
        "effective_from_0": "",
        "effective_from_1": "",
        "reason": "OpenAI raised the price",
    }
    return {**data, **changes}


def cost_data(multipliers: dict[str, str], **changes: str) -> dict[str, str]:
    """The new-cost-version form as the page posts it: the fields and one tier row per plan code."""
    tiers = list(Plan.objects.values_list("code", flat=True))
    data = {
        "cost_type": "multiplier",
        "cost_usd": "1",
        "cepo_multiplier": "1",
        "is_billable": "on",
        "effective_from_0": "",
        "effective_from_1": "",
        "reason": "new tier pricing",
        "tiers-TOTAL_FORMS": str(len(tiers)),
        "tiers-INITIAL_FORMS": str(len(tiers)),
    }
    for index, tier in enumerate(tiers):
        data[f"tiers-{index}-tier"] = tier
        data[f"tiers-{index}-multiplier"] = multipliers.get(tier, "")
    return {**data, **changes}


def terms_data(**changes: str) -> dict[str, str]:
    data = {
        "interval": "month", "fee": "6", "currency": "USD", "unit": "messages", "included_units": "1200",
        "overage_rate": "0.00015", "monthly_spend_cap": "50", "overage_allowed": "on", "max_overage_pct": "",
        "markup": "1", "requests_per_hour": "", "alert_thresholds": "75, 90, 100", "effective_from_0": "",
        "effective_from_1": "", "reason": "price rise",
    }  # fmt: skip
    return {**data, **changes}


# --- pages -----------------------------------------------------------------------------------------------------


def _object_id(kind: str) -> object:
    """The seeded object a page is about, by a short name; "" for pages about no object."""
    lookups = {
        "": lambda: "",
        "model": lambda: model().pk,
        "feature": lambda: Feature.objects.get(feature_key="optillm_cot").pk,
        "rate": lambda: ExchangeRate.objects.get(currency="ZAR").pk,
        "plan": lambda: Plan.objects.get(code="starter").pk,
        "limit": lambda: OperationLimit.objects.get().pk,
        "audit": lambda: CatalogAudit.objects.latest("id").pk,
    }
    return lookups[kind]()


PAGES = [
    ("/admin/", "", "Pricing now"),
    ("/admin/pricing/aimodel/", "", "Download catalog CSV"),
    ("/admin/pricing/aimodel/add/", "", "First price (USD)"),
    ("/admin/pricing/aimodel/{}/change/", "model", "Price versions (USD)"),
    ("/admin/pricing/aimodel/{}/price/", "model", "New price version"),
    ("/admin/pricing/feature/", "", "optillm_cot"),
    ("/admin/pricing/feature/add/", "", "Tier multipliers"),
    ("/admin/pricing/feature/{}/change/", "feature", "Cost versions"),
    ("/admin/pricing/feature/{}/cost/", "feature", "Tier multipliers"),
    ("/admin/pricing/exchangerate/", "", "CREDITS"),
    ("/admin/pricing/exchangerate/add/", "", "nothing is saved until you confirm"),
    ("/admin/pricing/exchangerate/{}/change/", "rate", "USD → ZAR history"),
    ("/admin/pricing/plan/", "", "Professional"),
    ("/admin/pricing/plan/add/", "", "Quota and overage"),
    ("/admin/pricing/plan/{}/change/", "plan", "Terms versions"),
    ("/admin/pricing/plan/{}/terms/", "plan", "New terms version"),
    ("/admin/pricing/operationlimit/", "", "chat_message"),
    ("/admin/pricing/operationlimit/add/", "", "Per message"),
    ("/admin/pricing/operationlimit/{}/change/", "limit", "chat_message"),
    ("/admin/pricing/catalogaudit/", "", "price_version"),
    ("/admin/pricing/catalogaudit/{}/change/", "audit", "Before"),
]


@pytest.mark.parametrize(("url", "about", "shows"), PAGES, ids=[page[0] for page in PAGES])
def test_every_console_page_renders(admin_client, seeded_catalog, url, about, shows):
    response = admin_client.get(url.format(_object_id(about)))

    assert response.status_code == 200
    assert shows in text(response)


def test_model_list_shows_the_prices_in_force(admin_client, seeded_catalog):
    page = text(admin_client.get("/admin/pricing/aimodel/"))

    assert "gpt-4o-mini GPT-4o mini openai" in page
    assert "0.15 0.075 0.6 0 2024-01-01 9 plans" in page  # input, cached input, output, image, since, plans
    assert "flux-1.1-pro FLUX 1.1 [pro] bfl 0 = input 0 0.04 2024-01-01 8 plans" in page
    assert "claude-3-5-haiku Claude 3.5 Haiku anthropic" in page


def test_model_page_shows_versions_aliases_and_latest_changes(admin_client, seeded_catalog):
    page = text(admin_client.get(f"/admin/pricing/aimodel/{model().pk}/change/"))

    assert "0.15 0.075 0.6 0 2024-01-01 00:00 UTC in force, backdated system seed catalog" in page
    assert "gpt-4o-mini-2024-07-18" in page
    assert "New price version" in page
    assert "price_version" in page  # the latest-changes table, from the audit


# --- the console home ------------------------------------------------------------------------------------------


def test_home_cards_show_the_catalog_numbers(admin_client, seeded_catalog, settings):
    settings.PRICING_SHOW_PROVIDER_PRICES = True

    page = text(admin_client.get("/admin/"))

    assert "TokenLedger console" in page
    assert "Active models 7 of 7 in the catalog" in page
    assert "Billable features 2 of 5 active features" in page  # optillm_cot and image_gen
    assert "Rates per 1 USD 10,000 credits 18.5 ZAR" in page
    assert "Cheapest model per 1M tokens qwen-3-32b $0.10 in, $0.10 out" in page
    assert "Accounts see Provider prices USD per 1M tokens and their price in credits" in page
    assert "PRICING_SHOW_PROVIDER_PRICES = True" in page


def test_home_cards_follow_console_writes_and_the_setting(
    admin_client, seeded_catalog, settings, django_capture_on_commit_callbacks
):
    settings.PRICING_SHOW_PROVIDER_PRICES = False
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/pricing/aimodel/", {"action": "deactivate", "_selected_action": [model("qwen-3-32b").pk]}
        )

    page = text(admin_client.get("/admin/"))

    assert "Active models 6 of 7 in the catalog" in page
    # llama at 0.35 + 0.35 is now cheaper than gpt-4o-mini at 0.15 + 0.60
    assert "meta-llama/llama-3.3-70b-instruct $0.35 in, $0.35 out" in page
    assert "Accounts see Credits only their own price in credits only" in page
    assert "PRICING_SHOW_PROVIDER_PRICES = False" in page


def test_home_has_no_cards_for_staff_without_pricing_permissions(client, seeded_catalog):
    user = get_user_model().objects.create_user("viewer", password="pw-for-tests", is_staff=True)
    client.force_login(user)

    assert "Pricing now" not in text(client.get("/admin/"))
    assert client.get(f"/admin/pricing/aimodel/{model().pk}/price/").status_code == 403


# --- a new price version ---------------------------------------------------------------------------------------


def test_price_edit_adds_a_version_with_its_reason_and_author(
    admin_client, admin_user, seeded_catalog, django_capture_on_commit_callbacks
):
    gpt = model()
    old = gpt.prices.get()
    audits = CatalogAudit.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/pricing/aimodel/{gpt.pk}/price/", price_data(), follow=True)

    assert "New price version for gpt-4o-mini in force from" in text(response)
    new = gpt.prices.latest("effective_from")
    assert (new.input_per_million, new.cached_input_per_million, new.output_per_million) == (
        Decimal("0.2"),
        Decimal("0.1"),
        Decimal("0.8"),
    )
    assert new.reason == "OpenAI raised the price"
    assert new.set_by == admin_user
    assert not new.backdated
    unchanged = ModelPrice.objects.get(pk=old.pk)
    assert (unchanged.input_per_million, unchanged.output_per_million, unchanged.reason) == (
        Decimal("0.15"),
        Decimal("0.6"),
        "seed catalog",
    )
    audit = CatalogAudit.objects.get(action="price_version", object_key="gpt-4o-mini", actor=admin_user)
    assert audit.reason == "OpenAI raised the price"
    assert CatalogAudit.objects.count() == audits + 1
    # the rating engine sees the new price at once: the console write refreshed the cached catalog
    assert catalog_snapshot().models["gpt-4o-mini"].price_at(timezone.now()).input_per_million == Decimal("0.2")
    assert "0.2 0.1 0.8 0" in text(admin_client.get("/admin/pricing/aimodel/"))


def test_price_form_starts_from_the_price_in_force(admin_client, seeded_catalog):
    response = admin_client.get(f"/admin/pricing/aimodel/{model().pk}/price/")

    assert 'name="input_per_million" value="0.15"' in response.content.decode()
    assert 'name="output_per_million" value="0.6"' in response.content.decode()


def test_backdated_price_without_a_reason_is_refused(admin_client, seeded_catalog):
    before = counts()

    response = admin_client.post(
        f"/admin/pricing/aimodel/{model().pk}/price/",
        price_data(effective_from_0="2025-06-01", effective_from_1="00:00:00", reason=""),
    )

    assert response.status_code == 200
    assert "a version that starts in the past needs a reason" in errors(response)
    assert "Please correct the error below." in text(response)
    assert counts() == before


def test_backdated_price_with_a_reason_is_saved_and_marked(admin_client, seeded_catalog):
    gpt = model()

    admin_client.post(
        f"/admin/pricing/aimodel/{gpt.pk}/price/",
        price_data(effective_from_0="2025-06-01", effective_from_1="00:00:00", reason="invoice showed June prices"),
    )

    version = gpt.prices.get(effective_from__year=2025)
    assert version.backdated
    page = text(admin_client.get(f"/admin/pricing/aimodel/{gpt.pk}/change/"))
    assert "2025-06-01 00:00 UTC in force, backdated admin invoice showed June prices" in page
    assert "2024-01-01 00:00 UTC superseded, backdated system seed catalog" in page


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "must be >= 0"),
        ("NaN", "Enter a number."),
        ("Infinity", "Enter a number."),
        ("", "This field is required."),
    ],
)
def test_bad_price_shows_an_error_and_writes_nothing(admin_client, seeded_catalog, value, message):
    before = counts()

    response = admin_client.post(f"/admin/pricing/aimodel/{model().pk}/price/", price_data(output_per_million=value))

    assert response.status_code == 200
    assert message in errors(response)
    assert counts() == before


# --- models: add, change, aliases, actions ---------------------------------------------------------------------


def test_add_model_creates_it_with_its_first_price_and_aliases(admin_client, admin_user, seeded_catalog):
    data = {
        **price_data(reason="launch price"),
        "model_id": "gpt-4.1-nano",
        "display_name": "GPT-4.1 nano",
        "provider": "openai",
        "is_active": "on",
        "allowed_tiers": ["pro", "business"],
        "aliases": "gpt-4.1-nano-2025-04-14",
    }

    response = admin_client.post("/admin/pricing/aimodel/add/", data, follow=True)

    assert "Model gpt-4.1-nano added with its first price." in text(response)
    nano = model("gpt-4.1-nano")
    assert nano.allowed_tiers == ["business", "pro"]
    assert nano.prices.get().output_per_million == Decimal("0.8")
    assert ModelAlias.objects.get(alias="gpt-4.1-nano-2025-04-14").model == nano
    assert set(CatalogAudit.objects.filter(actor=admin_user).values_list("action", flat=True)) == {
        "create",
        "alias_add",
        "price_version",
    }


def test_add_model_with_a_taken_alias_writes_nothing(admin_client, seeded_catalog):
    before = counts()
    data = {**price_data(), "model_id": "gpt-4o-mini-copy", "display_name": "Copy", "provider": "openai",
            "aliases": "gpt-4o-mini-2024-07-18"}  # fmt: skip

    response = admin_client.post("/admin/pricing/aimodel/add/", data)

    assert "already taken by gpt-4o-mini" in errors(response)
    assert counts() == before  # the model created before the alias failed is rolled back too


def test_add_model_with_an_existing_id_is_refused(admin_client, seeded_catalog):
    before = counts()
    data = {**price_data(), "model_id": "gpt-4o-mini", "display_name": "again", "provider": "openai"}

    response = admin_client.post("/admin/pricing/aimodel/add/", data)

    assert "already exists" in errors(response)
    assert counts() == before


def test_alias_already_taken_is_refused_and_nothing_else_changes(admin_client, seeded_catalog):
    claude = model("claude-3-5-haiku")
    before = counts()
    data = {"display_name": "Claude Haiku (renamed)", "provider": "anthropic", "is_active": "on",
            "alias": "gpt-4o-mini-2024-07-18"}  # fmt: skip

    response = admin_client.post(f"/admin/pricing/aimodel/{claude.pk}/change/", data)

    assert "already taken by gpt-4o-mini" in errors(response)
    assert counts() == before
    assert model("claude-3-5-haiku").display_name == "Claude 3.5 Haiku"


def test_change_model_goes_through_the_services(admin_client, admin_user, seeded_catalog):
    claude = model("claude-3-5-haiku")
    data = {"display_name": "Claude Haiku 3.5", "provider": "anthropic", "is_active": "on",
            "allowed_tiers": ["pro"], "alias": "claude-3-5-haiku-latest"}  # fmt: skip

    response = admin_client.post(f"/admin/pricing/aimodel/{claude.pk}/change/", data, follow=True)

    assert "Model claude-3-5-haiku saved." in text(response)
    claude.refresh_from_db()
    assert (claude.display_name, claude.allowed_tiers) == ("Claude Haiku 3.5", ["pro"])
    assert ModelAlias.objects.get(alias="claude-3-5-haiku-latest").model == claude
    update = CatalogAudit.objects.get(action="update", object_key="claude-3-5-haiku")
    assert update.actor == admin_user
    assert (update.after or {}).get("display_name") == "Claude Haiku 3.5"
    assert CatalogAudit.objects.filter(action="alias_add", object_key="claude-3-5-haiku-latest").exists()


def test_deactivate_and_activate_actions_are_audited(admin_client, admin_user, seeded_catalog):
    ids = [model("qwen-3-32b").pk, model("gpt-4o-mini").pk]

    response = admin_client.post(
        "/admin/pricing/aimodel/", {"action": "deactivate", "_selected_action": ids}, follow=True
    )

    assert "2 deactivated: gpt-4o-mini, qwen-3-32b." in text(response)
    assert not AIModel.objects.filter(pk__in=ids, is_active=True).exists()
    assert CatalogAudit.objects.filter(action="deactivate", actor=admin_user).count() == 2

    admin_client.post("/admin/pricing/aimodel/", {"action": "activate", "_selected_action": ids[:1]})

    assert model("qwen-3-32b").is_active
    assert not model("gpt-4o-mini").is_active
    assert CatalogAudit.objects.get(action="activate").object_key == "qwen-3-32b"


def test_flush_cache_action_and_button_are_audited(admin_client, admin_user, seeded_catalog):
    generation = catalog_generation()

    response = admin_client.post(
        "/admin/pricing/aimodel/", {"action": "flush_cache", "_selected_action": [model().pk]}, follow=True
    )

    assert "Pricing cache flushed" in text(response)
    assert catalog_generation() != generation
    generation = catalog_generation()

    response = admin_client.post("/admin/pricing/aimodel/flush-cache/", follow=True)

    assert "Pricing cache flushed" in text(response)
    assert catalog_generation() != generation
    assert CatalogAudit.objects.filter(action="cache_flush", actor=admin_user).count() == 2
    assert admin_client.get("/admin/pricing/aimodel/flush-cache/").status_code == 405


# --- features --------------------------------------------------------------------------------------------------


def test_feature_list_shows_costs_and_tier_multipliers(admin_client, seeded_catalog):
    page = text(admin_client.get("/admin/pricing/feature/"))

    assert "free x1.1, jigga x1.5, jive x1.3" in page


def test_feature_cost_form_edits_multipliers_as_a_table(admin_client, seeded_catalog):
    feature = Feature.objects.get(feature_key="optillm_cot")

    response = admin_client.get(f"/admin/pricing/feature/{feature.pk}/cost/")

    html = response.content.decode()
    assert "Tier multipliers" in text(response)
    page = text(response)
    assert "Plan Multiplier free Multiplier for free jigga" in page
    assert page.index("Tier multipliers") < page.index("When and why") < page.index("Cost versions")
    rows = dict(re.findall(r'name="tiers-(\d+)-tier" value="([^"]+)"', html))
    assert sorted(rows.values()) == sorted(Plan.objects.values_list("code", flat=True))  # one row per plan code
    jive = next(index for index, tier in rows.items() if tier == "jive")
    assert f'name="tiers-{jive}-multiplier" value="1.3"' in html  # the multiplier in force, not raw JSON


def test_new_feature_cost_version_with_tier_multipliers(admin_client, admin_user, seeded_catalog):
    feature = Feature.objects.get(feature_key="optillm_cot")
    old = feature.costs.get()

    response = admin_client.post(
        f"/admin/pricing/feature/{feature.pk}/cost/", cost_data({"free": "1.2", "jive": "1.4"}), follow=True
    )

    assert "New cost version for optillm_cot in force from" in text(response)
    new = feature.costs.latest("effective_from")
    assert {t.tier: t.multiplier for t in new.tier_multipliers.all()} == {
        "free": Decimal("1.2"),
        "jive": Decimal("1.4"),
    }
    assert (new.set_by, new.reason) == (admin_user, "new tier pricing")
    assert {t.tier for t in old.tier_multipliers.all()} == {"free", "jive", "jigga"}  # the old version is intact
    assert CatalogAudit.objects.filter(action="cost_version", object_key="optillm_cot", actor=admin_user).exists()


@pytest.mark.parametrize(("changes", "multipliers", "message"), [
    ({}, {"jive": "0"}, "must be > 0"),
    ({}, {"jive": "-2"}, "must be > 0"),
    ({"cepo_multiplier": "0"}, {}, "must be > 0"),
    ({"cost_usd": "-0.01", "cost_type": "per_use"}, {}, "must be >= 0"),
])  # fmt: skip
def test_bad_feature_cost_shows_an_error_and_writes_nothing(
    admin_client, seeded_catalog, changes, multipliers, message
):
    feature = Feature.objects.get(feature_key="optillm_cot")
    before = counts()

    response = admin_client.post(f"/admin/pricing/feature/{feature.pk}/cost/", cost_data(multipliers, **changes))

    assert response.status_code == 200
    assert message in errors(response)
    assert counts() == before


def test_add_feature_with_its_first_cost(admin_client, seeded_catalog):
    data = {**cost_data({"pro": "2"}, cost_type="per_use", cost_usd="0.002", reason=""), "feature_key": "web_search",
            "display_name": "Web search", "description": "search the web"}  # fmt: skip

    response = admin_client.post("/admin/pricing/feature/add/", data, follow=True)

    assert "Feature web_search added with its cost." in text(response)
    cost = Feature.objects.get(feature_key="web_search").costs.get()
    assert (cost.cost_type, cost.cost_usd) == ("per_use", Decimal("0.002"))
    assert {t.tier: t.multiplier for t in cost.tier_multipliers.all()} == {"pro": Decimal("2")}


# --- exchange rates: preview, then confirm ---------------------------------------------------------------------


def test_rate_preview_shows_before_and_after_and_saves_nothing(admin_client, seeded_catalog):
    before = counts()

    response = admin_client.post("/admin/pricing/exchangerate/add/", {"currency": "CREDITS", "rate": "12000"})

    page = text(response)
    assert "10,000 → 12,000 CREDITS per USD (+20.00%)" in page
    assert "What Credits ZAR before after before after" in page
    assert "$5 top-up 50,000 60,000 92.50 92.50" in page
    assert "$100 top-up 1,000,000 1,200,000 1,850.00 1,850.00" in page
    # 1,000 x 0.15 + 500 x 0.60 per 1M = $0.00045 = 4.5 credits at 10,000, 5.4 at 12,000
    assert "1,000 in / 500 out on gpt-4o-mini ($0.00045) 4.5 5.4 0.008325 0.008325" in page
    assert "Nothing has been saved yet." in page
    assert 'name="_confirm"' in response.content.decode()
    assert 'type="hidden" name="rate" value="12000"' in response.content.decode()
    assert counts() == before


def test_zar_rate_preview(admin_client, seeded_catalog):
    page = text(admin_client.post("/admin/pricing/exchangerate/add/", {"currency": "ZAR", "rate": "20"}))

    assert "18.5 → 20 ZAR per USD (+8.11%)" in page
    assert "$5 top-up 50,000 50,000 92.50 100.00" in page
    assert "0.008325 0.009" in page


def test_rate_preview_for_a_currency_without_a_rate_yet(admin_client, seeded_catalog):
    page = text(admin_client.post("/admin/pricing/exchangerate/add/", {"currency": "EUR", "rate": "0.92"}))

    assert "new rate: 0.92 EUR per USD (no rate in force before)" in page
    assert "What Credits ZAR EUR before after before after before after" in page
    assert "$5 top-up 50,000 50,000 92.50 92.50 no rate 4.60" in page


def test_rate_is_saved_only_on_confirm(admin_client, admin_user, seeded_catalog, django_capture_on_commit_callbacks):
    admin_client.post("/admin/pricing/exchangerate/add/", {"currency": "CREDITS", "rate": "12000"})
    assert ExchangeRate.objects.filter(currency="CREDITS").count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/pricing/exchangerate/add/",
            {"currency": "CREDITS", "rate": "12000", "reason": "credits repriced", "_confirm": "1"},
            follow=True,
        )

    assert "USD → CREDITS is 12,000 from" in text(response)
    new = ExchangeRate.objects.filter(currency="CREDITS").latest("effective_from")
    assert (new.rate, new.set_by, new.reason) == (Decimal("12000"), admin_user, "credits repriced")
    assert CatalogAudit.objects.filter(action="rate_version", object_key="CREDITS", actor=admin_user).count() == 1
    assert catalog_snapshot().rate_at("CREDITS", timezone.now()).rate == Decimal("12000")
    page = text(admin_client.get("/admin/pricing/exchangerate/?currency=CREDITS"))
    assert "CREDITS 12,000" in page
    assert "in force" in page
    assert "superseded" in page
    assert "Rates per 1 USD 12,000 credits" in text(admin_client.get("/admin/"))


def test_rate_edit_step_goes_back_to_the_form_without_saving(admin_client, seeded_catalog):
    before = counts()

    response = admin_client.post("/admin/pricing/exchangerate/add/", {"currency": "ZAR", "rate": "19", "_edit": "1"})

    assert "New exchange rate" in text(response)
    assert 'name="rate" value="19"' in response.content.decode()
    assert counts() == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"currency": "CREDITS", "rate": "0"}, "must be > 0"),
        ({"currency": "CREDITS", "rate": "0", "_confirm": "1"}, "must be > 0"),
        ({"currency": "ZAR", "rate": "-18"}, "must be > 0"),
        ({"currency": "ZAR", "rate": "NaN"}, "Enter a number."),
        ({"currency": "XYZ", "rate": "2"}, "Select a valid choice. XYZ is not one of the available choices."),
        ({"currency": "USD", "rate": "1"}, "Select a valid choice."),
        (
            {"currency": "ZAR", "rate": "19", "effective_from_0": "2025-01-01", "effective_from_1": "00:00"},
            "a version that starts in the past needs a reason",
        ),
    ],
)
def test_bad_rate_shows_an_error_and_writes_nothing(admin_client, seeded_catalog, data, message):
    before = counts()

    response = admin_client.post("/admin/pricing/exchangerate/add/", data)

    assert response.status_code == 200
    assert message in errors(response)
    assert "Nothing has been saved yet." not in text(response)  # no preview for a value the service refuses
    assert counts() == before


def test_rate_versions_cannot_be_edited_or_deleted(admin_client, seeded_catalog):
    rate = ExchangeRate.objects.get(currency="ZAR")

    response = admin_client.post(f"/admin/pricing/exchangerate/{rate.pk}/change/", {"rate": "1"})

    assert response.status_code == 403
    assert admin_client.get(f"/admin/pricing/exchangerate/{rate.pk}/delete/").status_code == 403
    assert ExchangeRate.objects.get(pk=rate.pk).rate == Decimal("18.5")


# --- plans and operation limits --------------------------------------------------------------------------------


def test_new_plan_terms_version(admin_client, admin_user, seeded_catalog):
    starter = Plan.objects.get(code="starter")

    response = admin_client.post(f"/admin/pricing/plan/{starter.pk}/terms/", terms_data(), follow=True)

    assert "New terms version for starter in force from" in text(response)
    new = starter.terms.latest("effective_from")
    assert (new.fee, new.included_units, new.alert_thresholds, new.set_by) == (
        Decimal("6"),
        Decimal("1200"),
        [75, 90, 100],
        admin_user,
    )
    assert starter.terms.earliest("effective_from").fee == Decimal("5")
    assert CatalogAudit.objects.filter(action="terms_version", object_key="starter").exists()
    assert "6 USD / month messages 1200" in text(admin_client.get("/admin/pricing/plan/"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"markup": "0"}, "must be > 0"),
        ({"fee": "-5"}, "must be >= 0"),
        ({"alert_thresholds": "75, ninety"}, "whole percentages separated by commas"),
        ({"requests_per_hour": "0"}, "a whole number > 0, or empty for no limit"),
        ({"currency": "CREDITS"}, "Select a valid choice."),
    ],
)
def test_bad_plan_terms_show_an_error_and_write_nothing(admin_client, seeded_catalog, changes, message):
    starter = Plan.objects.get(code="starter")
    before = counts()

    response = admin_client.post(f"/admin/pricing/plan/{starter.pk}/terms/", terms_data(**changes))

    assert message in errors(response)
    assert counts() == before


def test_add_plan_with_its_terms(admin_client, seeded_catalog):
    data = {**terms_data(), "code": "team", "name": "Team", "family": "messages", "is_public": "on"}

    response = admin_client.post("/admin/pricing/plan/add/", data, follow=True)

    assert "Plan team added with its terms." in text(response)
    assert Plan.objects.get(code="team").terms.get().fee == Decimal("6")


def test_operation_limits_are_set_through_the_service(admin_client, admin_user, seeded_catalog):
    starter = Plan.objects.get(code="starter")
    data = {"plan": starter.pk, "operation_type": "chat_message", "max_input_tokens": "5000",
            "max_daily_cost_usd": "2.50", "alert_threshold_pct": "80"}  # fmt: skip

    admin_client.post("/admin/pricing/operationlimit/add/", data)

    limit = OperationLimit.objects.get(plan=starter)
    assert (limit.max_input_tokens, limit.max_daily_cost_usd) == (5000, Decimal("2.5"))
    assert CatalogAudit.objects.get(action="limits", object_key="starter:chat_message").actor == admin_user

    glob = OperationLimit.objects.get(plan=None)
    admin_client.post(
        f"/admin/pricing/operationlimit/{glob.pk}/change/",
        {"max_input_tokens": "10000", "max_output_tokens": "3000", "alert_threshold_pct": "80"},
    )

    glob.refresh_from_db()
    assert glob.max_output_tokens == 3000
    assert glob.operation_type == "chat_message"  # the identity fields are not editable
    audit = CatalogAudit.objects.filter(action="limits", object_key="*:chat_message").latest("id")
    assert audit.actor == admin_user
    assert (audit.before or {}).get("max_output_tokens") == 2000
    assert (audit.after or {}).get("max_output_tokens") == 3000


def test_bad_operation_limit_shows_an_error(admin_client, seeded_catalog):
    before = counts()

    response = admin_client.post(
        "/admin/pricing/operationlimit/add/",
        {"operation_type": "image", "max_input_tokens": "0", "alert_threshold_pct": "80"},
    )
    duplicate = admin_client.post(
        "/admin/pricing/operationlimit/add/", {"operation_type": "chat_message", "alert_threshold_pct": "80"}
    )

    assert "a whole number > 0, or empty" in errors(response)
    assert "already has a limit for this operation" in errors(duplicate)
    assert counts() == before


# --- audit and CSV ---------------------------------------------------------------------------------------------


def test_audit_log_is_read_only(admin_client, seeded_catalog):
    entry = CatalogAudit.objects.filter(action="price_version").latest("id")

    page = admin_client.get(f"/admin/pricing/catalogaudit/{entry.pk}/change/")

    assert "seed catalog" in text(page)
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.get("/admin/pricing/catalogaudit/add/").status_code == 403
    assert admin_client.post(f"/admin/pricing/catalogaudit/{entry.pk}/change/", {}).status_code == 403
    assert admin_client.get(f"/admin/pricing/catalogaudit/{entry.pk}/delete/").status_code == 403


def _csv_sections(content: str) -> dict[str, list[dict[str, str]]]:
    sections: dict[str, list[dict[str, str]]] = {}
    for block in content.strip().split("\r\n\r\n"):
        rows = list(csv.reader(io.StringIO(block)))
        name, header, body = rows[0][0].removeprefix("# "), rows[1], rows[2:]
        sections[name] = [dict(zip(header, row, strict=True)) for row in body]
    return sections


def test_catalog_csv_has_models_features_rates_and_plans(admin_client, seeded_catalog):
    response = admin_client.get("/admin/pricing/aimodel/catalog.csv")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="tokenledger-catalog-')
    sections = _csv_sections(response.content.decode())
    assert list(sections) == ["models", "features", "exchange_rates", "plans"]
    gpt = next(row for row in sections["models"] if row["model_id"] == "gpt-4o-mini")
    assert gpt | {"allowed_tiers": ""} == {
        "model_id": "gpt-4o-mini", "display_name": "GPT-4o mini", "provider": "openai", "active": "yes",
        "input_usd_per_1m": "0.15", "cached_input_usd_per_1m": "0.075", "output_usd_per_1m": "0.6",
        "image_usd": "0", "allowed_tiers": "", "aliases": "gpt-4o-mini-2024-07-18",
        "price_effective_from": "2024-01-01T00:00:00+00:00",
    }  # fmt: skip
    assert len(sections["models"]) == 7
    optillm = next(row for row in sections["features"] if row["feature_key"] == "optillm_cot")
    assert (optillm["cost_type"], optillm["tier_multipliers"]) == ("multiplier", "free=1.1;jigga=1.5;jive=1.3")
    assert sections["exchange_rates"] == [
        {"currency": "CREDITS", "units_per_usd": "10000", "effective_from": "2024-01-01T00:00:00+00:00"},
        {"currency": "ZAR", "units_per_usd": "18.5", "effective_from": "2024-01-01T00:00:00+00:00"},
    ]
    starter = next(row for row in sections["plans"] if row["code"] == "starter")
    assert (starter["fee"], starter["included_units"], starter["monthly_spend_cap"]) == ("5", "1000", "50")


def test_catalog_csv_one_section(admin_client, seeded_catalog):
    response = admin_client.get("/admin/pricing/aimodel/catalog.csv?section=exchange_rates")

    assert response.content.decode().splitlines() == [
        "currency,units_per_usd,effective_from",
        "CREDITS,10000,2024-01-01T00:00:00+00:00",
        "ZAR,18.5,2024-01-01T00:00:00+00:00",
    ]
    assert admin_client.get("/admin/pricing/aimodel/catalog.csv?section=nope").status_code == 404


def test_catalog_csv_keeps_a_formula_in_a_name_as_text(admin_client, seeded_catalog):
    """A display name is typed by an operator or imported from a price map: one a spreadsheet would run as a
    formula downloads as text (core.csv_export's rule), the prices beside it stay numbers."""
    from pricing.services import model_create

    model_create(model_id="house-model", display_name='=HYPERLINK("http://evil.test","x")', provider="openai")
    response = admin_client.get("/admin/pricing/aimodel/catalog.csv?section=models")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    house = next(row for row in rows if row["model_id"] == "house-model")
    assert house["display_name"] == '\'=HYPERLINK("http://evil.test","x")'
    gpt = next(row for row in rows if row["model_id"] == "gpt-4o-mini")
    assert gpt["input_usd_per_1m"] == "0.15"


def test_removing_an_alias_refuses_events_that_name_it_and_is_audited(
    admin_client, admin_user, seeded_catalog, django_capture_on_commit_callbacks
):
    from pricing.errors import UnknownModel
    from pricing.rating import UsageLine, rate_usage
    from pricing.services import model_alias_add

    gpt = model("gpt-4o-mini")
    # not a dated snapshot name: those resolve to the undated model by themselves (docs/pricing-dimensions.md)
    alias = model_alias_add(model=gpt, alias="house-mini").alias
    data = {"display_name": gpt.display_name, "provider": gpt.provider, "is_active": "on",
            "allowed_tiers": gpt.allowed_tiers, "remove_aliases": [alias]}  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):  # the committed write refreshes the catalog
        response = admin_client.post(f"/admin/pricing/aimodel/{gpt.pk}/change/", data, follow=True)

    assert "Model gpt-4o-mini saved." in text(response)
    assert not ModelAlias.objects.filter(alias=alias).exists()
    removed = CatalogAudit.objects.get(action="alias_remove", object_key=alias)
    assert (removed.actor, removed.before) == (admin_user, {"model": "gpt-4o-mini"})
    line = UsageLine(model=alias, occurred_at=timezone.now(), input_tokens=10, output_tokens=10)
    with pytest.raises(UnknownModel):
        rate_usage(line, catalog_snapshot(), tier="starter")


def test_a_feature_is_renamed_and_withdrawn_through_the_service(
    admin_client, admin_user, seeded_catalog, django_capture_on_commit_callbacks
):
    from pricing.errors import UnknownFeature
    from pricing.rating import FeatureUse, UsageLine, rate_usage

    feature = Feature.objects.get(feature_key="optillm_cot")
    data = {"display_name": "OptiLLM reasoning", "description": "chain of thought"}  # is_active unticked

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/pricing/feature/{feature.pk}/change/", data, follow=True)

    assert "Feature optillm_cot saved." in text(response)
    feature.refresh_from_db()
    assert (feature.display_name, feature.description, feature.is_active) == (
        "OptiLLM reasoning",
        "chain of thought",
        False,
    )
    update = CatalogAudit.objects.get(action="update", object_key="optillm_cot")
    assert update.actor == admin_user
    assert update.before == {"display_name": "OptiLLM chain of thought", "description": "", "is_active": True}
    line = UsageLine(model="gpt-4o-mini", occurred_at=timezone.now(), input_tokens=10, output_tokens=10,
                     features=(FeatureUse(key="optillm_cot"),))  # fmt: skip
    with pytest.raises(UnknownFeature):
        rate_usage(line, catalog_snapshot(), tier="starter")


def test_an_inactive_plan_takes_no_new_accounts_and_keeps_its_own(admin_client, seeded_catalog):
    from billing.services.periods import plan_by_code
    from pricing.errors import UnknownPlan
    from tests.factories import AccountFactory

    on_it = AccountFactory.create(plan="starter")
    plan = Plan.objects.get(code="starter")
    data = {"name": "Starter (legacy)", "is_public": "", "stripe_price_monthly": "price_legacy"}

    response = admin_client.post(f"/admin/pricing/plan/{plan.pk}/change/", data, follow=True)

    assert "Plan starter saved." in text(response)
    plan.refresh_from_db()
    assert (plan.name, plan.is_public, plan.is_active, plan.stripe_price_monthly) == (
        "Starter (legacy)", False, False, "price_legacy"
    )  # fmt: skip
    with pytest.raises(UnknownPlan):
        plan_by_code("starter")
    on_it.subscription.refresh_from_db()
    assert on_it.subscription.plan == plan


def test_a_blank_plan_name_is_refused_and_nothing_changes(admin_client, seeded_catalog):
    plan = Plan.objects.get(code="starter")
    before = counts()
    response = admin_client.post(f"/admin/pricing/plan/{plan.pk}/change/", {"name": " ", "is_active": "on"})
    assert "required" in errors(response) or "This field is required" in errors(response)
    assert counts() == before
    plan.refresh_from_db()
    assert plan.is_active and plan.name != " "


# --- price dimensions in the console (docs/pricing-console.md) -------------------------------------------------


def test_a_price_version_edits_the_dimensions_of_the_models_mode_and_keeps_the_others(
    admin_client, seeded_catalog, django_capture_on_commit_callbacks
):
    from pricing.services import model_create, model_price_set

    whisper = model_create(model_id="whisper-1", display_name="Whisper", provider="openai", mode="audio_transcription")
    # a request price set before (not a dimension an audio transcription model shows): kept by the console
    model_price_set(model=whisper, price_per_second="0.0001", price_per_request="0.5")
    page = admin_client.get(f"/admin/pricing/aimodel/{whisper.pk}/price/").content.decode()
    assert 'name="price_per_second" value="0.0001"' in page
    assert 'name="cache_write_per_million"' not in page  # a chat dimension: not shown for audio transcription
    assert 'name="price_per_request"' not in page

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/pricing/aimodel/{whisper.pk}/price/",
            price_data(input_per_million="0", output_per_million="0", cached_input_per_million="",
                       price_per_second="0.0002", service_tiers='{"batch": {"price_per_second": "0.0001"}}'),
            follow=True,
        )  # fmt: skip
    assert "New price version for whisper-1" in text(response), errors(response)
    new = whisper.prices.latest("effective_from")
    assert (new.price_per_second, new.price_per_request) == (Decimal("0.0002"), Decimal("0.5"))
    assert new.service_tiers == {"batch": {"price_per_second": "0.0001"}}
    assert "price_per_second: 0.0002" in text(admin_client.get(f"/admin/pricing/aimodel/{whisper.pk}/change/"))


def test_a_bad_tier_in_the_console_is_a_field_error_and_nothing_is_written(admin_client, seeded_catalog):
    before = counts()
    response = admin_client.post(
        f"/admin/pricing/aimodel/{model().pk}/price/",
        price_data(tiers='[{"above_input_tokens": "lots", "input_per_million": "1"}]'),
    )
    assert response.status_code == 200
    assert "must be a whole number" in text(response)
    assert counts() == before
