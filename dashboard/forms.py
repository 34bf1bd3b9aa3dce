"""The dashboard's forms. They check shapes (a number, a URL, a date); the rules (limits, roles of money) stay in
the services, whose errors the views show next to the form."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import forms

from pricing.money import CREDITS, CURRENCIES

MAX_RANGE_DAYS = 366
NO_KEY = "(none)"  # the API key filter's value for events recorded without an account key
# the days a filter may name: usage exists from 1970 on, and the day after the last must still be a date
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)


class AccountSwitchForm(forms.Form):
    account = forms.IntegerField(label="Account", min_value=1)


class TopUpForm(forms.Form):
    amount_usd = forms.DecimalField(label="Amount in USD", max_digits=12, decimal_places=2, min_value=Decimal("0.01"))
    save_payment_method = forms.BooleanField(label="Save the card for auto-recharge", required=False)


class AutoRechargeForm(forms.Form):
    enabled = forms.BooleanField(label="Recharge automatically", required=False)
    threshold_credits = forms.DecimalField(
        label="When available credits fall below", max_digits=28, decimal_places=0, min_value=Decimal(0)
    )
    amount_usd = forms.DecimalField(label="Charge (USD)", max_digits=12, decimal_places=2, min_value=Decimal(0))


class PlanChangeForm(forms.Form):
    plan = forms.CharField(label="Plan", max_length=50)
    interval = forms.ChoiceField(label="Billed", choices=[("month", "monthly"), ("year", "yearly")], initial="month")


class PlanCancelForm(forms.Form):
    at_period_end = forms.TypedChoiceField(
        label="When",
        choices=[("1", "at the end of the current period"), ("0", "now")],
        coerce=lambda value: value == "1",
        initial="1",
    )


class ApiKeyForm(forms.Form):
    name = forms.CharField(label="Key name", max_length=100, required=False, help_text="e.g. production, staging")


class AlertSettingsForm(forms.Form):
    low_balance_threshold = forms.DecimalField(
        label="Warn when available credits fall below",
        max_digits=28,
        decimal_places=0,
        min_value=Decimal(0),
        help_text="0 turns the warning off",
    )
    alert_webhook_url = forms.URLField(
        label="Webhook URL",
        required=False,
        assume_scheme="https",
        help_text="alerts are POSTed here, signed; https, to a public address",
    )
    display_currency = forms.ChoiceField(
        label="Display currency", choices=[(code, code) for code in CURRENCIES if code != CREDITS]
    )
    rotate_webhook_secret = forms.BooleanField(label="Make a new signing secret", required=False)


class AlertThresholdForm(forms.Form):
    kind = forms.ChoiceField(
        label="Warn when",
        choices=[("balance", "available credits are below"), ("spend", "this period's spend reaches (USD)")],
    )
    amount = forms.DecimalField(label="Amount", max_digits=20, decimal_places=2, min_value=Decimal("0.01"))


class UsageFilterForm(forms.Form):
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    model = forms.ChoiceField(label="Model", required=False)
    operation = forms.ChoiceField(label="Operation", required=False)
    user = forms.CharField(
        label="End user", required=False, max_length=200, help_text='the `user` your backend sends; "(none)" for none'
    )
    api_key = forms.ChoiceField(label="API key", required=False)

    def __init__(
        self, *args: Any, models: list[str], operations: list[str], api_keys: list[tuple[str, str]], **kwargs: Any
    ) -> None:
        """`api_keys`: (prefix, label) of the account's keys; a value not among them is a form error, never a 500."""
        super().__init__(*args, **kwargs)
        model_field = self.fields["model"]
        operation_field = self.fields["operation"]
        key_field = self.fields["api_key"]
        assert isinstance(model_field, forms.ChoiceField) and isinstance(operation_field, forms.ChoiceField)
        assert isinstance(key_field, forms.ChoiceField)
        model_field.choices = [("", "All models"), *((m, m) for m in models)]
        operation_field.choices = [("", "All operations"), *((o, o) for o in operations)]
        key_field.choices = [("", "All keys"), *api_keys, (NO_KEY, "(no key: server key or deleted)")]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("start", "end"):
            day = data.get(name)
            if day is not None and not FIRST_DAY <= day <= LAST_DAY:
                self.add_error(name, f"must be between {FIRST_DAY:%Y-%m-%d} and {LAST_DAY:%Y-%m-%d}")
                data.pop(name, None)
        start: date | None = data.get("start")
        end: date | None = data.get("end")
        if start and end:
            if end < start:
                self.add_error("end", "must be on or after From")
            elif end - start > timedelta(days=MAX_RANGE_DAYS):
                self.add_error("end", f"a range covers at most {MAX_RANGE_DAYS} days")
        return data
