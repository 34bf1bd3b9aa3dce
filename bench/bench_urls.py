"""The app's URLs plus `bench/ping`, the authorize benchmark's baseline. Only bench_settings routes here."""

from __future__ import annotations

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import AccountApi
from billing.authentication import request_account
from billing.models import Wallet
from config.urls import urlpatterns as app_urlpatterns


class PingApi(AccountApi):
    """A bare DRF endpoint: the same API-key authentication as the account API, then one row read."""

    def get(self, request: Request) -> Response:
        account = request_account(request)
        balance = Wallet.objects.filter(account_id=account.pk).values_list("balance", flat=True).first()
        return Response({"credits": str(balance)})


urlpatterns = [path("bench/ping", PingApi.as_view(), name="bench-ping"), *app_urlpatterns]
