"""The app's URLs plus the benchmarks' baselines. Only bench_settings routes here; the app never has these.

- `bench/ping`: API-key authentication + one row read (the authorize benchmark's baseline);
- `bench/floor`: the framework's floor: a bare DRF view that reads one row with no authentication, no throttle and
  no content negotiation beyond JSON (the gate benchmark's baseline).
"""

from __future__ import annotations

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

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


class FloorApi(APIView):
    """What any DRF endpoint pays before it does any work of its own: routing, the view, one row, JSON."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()
    renderer_classes = (JSONRenderer,)

    def get(self, request: Request) -> Response:
        balance = Wallet.objects.order_by("pk").values_list("balance", flat=True).first()
        return Response({"credits": str(balance)})


urlpatterns = [
    path("bench/ping", PingApi.as_view(), name="bench-ping"),
    path("bench/floor", FloorApi.as_view(), name="bench-floor"),
    *app_urlpatterns,
]
