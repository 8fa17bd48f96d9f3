"""The error envelope of API.md, for every error of every URL, built in one place."""

import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import SuspiciousOperation, TooManyFieldsSent
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.response import Response

from config.logging import request_id_var

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "CONFLICT"


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was used with a different request body, or by another user or key."
    default_code = "IDEMPOTENCY_KEY_REUSED"


class TenantSuspended(exceptions.PermissionDenied):
    default_detail = "The tenant is suspended."
    default_code = "TENANT_SUSPENDED"


class TenantCancelled(exceptions.PermissionDenied):
    default_detail = "The tenant is cancelled."
    default_code = "TENANT_CANCELLED"


class UpstreamUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service this request depends on is unavailable."
    default_code = "UPSTREAM_UNAVAILABLE"


class RateLimitExceeded(exceptions.Throttled):
    default_detail = "Too many requests."
    default_code = "RATE_LIMIT_EXCEEDED"

    def __init__(
        self, wait: float | None = None, detail: str | None = None, details: dict | None = None
    ) -> None:
        # Throttled would append its own "Expected available in N seconds." to a message that already
        # says when: only the wait is kept (Retry-After).
        exceptions.APIException.__init__(self, detail or self.default_detail)
        self.wait = None if wait is None else math.ceil(wait)
        self.details = details


class BodyRefused(exceptions.APIException):
    """A body refused unread: over MAX_REQUEST_BODY_BYTES (413), or with a Content-Length that is not
    a length (400)."""

    def __init__(self, status_code: int, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.details = details


# Codes of API.md by status, for exceptions that do not name their own.
CODE_BY_STATUS = {
    400: "VALIDATION_ERROR",
    401: "AUTHENTICATION_FAILED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "IDEMPOTENCY_KEY_REUSED",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "UPSTREAM_UNAVAILABLE",
}
OWN_CODES = {
    "CONFLICT",
    "IDEMPOTENCY_KEY_REUSED",
    "TENANT_SUSPENDED",
    "TENANT_CANCELLED",
    "UPSTREAM_UNAVAILABLE",
}


def error_body(status_code: int, message: str, *, code: str | None = None, details: Any = None) -> dict:
    return {
        "error": {
            "code": code or CODE_BY_STATUS.get(status_code, "ERROR"),
            "message": message,
            "details": details if details is not None else {},
            "request_id": request_id_var.get(),
            "timestamp": timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    }


def error_response(
    status_code: int, message: str, *, code: str | None = None, details: Any = None
) -> JsonResponse:
    return JsonResponse(error_body(status_code, message, code=code, details=details), status=status_code)


def _first_message(details: Any, path: str = "") -> str:
    """The first validation message, prefixed by where it was found: 'items.3.id: This field is required.'"""
    if isinstance(details, dict):
        for key, value in details.items():
            where = path if key == "non_field_errors" else (f"{path}.{key}" if path else str(key))
            return _first_message(value, where)
    if isinstance(details, list):
        for index, value in enumerate(details):
            if isinstance(value, dict | list):
                if value:
                    return _first_message(value, f"{path}.{index}" if path else str(index))
                continue
            return f"{path}: {value}" if path else str(value)
    return f"{path}: {details}" if path else str(details)


def _validation_details(exc: exceptions.ValidationError) -> dict:
    detail = exc.detail
    if isinstance(detail, dict):
        return detail
    return {"non_field_errors": detail if isinstance(detail, list) else [detail]}


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's exception handler: every exception becomes the envelope, unknown ones a bare 500."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        exc = exceptions.ValidationError([f"Too many query or form fields: at most {limit:,} are read."])
    elif isinstance(exc, SuspiciousOperation):
        # Django's other refusals of a request it will not read: the caller's fault, not ours.
        exc = exceptions.ValidationError(["The request cannot be read."])
    elif isinstance(exc, DataError):
        # A value the database cannot take or compare (out of its type's range, a NUL in a text): the
        # input's fault, whatever check let it through.
        logger.warning("Database refused a value: %s", str(exc).splitlines()[0] if str(exc) else "")
        exc = exceptions.ValidationError(["A value in the request cannot be stored or looked up."])
    elif isinstance(exc, OperationalError | InterfaceError):
        logger.error("Database unavailable: %s", exc.__class__.__name__)
        exc = UpstreamUnavailable("The database is unavailable; retry shortly.")

    if not isinstance(exc, exceptions.APIException):
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        return Response(error_body(500, "An internal error occurred."), status=500)

    headers: dict[str, str] = {}
    status_code = exc.status_code
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # DRF turns these into 403 on views without an authentication class; API.md says 401.
        status_code = 401
        headers["WWW-Authenticate"] = getattr(exc, "auth_header", None) or 'Bearer realm="api"'

    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))  # type: ignore[attr-defined]

    code = None
    details: Any = getattr(exc, "details", None)
    if isinstance(exc, exceptions.ValidationError):
        details = _validation_details(exc)
        message = _first_message(details) or "Invalid input."
    elif isinstance(exc, exceptions.ParseError):
        message = f"Malformed request body: {exc.detail}"
    else:
        message = str(exc.detail) if not isinstance(exc.detail, dict | list) else "Request refused."
        if isinstance(exc.detail, dict):
            # simplejwt puts its reasons in a dict: keep the sentence, drop the internals.
            message = str(exc.detail.get("detail", message))
        own = exc.get_codes()
        if isinstance(own, str) and own in OWN_CODES:
            code = own
    if isinstance(exc, exceptions.NotAuthenticated):
        message = "Authentication credentials were not provided."
    return Response(
        error_body(status_code, message, code=code, details=details),
        status=status_code,
        headers=headers,
    )


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(404, f"No route matches {request.path}.")


def server_error_view(request: HttpRequest) -> JsonResponse:
    return error_response(500, "An internal error occurred.")


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(400, "Bad request.")


def permission_denied_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(403, "You do not have permission to perform this action.")


def csrf_failure_view(request: HttpRequest, reason: str = "") -> JsonResponse:
    return error_response(403, f"CSRF verification failed: {reason or 'no valid token'}.")
