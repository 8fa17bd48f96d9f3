"""The OpenAPI schema tells the truth about errors and headers: every operation documents the error
envelope of API.md for each status it can answer, and the headers its answers carry (request id, rate
limits, Retry-After, Idempotent-Replayed) (drf-spectacular postprocessing hook)."""

from typing import Any

from drf_spectacular.openapi import AutoSchema

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "request_id", "timestamp"],
            "properties": {
                "code": {"type": "string", "example": "VALIDATION_ERROR"},
                "message": {"type": "string"},
                "details": {},
                "request_id": {"type": "string", "nullable": True},
                "timestamp": {"type": "string", "format": "date-time"},
            },
        }
    },
}
ALWAYS = {
    "400": "Invalid input (VALIDATION_ERROR), malformed JSON included",
    "401": "Missing or invalid credentials (AUTHENTICATION_FAILED)",
    "403": "Not allowed (FORBIDDEN, TENANT_SUSPENDED, TENANT_CANCELLED)",
    "404": "Not found, or another tenant's object (NOT_FOUND)",
    "405": "Method not allowed (METHOD_NOT_ALLOWED)",
    "413": "Body too large (PAYLOAD_TOO_LARGE)",
    "415": "Body is not JSON (UNSUPPORTED_MEDIA_TYPE)",
    "429": "Rate limit exceeded (RATE_LIMIT_EXCEEDED)",
    "500": "Internal error, without internals (INTERNAL_ERROR)",
    "503": "A dependency is down (UPSTREAM_UNAVAILABLE)",
}
ON_WRITE = {
    "409": "Conflict, or the same Idempotency-Key still running (CONFLICT)",
    "422": "Idempotency-Key reused with another body, or by another user or key (IDEMPOTENCY_KEY_REUSED)",
}
IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-255 characters, scoped to the tenant; a retry by the same caller with the same key "
    "and body (JSON compared as JSON: key order and spacing aside) replays the first answer (24 h; a "
    "login's or a refresh's tokens while the pair is unused). A refusal (4xx) is an answer and is replayed "
    "too; a 429 or a server error frees the key for a retry. Staff have no tenant: their requests are "
    "not replayed.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


HEADERS = {
    "X-Request-ID": _header(
        "The request's id, as in the error envelope and the logs (a sane one sent is kept)."
    ),
    "X-RateLimit-Limit": _header("The limit of the tightest window (minute, hour or day).", "integer"),
    "X-RateLimit-Remaining": _header("Requests left in the tightest window.", "integer"),
    "X-RateLimit-Reset": _header("Seconds until the tightest window is full again.", "integer"),
    "RateLimit-Policy": _header(
        "The three windows, IETF draft syntax (draft-ietf-httpapi-ratelimit-headers-08 and later): "
        '`"minute";q=1000;w=60, "hour";q=50000;w=3600, "day";q=1000000;w=86400`.'
    ),
    "RateLimit": _header('What is left of each window: `"minute";r=998;t=1, "hour";r=49998;t=3, ...`.'),
    "Retry-After": _header("Seconds until one request would pass.", "integer"),
    "Idempotent-Replayed": _header("`true` on an answer given again for a retried Idempotency-Key."),
}
# Every answer to a tenant's credential carries its limits (API.md, "Rate limits"); a login, a refresh
# and a logout carry their credential in the body, and their answers no limits.
TENANT_HEADERS = (
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit-Policy",
    "RateLimit",
)
CREDENTIAL_IN_BODY = ("/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout")


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    result["components"]["headers"] = HEADERS
    reference = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            wanted = dict(ALWAYS)
            if method != "get":
                wanted.update(ON_WRITE)
            for status, description in wanted.items():
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/json": {"schema": reference}}},
                )
            if method == "post" and path.startswith("/api/v1/"):
                operation.setdefault("parameters", []).append(IDEMPOTENCY_HEADER)
            limited = path.startswith("/api/v1/") and path not in CREDENTIAL_IN_BODY
            names = TENANT_HEADERS if limited else ("X-Request-ID",)
            for status, response in responses.items():
                sent = list(names)
                if status == "429" and limited:
                    sent.append("Retry-After")
                if method == "post" and path.startswith("/api/v1/"):
                    sent.append("Idempotent-Replayed")
                headers = response.setdefault("headers", {})
                for name in sent:
                    headers.setdefault(name, {"$ref": f"#/components/headers/{name}"})
    return result


class ObjectListSchema(AutoSchema):
    """For `list` actions that answer one object (a page with a cursor, a usage summary), not an array."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        if getattr(self.view, "action", None) == "list":
            return False
        return super()._is_list_view(serializer)

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        if getattr(self.view, "action", None) == "list":
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id
