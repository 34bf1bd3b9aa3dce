"""Each gateway process keeps its upstreams (and their decrypted keys) for a short while: a change saved here
takes effect on the next call, one made by another process (the console's web server, another gateway worker)
within UPSTREAM_CACHE_SECONDS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import openai
import pytest
import time_machine
from django.utils import timezone

from gateway.models import Upstream
from gateway.routing import UPSTREAM_CACHE_SECONDS
from gateway.services import upstream_save
from tests.gateway.conftest import OPENAI_UPSTREAM_KEY
from tests.gateway.fake_upstream import FakeUpstream

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES: Any = [{"role": "user", "content": "hi"}]


def _call(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)


def test_a_new_provider_key_and_a_deactivation_take_effect_on_the_next_call(
    openai_client: openai.OpenAI, fake: FakeUpstream, upstreams: dict[str, Upstream]
) -> None:
    _call(openai_client)
    upstream_save(upstream=upstreams["openai"], api_key="sk-rotated-provider-key-9876")
    _call(openai_client)
    assert [r.headers["authorization"] for r in fake.received] == [
        f"Bearer {OPENAI_UPSTREAM_KEY}",
        "Bearer sk-rotated-provider-key-9876",
    ]

    upstreams["openai"].is_active = False
    upstream_save(upstream=upstreams["openai"], api_key=None)
    with pytest.raises(openai.NotFoundError) as refused:
        _call(openai_client)
    assert refused.value.code == "no_upstream" and len(fake.received) == 2

    upstreams["openai"].delete()
    upstream_save(upstream=Upstream(name="again", kind="openai", base_url=upstreams["openai"].base_url,
                                    connect_retries=0), api_key="sk-again-provider-key-5555")  # fmt: skip
    _call(openai_client)
    assert fake.received[-1].headers["authorization"] == "Bearer sk-again-provider-key-5555"


def test_a_change_another_process_made_is_read_within_the_cache_time(
    openai_client: openai.OpenAI, fake: FakeUpstream, upstreams: dict[str, Upstream]
) -> None:
    _call(openai_client)
    # as the console's process would change it: no signal reaches this one
    Upstream.objects.filter(pk=upstreams["openai"].pk).update(is_active=False)
    _call(openai_client)  # this process still has the upstream it read
    assert len(fake.received) == 2

    later = timezone.now() + timedelta(seconds=UPSTREAM_CACHE_SECONDS + 1)
    with time_machine.travel(later), pytest.raises(openai.NotFoundError) as refused:
        _call(openai_client)
    assert refused.value.code == "no_upstream" and len(fake.received) == 2
