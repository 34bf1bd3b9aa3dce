"""Forms of the billing console's own pages. They collect input; the billing services decide and write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password

from billing.models import Membership
from pricing.models import Plan
from pricing.money import CREDITS, CURRENCIES


def _active_plans() -> Any:
    return Plan.objects.filter(is_active=True).order_by("family", "code")


class AccountCreateForm(forms.Form):
    """The console's "add account": everything `account_create` takes."""

    name = forms.CharField(max_length=200)
    plan = forms.ChoiceField(help_text="The plan in force from today.")
    owner_email = forms.EmailField(
        required=False, help_text="The owner signs in to the dashboard with this email as username; created if new."
    )
    owner_password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Only used when the owner is a new user.",
    )
    credits = forms.DecimalField(
        required=False, label="Opening credits", help_text="Empty: none.", max_digits=28, decimal_places=12
    )
    display_currency = forms.ChoiceField(
        initial="USD", choices=[(code, code) for code in CURRENCIES if code != CREDITS]
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plan_field = self.fields["plan"]
        assert isinstance(plan_field, forms.ChoiceField)
        plan_field.choices = [("", "---------")] + [
            (plan.code, f"{plan.code} ({plan.name})") for plan in _active_plans()
        ]

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean() or {}
        password = cleaned.get("owner_password")
        if password:
            if not cleaned.get("owner_email"):
                self.add_error("owner_password", "A password needs an owner email.")
            else:
                try:
                    validate_password(password)
                except forms.ValidationError as exc:
                    self.add_error("owner_password", exc)
        return cleaned


class CreditAdjustmentForm(forms.Form):
    credits = forms.DecimalField(
        help_text="Signed: 250 adds credits, -250 takes them. Applied to each account listed.",
        max_digits=28,
        decimal_places=12,
    )
    reason = forms.CharField(max_length=500, help_text="Kept on the ledger entry and in the audit log.")


class PlanChangeForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), to_field_name="code")
    apply_now = forms.BooleanField(
        required=False,
        help_text="Unticked: the new plan starts with the next period. Ticked: the open period switches to the "
        "new plan's terms now and keeps its counters.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plan_field = self.fields["plan"]
        assert isinstance(plan_field, forms.ModelChoiceField)
        plan_field.queryset = _active_plans()


class MemberAddForm(forms.Form):
    user = forms.CharField(max_length=254, label="User", help_text="Username or email of an existing user.")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.VIEWER)

    def clean_user(self) -> AbstractBaseUser:
        wanted = self.cleaned_data["user"].strip()
        users = get_user_model().objects
        user = users.filter(username=wanted).first()
        if user is not None:
            return user
        by_email = list(users.filter(email__iexact=wanted)[:2])
        if len(by_email) > 1:
            raise forms.ValidationError("Several users have this email; enter the username.")
        if not by_email:
            raise forms.ValidationError(f"No user with the username or email {wanted!r}.")
        return by_email[0]


class ApiKeyIssueForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What the key is for, e.g. production.")


class ConfirmForm(forms.Form):
    """No input: the page itself asks for confirmation."""
