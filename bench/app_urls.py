"""The application's URLs with baseline B' in front: under /api/v1/, so that it passes the middleware
an API request passes (the console's session, login and messages layers let API paths by)."""

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.baseline_urls import PAYLOAD
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as app_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

PATH = "api/v1/bench-baseline"


class StackDrf(APIView):
    """Baseline B's view, behind the application's middleware, throttles and renderers."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


# First: the API's own requests try it once (one failed match of a plain path) before their own.
urlpatterns = [path(PATH, StackDrf.as_view()), *app_urlpatterns]
