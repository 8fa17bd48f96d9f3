"""Small helpers about the HTTP request itself."""

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

if TYPE_CHECKING:  # DRF loads this module while rest_framework.views is still being imported
    from rest_framework.views import APIView


def client_ip(request: HttpRequest) -> str | None:
    """The caller's address: REMOTE_ADDR, or the entry our own proxies added to X-Forwarded-For."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


def bearer_credential(header: str) -> str | None:
    """What follows the scheme of `Authorization: Bearer <credential>`: the scheme in any case (HTTP
    compares it so, and the login answers `"token_type": "bearer"`), after any whitespace."""
    parts = header.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1].strip() or None


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, with a shortcut for what nearly every client sends (no Accept header, or
    `*/*`): the view's first renderer, as DRF would choose it, without parsing the header.
    A refusal (406, or 404 for an unknown `?format=`) is held until the request is authenticated, as
    the body's size is: DRF negotiates first, and the refused request would skip the credential's
    check, the tenant's limits and its usage."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        first = renderers[0] if renderers else None
        try:
            if (
                first is not None
                and request.META.get("HTTP_ACCEPT", "*/*") == "*/*"
                and not format_suffix
                and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
            ):
                return first, first.media_type
            return super().select_renderer(request, renderers, format_suffix)
        except (exceptions.NotAcceptable, Http404, SuspiciousOperation) as refusal:
            # SuspiciousOperation: a query string Django refuses to read (more than 1,000 fields).
            if first is None:
                raise
            request._request.negotiation_refused = refusal  # type: ignore[attr-defined]
            return first, first.media_type


class HeldRefusals(BaseThrottle):
    """The refusals held for an /api/ request until it is authenticated, made here: the body's size
    (config.middleware.BodySizeLimitMiddleware) and the negotiation of its answer. DRF's throttles are
    the one step every view takes after authentication (which counts and rate-limits a tenant's
    request) and before anything reads the body."""

    def allow_request(self, request: Request, view: "APIView") -> bool:
        for name in ("body_refused", "negotiation_refused"):
            refused = getattr(request._request, name, None)
            if refused is not None:
                raise refused
        return True
