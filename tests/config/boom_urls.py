"""config.urls plus two views that fail, to see what a caller gets from an unexpected error."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView


class BoomApiView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> HttpResponse:
        raise RuntimeError("secret internals: password=hunter2")


def boom_plain(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret internals: password=hunter2")


urlpatterns = [
    path("boom-api", BoomApiView.as_view()),
    path("boom-plain", boom_plain),
    path("", include("config.urls")),
]
