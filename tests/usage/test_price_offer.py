"""The offer on the pricing side (issue 21): an operator adds a model in the pricing console while events refused
for it wait; the model's page after saving says how many wait and since when, and its button starts the price at
the oldest of them (a back-dated, audited version with its reason), after which the replay records them."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from billing.models import Wallet
from pricing.models import AIModel, CatalogAudit, ModelPrice
from tests.factories import UserFactory
from usage.models import RejectedEvent, UsageEvent

pytestmark = pytest.mark.usefixtures("catalog")

NEW_MODEL = "acme-large-2"
ADD_URL = "/admin/pricing/aimodel/add/"
REPLAY_URL = "/admin/usage/rejectedevent/"


def text(response) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def start_url(model: AIModel) -> str:
    return f"/admin/usage/rejectedevent/start-price/{model.pk}/"


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


@pytest.fixture
def oldest(jive_account, api_client_for):
    """Two events on a model the catalog lacks yet (3 days and 2 hours ago): both refused and kept for replay."""
    now = timezone.now()
    events = [
        {"request_id": f"new-{n}", "model": NEW_MODEL, "input_tokens": 10_000, "output_tokens": 0,
         "occurred_at": (now - ago).isoformat()}
        for n, ago in enumerate([timedelta(days=3), timedelta(hours=2)])
    ]  # fmt: skip
    body = api_client_for(jive_account).post("/api/usage/events", {"events": events}, format="json").json()
    assert body["rejected"] == 2
    return now - timedelta(days=3)


def add_model(client: Client, django_capture_on_commit_callbacks):
    """Post the add form, then open the page it leads to once the write has committed (and the catalog refreshed)."""
    data = {"model_id": NEW_MODEL, "display_name": "Acme Large 2", "provider": "acme", "is_active": "on",
            "input_per_million": "2", "cached_input_per_million": "", "output_per_million": "4", "image_price": "0",
            "effective_from_0": "", "effective_from_1": "",
            "reason": "launch price"}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        saved = client.post(ADD_URL, data)
    return client.get(saved["Location"])


def test_the_page_after_adding_the_model_offers_to_start_its_price_at_the_oldest_waiting_event(
    staff, oldest, django_capture_on_commit_callbacks
):
    page = text(add_model(staff, django_capture_on_commit_callbacks))

    assert f"Model {NEW_MODEL} added with its first price." in page
    since = f"{oldest:%Y-%m-%d %H:%M} UTC"
    assert f"2 rejected events wait for this model since {since}" in page
    assert f"Start this price at {since}?" in page
    model = AIModel.objects.get(model_id=NEW_MODEL)
    html = staff.get(f"/admin/pricing/aimodel/{model.pk}/change/").content.decode()
    assert f'action="{start_url(model)}"' in html
    assert 'href="/admin/usage/rejectedevent/?status__exact=pending"' in html


def test_pressing_it_backdates_the_price_with_its_reason_and_the_replay_records_the_events(
    staff, oldest, jive_account, django_capture_on_commit_callbacks
):
    add_model(staff, django_capture_on_commit_callbacks)
    model = AIModel.objects.get(model_id=NEW_MODEL)
    before = Wallet.objects.get(account=jive_account).balance

    with django_capture_on_commit_callbacks(execute=True):
        answer = staff.post(start_url(model), follow=True)

    assert answer.redirect_chain[-1][0] == "/admin/usage/rejectedevent/?status__exact=pending"
    assert f"The price of {NEW_MODEL} now starts at {oldest:%Y-%m-%d %H:%M} UTC" in text(answer)
    version = ModelPrice.objects.get(model=model, backdated=True)
    assert abs(version.effective_from - oldest) < timedelta(seconds=1)
    assert "back-dated to the oldest of 2 refused events" in version.reason
    assert (version.input_per_million, version.output_per_million) == (Decimal(2), Decimal(4))
    assert CatalogAudit.objects.filter(
        action="price_version", object_key=NEW_MODEL, reason=version.reason, actor__username="ops"
    ).exists()
    # the offer is gone, and the replay now records both events and charges the account
    assert "wait for this model" not in text(staff.get(f"/admin/pricing/aimodel/{model.pk}/change/"))
    ids = [str(pk) for pk in RejectedEvent.objects.values_list("pk", flat=True)]
    with django_capture_on_commit_callbacks(execute=True):
        replay = staff.post(REPLAY_URL, {"action": "replay_selected", "_selected_action": ids}, follow=True)
    assert "Replayed 2: 2 recorded" in text(replay)
    assert UsageEvent.objects.filter(model_id=NEW_MODEL).count() == 2
    assert Wallet.objects.get(account=jive_account).balance < before


def test_pressing_it_twice_adds_one_version(staff, oldest, django_capture_on_commit_callbacks):
    add_model(staff, django_capture_on_commit_callbacks)
    model = AIModel.objects.get(model_id=NEW_MODEL)
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(start_url(model))
        again = staff.post(start_url(model), follow=True)
    assert "Nothing to do: no refused events wait for acme-large-2 before its price." in text(again)
    assert ModelPrice.objects.filter(model=model).count() == 2


def test_a_new_price_version_leads_to_the_offer_too(staff, oldest, django_capture_on_commit_callbacks):
    add_model(staff, django_capture_on_commit_callbacks)
    model = AIModel.objects.get(model_id=NEW_MODEL)
    data = {"input_per_million": "3", "output_per_million": "5", "image_price": "0", "effective_from_0": "", "effective_from_1": "",
            "reason": "provider raised it"}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        saved = staff.post(f"/admin/pricing/aimodel/{model.pk}/price/", data)
    page = text(staff.get(saved["Location"]))
    assert "New price version for" in page
    assert "2 rejected events wait for this model since" in page


def test_no_waiting_events_no_offer(staff, django_capture_on_commit_callbacks):
    page = text(add_model(staff, django_capture_on_commit_callbacks))
    assert f"Model {NEW_MODEL} added with its first price." in page
    assert "rejected events wait" not in page
    gpt = AIModel.objects.get(model_id="gpt-4o-mini")
    assert "rejected events wait" not in text(staff.get(f"/admin/pricing/aimodel/{gpt.pk}/change/"))


def test_non_staff_and_staff_without_the_permissions_are_refused(
    staff, oldest, jive_account, django_capture_on_commit_callbacks
):
    add_model(staff, django_capture_on_commit_callbacks)
    model = AIModel.objects.get(model_id=NEW_MODEL)
    outsider = Client()
    outsider.force_login(UserFactory.create(is_staff=False))
    assert outsider.post(start_url(model)).status_code == 302  # to the admin login
    pricing_only = UserFactory.create(is_staff=True)
    pricing_only.user_permissions.add(*Permission.objects.filter(content_type__app_label="pricing"))
    clerk = Client()
    clerk.force_login(pricing_only)
    assert clerk.post(start_url(model)).status_code == 403
    # no offer on their page either: the button would be refused
    assert "rejected events wait" not in text(clerk.get(f"/admin/pricing/aimodel/{model.pk}/change/"))
    assert not ModelPrice.objects.filter(model=model, backdated=True).exists()


def test_bad_requests_get_a_4xx(staff, oldest, django_capture_on_commit_callbacks):
    add_model(staff, django_capture_on_commit_callbacks)
    model = AIModel.objects.get(model_id=NEW_MODEL)
    assert staff.get(start_url(model)).status_code == 405
    assert staff.post("/admin/usage/rejectedevent/start-price/999999/").status_code == 404
    assert not ModelPrice.objects.filter(model=model, backdated=True).exists()
