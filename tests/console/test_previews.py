"""Change previews: last period's usage re-rated with a proposed model price, plan terms or feature cost, per
customer, against figures worked out by hand; and the same preview in the catalog forms, with nothing saved."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from billing.models import Account
from console import previews
from pricing import services as catalog
from pricing.models import AIModel, FeatureCost, ModelPrice, Plan, PlanTerms
from pricing.selectors import catalog_cache_invalidate, catalog_snapshot
from tests.console.conftest import MODEL, NOW, OCTOBER_RECORDED, SINCE
from tests.console.html import body_rows, form_values, page
from usage.services.recording import usage_record_batch

pytestmark = pytest.mark.django_db

OCTOBER = previews.Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
D = Decimal


def _price(snapshot, **changes: Decimal):
    return dataclasses.replace(snapshot.models[MODEL].price_at(NOW), **changes)


def _by_name(preview: previews.ChangePreview) -> dict[str, previews.CustomerImpact]:
    return {c.name: c for c in preview.customers}


def test_last_period_is_the_previous_calendar_month():
    assert previews.last_period(now=NOW) == OCTOBER
    january = previews.last_period(now=datetime(2027, 1, 15, 8, tzinfo=UTC))
    assert (january.start, january.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_the_same_price_changes_nothing(customers):
    """Re-rating with the price in force gives back exactly what was recorded: the preview's baseline is sound."""
    snapshot = catalog_snapshot()
    preview = previews.model_price_preview(snapshot=snapshot, model_id=MODEL, price=_price(snapshot), window=OCTOBER)
    assert preview.events == 3
    assert preview.affected == 0
    assert preview.before == preview.after


def test_a_doubled_model_price(customers):
    """October: Alpha 2 x (1M in, 500k out) at markup 1.5, Beta 1 x the same at 0.8. At $2 in / $4 out per 1M
    each event costs 2 + 2 = $4 instead of 1 + 1 = $2."""
    snapshot = catalog_snapshot()
    price = _price(snapshot, input_per_million=D(2), cached_input_per_million=D(2), output_per_million=D(4))
    preview = previews.model_price_preview(snapshot=snapshot, model_id=MODEL, price=price, window=OCTOBER)
    alpha, beta = _by_name(preview)["Alpha"], _by_name(preview)["Beta"]
    assert (alpha.before.cost, alpha.after.cost) == (D(4), D(8))
    assert (alpha.before.revenue, alpha.after.revenue) == (D(6), D(12))
    assert (alpha.before.margin, alpha.after.margin) == (D(2), D(4))
    assert (beta.before.revenue, beta.after.revenue) == (D("1.6"), D("3.2"))
    assert (beta.before.margin, beta.after.margin) == (D("-0.4"), D("-0.8"))
    assert preview.affected == 2 and preview.events == 3
    assert (preview.before.revenue, preview.after.revenue) == (D("7.6"), D("15.2"))
    assert not preview.unrated


def test_new_plan_terms(customers):
    """The loss-making plan at markup 1.2 with a $10 fee: Beta's October event charges 2 x 1.2 = $2.40 (was $1.60),
    its margin turns from -$0.40 to $0.40, its plan charge from $0 to $10. Alpha is on another plan."""
    snapshot = catalog_snapshot()
    terms = dataclasses.replace(snapshot.plans["loss"].terms_at(NOW), markup=D("1.2"), fee=D(10))
    preview = previews.plan_terms_preview(snapshot=snapshot, plan_code="loss", terms=terms, window=OCTOBER)
    assert list(_by_name(preview)) == ["Beta"]
    beta = _by_name(preview)["Beta"]
    assert (beta.before.revenue, beta.after.revenue) == (D("1.6"), D("2.4"))
    assert (beta.before.margin, beta.after.margin) == (D("-0.4"), D("0.4"))
    assert (beta.plan_charge_before, beta.plan_charge_after) == (D(0), D(10))
    assert preview.affected == 1


def test_a_feature_cost(customers):
    """A per-use feature at $0.50 on one October event of Alpha (1M in, 0 out): cost 1 + 0.5 = $1.50, charge
    x 1.5 = $2.25. At $1 per use: cost $2, charge $3. Events without the feature are not in the preview."""
    feature = catalog.feature_create(feature_key="console-search", display_name="Search")
    catalog.feature_cost_set(feature=feature, cost_type="per_use", cost_usd="0.5",
                             effective_from=SINCE, reason="test")  # fmt: skip
    with time_machine.travel(OCTOBER_RECORDED, tick=False):
        catalog_cache_invalidate()
        alpha = Account.objects.get(name="Alpha")
        result = usage_record_batch(account=alpha, raw_events=[{
            "request_id": "with-search", "model": MODEL, "input_tokens": 1_000_000, "output_tokens": 0,
            "features": ["console-search"], "occurred_at": "2026-10-15T10:00:00+00:00"}])  # fmt: skip
        assert result.count("recorded") == 1
    catalog_cache_invalidate()
    snapshot = catalog_snapshot()
    cost = dataclasses.replace(snapshot.features["console-search"].cost_at(NOW), cost_usd=D(1))
    preview = previews.feature_cost_preview(snapshot=snapshot, feature_key="console-search", cost=cost, window=OCTOBER)
    assert preview.events == 1
    impact = _by_name(preview)["Alpha"]
    assert (impact.before.cost, impact.after.cost) == (D("1.5"), D(2))
    assert (impact.before.revenue, impact.after.revenue) == (D("2.25"), D(3))


def test_a_price_that_cannot_rate_the_usage_is_reported(customers):
    snapshot = catalog_snapshot()
    entry = snapshot.models[MODEL]
    inactive = dataclasses.replace(
        snapshot, models={**snapshot.models, MODEL: dataclasses.replace(entry, is_active=False)}
    )
    preview = previews.model_price_preview(snapshot=inactive, model_id=MODEL, price=_price(snapshot), window=OCTOBER)
    assert len(preview.unrated) == 3
    assert preview.before == preview.after  # shown unchanged, and listed


# --- in the catalog forms ----------------------------------------------------------------------------------------


def _preview_rows(html: bytes) -> dict[str, list[str]]:
    return {row.one("th").text(): [td.text() for td in row.all("td")] for row in body_rows(html, "preview")}


def test_model_price_form_previews_without_saving(customers, staff_client: Client):
    model = AIModel.objects.get(model_id=MODEL)
    url = reverse("admin:pricing_aimodel_price", args=[model.pk])
    form = staff_client.get(url)
    assert b"Preview the effect on last period" in form.content
    values = {**form_values(form.content), "input_per_million": "2", "output_per_million": "4", "_preview": "1"}
    versions = ModelPrice.objects.count()
    answer = staff_client.post(url, values)
    assert answer.status_code == 200
    assert ModelPrice.objects.count() == versions  # nothing saved
    assert "3 events, 2 customers affected" in page(answer.content).one(data_testid="preview-summary").text()
    rows = _preview_rows(answer.content)
    # charge before/after, cost before/after, margin before/after
    assert rows["Alpha"] == ["$6.00", "$12.00", "$4.00", "$8.00", "$2.00", "$4.00"]
    assert rows["Beta"] == ["$1.60", "$3.20", "$2.00", "$4.00", "-$0.40", "-$0.80"]
    # the values stay in the form: saving now adds the version
    del values["_preview"]
    saved = staff_client.post(url, {**values, "_save": "Save"})
    assert saved.status_code == 302
    assert ModelPrice.objects.count() == versions + 1


def test_plan_terms_form_previews_without_saving(customers, staff_client: Client):
    plan = Plan.objects.get(code="loss")
    url = reverse("admin:pricing_plan_terms", args=[plan.pk])
    values = {**form_values(staff_client.get(url).content), "markup": "1.2", "fee": "10", "_preview": "1"}
    versions = PlanTerms.objects.count()
    answer = staff_client.post(url, values)
    assert answer.status_code == 200 and PlanTerms.objects.count() == versions
    assert _preview_rows(answer.content)["Beta"] == [
        "$1.60",
        "$2.40",
        "$2.00",
        "$2.00",
        "-$0.40",
        "$0.40",
        "$0.00",
        "$10.00",
    ]


def test_feature_cost_form_offers_the_preview(customers, staff_client: Client):
    feature = catalog.feature_create(feature_key="console-search", display_name="Search")
    catalog.feature_cost_set(feature=feature, cost_type="per_use", cost_usd="0.5", effective_from=SINCE, reason="test")
    url = reverse("admin:pricing_feature_cost", args=[feature.pk])
    values = {**form_values(staff_client.get(url).content), "cost_usd": "1", "_preview": "1"}
    versions = FeatureCost.objects.count()
    answer = staff_client.post(url, values)
    assert answer.status_code == 200 and FeatureCost.objects.count() == versions
    assert "0 events, 0 customers affected" in page(answer.content).one(data_testid="preview-summary").text()


def test_a_bad_value_is_a_form_error_not_a_preview(customers, staff_client: Client):
    model = AIModel.objects.get(model_id=MODEL)
    url = reverse("admin:pricing_aimodel_price", args=[model.pk])
    values = {**form_values(staff_client.get(url).content), "input_per_million": "-5", "_preview": "1"}
    answer = staff_client.post(url, values)
    assert answer.status_code == 200
    assert b'data-testid="preview"' not in answer.content
    assert b"errornote" in answer.content or b"errorlist" in answer.content
