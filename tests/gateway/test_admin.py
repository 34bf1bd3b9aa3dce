"""Upstreams set by staff in the console: the provider key is stored encrypted, never shown again, kept when an
edit leaves it empty, and is the key the gateway sends upstream."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from django.test import Client
from django.urls import reverse

from gateway.models import Upstream
from gateway.upstream_keys import upstream_key_decrypt
from tests.factories import AccountFactory
from tests.gateway.fake_upstream import FakeUpstream

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-proj-console-set-key-4242"


@pytest.fixture
def staff(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _form(fake: FakeUpstream, **changes: str) -> dict[str, str]:
    return {"name": "OpenAI", "kind": "openai", "base_url": f"{fake.url}/v1", "api_key": KEY,  # type: ignore[attr-defined]
            "model_patterns": "gpt-4o*", "priority": "10", "timeout_seconds": "60", "connect_retries": "1",
            "is_active": "on", **changes}  # fmt: skip


def test_a_key_set_in_the_console_is_stored_encrypted_and_never_shown(staff: Client, fake: FakeUpstream, catalog: None,
                                                                       gateway_url: str) -> None:  # fmt: skip
    added = staff.post(reverse("admin:gateway_upstream_add"), _form(fake))
    assert added.status_code == 302, added.content

    upstream = Upstream.objects.get()
    assert KEY not in upstream.api_key_encrypted and upstream_key_decrypt(upstream.api_key_encrypted) == KEY
    change_url = reverse("admin:gateway_upstream_change", args=[upstream.pk])
    page = staff.get(change_url).content.decode()
    assert KEY not in page and upstream.api_key_encrypted not in page
    assert KEY not in staff.get(reverse("admin:gateway_upstream_changelist")).content.decode()

    # an edit that leaves the key empty keeps it
    assert staff.post(change_url, _form(fake, api_key="", priority="5")).status_code == 302
    upstream.refresh_from_db()
    assert (upstream.priority, upstream_key_decrypt(upstream.api_key_encrypted)) == (5, KEY)

    account: Any = AccountFactory.create(plan="jive", credits="100")
    with openai.OpenAI(api_key=account.api_key, base_url=f"{gateway_url}/gateway/openai/v1", max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert fake.received[0].headers["authorization"] == f"Bearer {KEY}"


def test_a_new_upstream_needs_a_key(staff: Client, fake: FakeUpstream) -> None:
    refused = staff.post(reverse("admin:gateway_upstream_add"), _form(fake, api_key=""))
    assert refused.status_code == 200 and b"needs its provider API key" in refused.content
    assert not Upstream.objects.exists()
