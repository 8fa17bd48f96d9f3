"""The plumbing every request passes through: request id, access log and metrics, body limit, errors."""

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from config.exceptions import BodyRefused, error_response
from config.logging import request_id_var
from config.metrics import http_request_duration_seconds, http_requests_total
from config.routes import route_pattern

access_logger = logging.getLogger("access")
error_logger = logging.getLogger("config.errors")

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # fullmatch: `$` would let a final \n by


def _request_id(request: HttpRequest) -> str:
    offered = request.META.get("HTTP_X_REQUEST_ID", "")
    return offered if _SANE_REQUEST_ID.fullmatch(offered) else str(uuid.uuid4())


def _principal(request: HttpRequest) -> dict:
    """Who made the request, for the log line: the tenant and the user or API key."""
    context: dict = {}
    tenant = getattr(request, "tenant", None)
    if tenant is not None:
        context["tenant_id"] = str(tenant.id)
    api_key = getattr(request, "api_key", None)
    if api_key is not None:
        context["api_key_id"] = str(api_key.id)
    else:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            context["user_id"] = str(user.pk)
    return context


# Content-Security-Policy by CSP_MODE. Answers that are not pages (the API's JSON) may load nothing.
_CSP_DATA = "default-src 'none'; frame-ancestors 'none'"
# ReDoc searches in a worker it makes from a blob.
_CSP_PAGES_COMMON = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
_CSP_PAGES = {
    "strict": f"{_CSP_PAGES_COMMON}; script-src 'self'; img-src 'self' data:",
    "relaxed": f"{_CSP_PAGES_COMMON}; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "img-src 'self' data: https:",
}


def csp_apply(response: HttpResponse) -> None:
    mode = settings.CSP_MODE
    if mode == "disabled" or "Content-Security-Policy" in response:
        return
    page = response.get("Content-Type", "").startswith("text/html")
    response["Content-Security-Policy"] = _CSP_PAGES[mode] if page else _CSP_DATA


class RequestContextMiddleware:
    """Outermost: gives the request its id, then logs one line and counts it once it is answered."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request.request_id = _request_id(request)
        token = request_id_var.set(request.request_id)
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request.request_id
            csp_apply(response)
            duration = time.perf_counter() - started
            endpoint = route_pattern(request)
            http_requests_total.labels(request.method, endpoint, str(response.status_code)).inc()
            http_request_duration_seconds.labels(request.method, endpoint).observe(duration)
            access_logger.info(
                "Request processed",
                extra={
                    "context": {
                        **_principal(request),
                        "method": request.method,
                        "endpoint": endpoint,
                        "path": request.path,
                        "status_code": response.status_code,
                        "duration_ms": round(duration * 1000, 2),
                    }
                },
            )
            return response
        finally:
            request_id_var.reset(token)


# The JSON API: every request carries its API key or JWT, and no answer reads or sets a cookie.
API_PREFIXES = ("/api/v1/", "/api/admin/")


class PagesOnlyMixin:
    """For the middleware only the console's pages need (session, login, messages): an API request
    passes straight through."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIXES):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class PagesSessionMiddleware(PagesOnlyMixin, SessionMiddleware):
    pass


class PagesAuthenticationMiddleware(PagesOnlyMixin, AuthenticationMiddleware):
    pass


class PagesMessageMiddleware(PagesOnlyMixin, MessageMiddleware):
    pass


class BodySizeLimitMiddleware:
    """Refuses a body over MAX_REQUEST_BODY_BYTES before anything reads it (DRF's parsers would not).
    Under /api/ the refusal waits for DRF's authentication (config.http.HeldRefusals), so that a tenant's
    credential gets it counted and rate-limited like any other answer; nothing reads the body before."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = body_refusal(request)
        if refusal is None:
            return self.get_response(request)
        if request.path_info.startswith("/api/"):
            request.body_refused = refusal
            return self.get_response(request)
        return error_response(refusal.status_code, str(refusal.detail), details=refusal.details)


def body_refusal(request: HttpRequest) -> BodyRefused | None:
    limit = settings.MAX_REQUEST_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        length = int(declared)
    except ValueError:
        return BodyRefused(400, "The Content-Length header is not a number.")
    if length < 0:
        return BodyRefused(400, "The Content-Length header is negative.")
    if length > limit:
        return BodyRefused(
            413, f"The request body is {length} bytes; the limit is {limit} bytes.", {"limit_bytes": limit}
        )
    return None


class ExceptionEnvelopeMiddleware:
    """Innermost: an exception escaping a plain Django view still gets the envelope, never a trace."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse:
        if isinstance(exception, Http404):
            return error_response(404, "Not found.")
        if isinstance(exception, PermissionDenied):
            return error_response(403, "You do not have permission to perform this action.")
        if isinstance(exception, SuspiciousOperation | BadRequest):
            return error_response(400, "Bad request.")
        error_logger.error("Unhandled error on %s %s", request.method, request.path, exc_info=exception)
        return error_response(500, "An internal error occurred.")
