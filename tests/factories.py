"""factory_boy factories. Accounts are made through the service, so they have a wallet, subscription and key."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from billing.models import Account
from billing.services.accounts import account_create


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    password = factory.django.Password("pw-for-tests-only")


class AccountFactory(factory.django.DjangoModelFactory[Account]):
    """`AccountFactory(plan="starter", credits="1000")`; the clear API key is on `account.api_key`."""

    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Shop {n}")

    @classmethod
    def _create(cls, model_class: type[Account], *args: Any, **kwargs: Any) -> Account:
        account, api_key = account_create(
            name=kwargs.pop("name"),
            plan_code=kwargs.pop("plan", "jive"),
            credits=kwargs.pop("credits", None),
            owner_email=kwargs.pop("owner_email", None),
            owner_password=kwargs.pop("owner_password", None),
            display_currency=kwargs.pop("display_currency", "USD"),
            as_of=kwargs.pop("as_of", None),
        )
        for field, value in kwargs.items():
            setattr(account, field, value)
        if kwargs:
            account.save()
        account.api_key = api_key  # type: ignore[attr-defined]
        return account
