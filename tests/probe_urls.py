"""config.urls plus a tenant endpoint that reads (GET) and writes (POST), to exercise key permissions."""

from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.permissions import TenantAccess


class ProbeView(APIView):
    permission_classes = [TenantAccess]
    read_roles = frozenset(User.Role.values)
    write_roles = frozenset({User.Role.ADMIN, User.Role.DEVELOPER})
    api_key_permission = "write"

    def get(self, request: Request) -> Response:
        return Response(
            {"tenant": str(request.tenant.id), "key": getattr(getattr(request, "api_key", None), "id", None)}
        )

    def post(self, request: Request) -> Response:
        return Response({"written": True})


urlpatterns = [
    path("api/v1/probe", ProbeView.as_view()),
    path("", include("config.urls")),
]
