"""The application's URLs with baselines B' and D in front: under /api/v1/, so that they pass the
middleware an API request passes (the console's session, login and messages layers let API paths by)."""

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.baseline_urls import PAYLOAD
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as app_urlpatterns
from usage.limits import Limits
from usage.ratelimit import limiter

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

PATH = "api/v1/bench-baseline"
LIMITER_PATH = "api/v1/bench-limiter"
# Limits no run reaches, for a tenant id of the benchmark's own (no such tenant exists).
UNREACHED = Limits(requests_per_minute=10**9, requests_per_hour=10**9, requests_per_day=10**9)
BENCH_TENANT = "bench-baseline-d"


class StackDrf(APIView):
    """Baseline B's view, behind the application's middleware, throttles and renderers."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


class StackDrfLimiter(StackDrf):
    """Baseline D: B' plus the rate limiter's one round trip, taken by the application's own limiter;
    what every API-key request pays before authentication, its own work and its usage event."""

    def get(self, request: Request) -> Response:
        limiter().take(BENCH_TENANT, UNREACHED)
        return Response(PAYLOAD)


# First: the API's own requests try them once (failed matches of plain paths) before their own.
urlpatterns = [
    path(PATH, StackDrf.as_view()),
    path(LIMITER_PATH, StackDrfLimiter.as_view()),
    *app_urlpatterns,
]
