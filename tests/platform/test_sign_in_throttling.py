"""Password guessing: wrong passwords pause sign-ins (django-axes) on the dashboard, the admin and HTTP Basic."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
RIGHT, WRONG = "the-right-password-42", "a-wrong-guess"


@pytest.fixture
def people() -> tuple[User, User]:
    target = User.objects.create_user("target@shop.test", password=RIGHT, is_staff=True, is_superuser=True)
    bystander = User.objects.create_user("other@shop.test", password=RIGHT, is_staff=True, is_superuser=True)
    return target, bystander


def _form(path: str, username: str, password: str, client: Client | None = None):
    return (client or Client()).post(path, {"username": username, "password": password})


def _basic(username: str, password: str):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return Client().get("/api/tokens/models", HTTP_AUTHORIZATION=f"Basic {token}")


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_wrong_passwords_pause_a_form_sign_in_even_with_the_right_one(people, path, settings):
    target, bystander = people
    with time_machine.travel(NOW, tick=False) as clock:
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            assert _form(path, target.username, WRONG).status_code == 200  # the form again, with its error
        locked = _form(path, target.username, WRONG)
        assert locked.status_code == 429
        assert locked["Retry-After"] == "900"
        assert "Too many failed sign-ins" in locked.content.decode()

        right = _form(path, target.username, RIGHT)
        assert right.status_code == 429
        assert "_auth_user_id" not in right.client.session
        assert _form(path, bystander.username, RIGHT).status_code == 302  # other people sign in as usual

        clock.shift(timedelta(minutes=14))
        assert _form(path, target.username, RIGHT).status_code == 429  # tries do not extend it, nor end it early
        clock.shift(timedelta(minutes=1, seconds=1))
        assert _form(path, target.username, RIGHT).status_code == 302


def test_wrong_basic_passwords_pause_the_api_with_a_json_429(people, settings):
    target, bystander = people
    with time_machine.travel(NOW, tick=False) as clock:
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            refused = _basic(target.username, WRONG)
            assert refused.status_code == 401
            assert refused.json()["error"] == "authentication_failed"
        _basic(target.username, WRONG)
        locked = _basic(target.username, RIGHT)
        assert locked.status_code == 429
        assert locked["Content-Type"] == "application/json"
        body = locked.json()
        assert body["error"] == "sign_in_locked" and "15 minutes" in body["message"]
        assert int(locked["Retry-After"]) > 0
        assert _basic(bystander.username, RIGHT).status_code == 200

        clock.shift(timedelta(minutes=15, seconds=1))
        assert _basic(target.username, RIGHT).status_code == 200


def test_a_success_clears_the_failures(people, settings):
    target, _ = people
    almost = settings.AXES_FAILURE_LIMIT - 1
    with time_machine.travel(NOW, tick=False):
        for _ in range(2):
            for _ in range(almost):
                assert _basic(target.username, WRONG).status_code == 401
            assert _basic(target.username, RIGHT).status_code == 200
            # the count is one per user and address, whichever way in: without the reset this would lock
            for _ in range(almost):
                assert _form("/accounts/login/", target.username, WRONG).status_code == 200
            assert _form("/accounts/login/", target.username, RIGHT).status_code == 302


def test_failures_are_counted_across_the_ways_in(people, settings):
    target, _ = people
    with time_machine.travel(NOW, tick=False):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            _basic(target.username, WRONG)
        assert _form("/admin/login/", target.username, RIGHT).status_code == 429


def _form_from(path: str, username: str, password: str, *, forwarded_for: str, proxy: str = "10.0.0.2"):
    return Client().post(
        path, {"username": username, "password": password}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=forwarded_for
    )


def test_behind_a_proxy_a_guesser_pauses_only_their_own_address(people, settings):
    """One load balancer in front: every request's socket address is the proxy's. Keyed on REMOTE_ADDR, a guesser
    would lock the target out for everyone; keyed on the address the proxy saw, only the guesser is paused."""
    settings.TRUSTED_PROXY_COUNT = 1
    target, _ = people
    with time_machine.travel(NOW, tick=False):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            guess = _form_from("/accounts/login/", target.username, WRONG, forwarded_for="198.51.100.7")
        assert guess.status_code == 429
        owner = _form_from("/accounts/login/", target.username, RIGHT, forwarded_for="203.0.113.9")
        assert owner.status_code == 302


def test_a_forged_forwarded_for_does_not_escape_the_pause(people, settings):
    """The client writes what it likes to the left of the header; only the entry our proxy appended counts."""
    settings.TRUSTED_PROXY_COUNT = 1
    target, _ = people
    with time_machine.travel(NOW, tick=False):
        for attempt in range(settings.AXES_FAILURE_LIMIT + 2):
            forged = f"192.0.2.{attempt}, 198.51.100.7"  # a new forged entry each time, the same real one
            guess = _form_from("/accounts/login/", target.username, WRONG, forwarded_for=forged)
        assert guess.status_code == 429


def test_without_a_trusted_proxy_the_header_is_ignored(people, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    target, _ = people
    with time_machine.travel(NOW, tick=False):
        for attempt in range(settings.AXES_FAILURE_LIMIT):
            guess = _form_from(
                "/accounts/login/", target.username, WRONG, forwarded_for=f"192.0.2.{attempt}", proxy="198.51.100.7"
            )
        assert guess.status_code == 429  # a new X-Forwarded-For each time changed nothing
