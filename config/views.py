"""The project's own views: /health, /ready, /metrics, the API's description, and the 404 of every
unknown path."""

import logging
from collections.abc import Sequence
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.exceptions import error_body
from usage.services import UsageBufferCollector

logger = logging.getLogger(__name__)


def _check_database() -> None:
    # A connection the server closed (a restart) was already replaced at the request's start
    # (config.postgresql), so this asks the database as it is now.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    cache.set("ready-probe", "ok", 10)
    if cache.get("ready-probe") != "ok":
        raise RuntimeError("the cache did not return what was stored")


CHECKS = {"database": _check_database, "cache": _check_cache}


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(tags=["operations"], responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadyView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(tags=["operations"], responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        for name, check in CHECKS.items():
            try:
                check()
                checks[name] = "ok"
            except Exception as exc:
                logger.warning("Readiness check %s failed: %s", name, exc.__class__.__name__)
                checks[name] = "unavailable"
        down = [name for name, state in checks.items() if state != "ok"]
        if not down:
            return Response({"status": "ready", "checks": checks})
        body = {"status": "not_ready", "checks": checks}
        body.update(
            error_body(503, f"Not ready: {', '.join(down)} unavailable.", details={"unavailable": down})
        )
        return Response(body, status=503)


class NotFoundView(APIView):
    """Every path no route matches: 404 in the envelope. The credential, if any, is still checked
    first, so a tenant's request to a wrong path is limited and metered like any other."""

    permission_classes = [AllowAny]
    schema = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        raise NotFound(f"No route matches {request.path}.")


class _DescriptionMixin:
    """GET only (DRF's OPTIONS answer has no template to render these pages with), and errors in the
    envelope of API.md rather than in the page's or the document's own format."""

    http_method_names: Sequence[str] = ("get", "head")

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)  # type: ignore[misc]
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response


class SchemaView(_DescriptionMixin, SpectacularAPIView):
    pass


class SwaggerView(_DescriptionMixin, SpectacularSwaggerSplitView):
    """Its page's own script comes as a file (`?script`), so that it runs under a strict CSP."""


class RedocView(_DescriptionMixin, SpectacularRedocView):
    pass


# Read from Redis at each scrape, not kept by any process: added to what the processes counted.
_LIVE_METRICS = CollectorRegistry(auto_describe=False)
_LIVE_METRICS.register(UsageBufferCollector())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The processes' own metrics (summed over gunicorn's workers), and the usage buffer as it is now."""
    counted = ExportToDjangoView(request)
    return HttpResponse(counted.content + generate_latest(_LIVE_METRICS), content_type=CONTENT_TYPE_LATEST)
