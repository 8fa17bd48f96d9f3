"""Usage capture: one event per request made with a tenant's credential, recorded after the answer.

With Redis the event is pushed onto a buffer list (one round trip; no database on the request path)
and a Celery task moves batches into usage_logs. Without Redis, or if the push fails, the event is
written straight to the database, so nothing is lost either way.
"""

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from functools import cache

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter

from config.routes import route_pattern
from usage.models import UsageLog
from usage.redis_calls import redis_call

logger = logging.getLogger(__name__)

# One hash tag for all usage keys, so the take-a-batch script also runs on Redis Cluster.
BUFFER_KEY = "{usage}:buffer"
INFLIGHT_INDEX_KEY = "{usage}:inflight"
INFLIGHT_PREFIX = "{usage}:inflight:"
# Events no row could be made of, kept for a person to look at (the newest DEAD_LETTER_MAX).
DEAD_LETTER_KEY = "{usage}:dead"
# How many events all workers have stored, for the API's /metrics (the flushes run in the workers).
STORED_TOTAL_KEY = "{usage}:stored"
DEAD_LETTER_MAX = 10_000

COLUMNS = (
    "event_id",
    "request_id",
    "tenant_id",
    "api_key_id",
    "user_id",
    "endpoint",
    "method",
    "status_code",
    "outcome",
    "latency_ms",
    "request_size_bytes",
    "response_size_bytes",
    "timestamp",
)

usage_events_total = Counter(
    "usage_events_total", "Usage events recorded, by where they went first.", ["destination"]
)
usage_record_errors_total = Counter(
    "usage_record_errors_total", "Usage events that could not be recorded at all."
)


@cache
def buffer_client() -> redis.Redis | None:
    if not settings.USAGE_BUFFER_REDIS_URL:
        return None
    timeout = settings.USAGE_BUFFER_REDIS_TIMEOUT
    return redis.Redis.from_url(
        settings.USAGE_BUFFER_REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def outcome_of(status_code: int) -> str:
    if status_code == 429:
        return "rate_limited"
    if status_code in (401, 403):
        return "unauthorized"
    if status_code >= 500:
        return "server_error"
    if status_code >= 400:
        return "client_error"
    return "ok"


def usage_event(
    request: HttpRequest, response: HttpResponse, started: float, started_at: float
) -> dict | None:
    """The event of a request made with a tenant's credential; None for any other request."""
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        return None
    api_key = getattr(request, "api_key", None)
    user = getattr(request, "user", None)
    try:
        request_size: int | None = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        request_size = None
    if getattr(request, "body_refused", None) is not None:
        request_size = None  # refused unread: what the header claimed was never received
    return {
        "event_id": str(uuid.uuid4()),
        "request_id": getattr(request, "request_id", "")[:128],
        "tenant_id": str(tenant.id),
        "api_key_id": str(api_key.id) if api_key is not None else None,
        "user_id": str(user.pk) if api_key is None and user is not None and user.pk is not None else None,
        "endpoint": route_pattern(request)[:255],
        "method": (request.method or "")[:10],
        "status_code": response.status_code,
        "outcome": outcome_of(response.status_code),
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        "request_size_bytes": request_size,
        "response_size_bytes": None if response.streaming else len(response.content),
        "timestamp": datetime.fromtimestamp(started_at, tz=UTC).isoformat(),
    }


def usage_event_record(event: dict) -> None:
    """Buffers the event in Redis, or writes it to the database when there is no Redis to take it."""
    client = buffer_client()
    if client is not None:
        try:
            redis_call(client, "RPUSH", BUFFER_KEY, json.dumps(event, separators=(",", ":")))
            usage_events_total.labels("buffer").inc()
            return
        except redis.RedisError as exc:
            logger.warning(
                "Usage buffer unavailable (%s); writing the event to the database", exc.__class__.__name__
            )
    try:
        usage_rows_insert([event])
        usage_events_total.labels("database").inc()
    except Exception:
        usage_record_errors_total.inc()
        logger.exception("Could not record the usage event %s", event["event_id"])


STAGING_TABLE = """
CREATE TEMPORARY TABLE IF NOT EXISTS usage_staging (
    event_id uuid, request_id varchar(128), tenant_id uuid, api_key_id uuid, user_id uuid,
    endpoint varchar(255), method varchar(10), status_code integer, outcome varchar(16),
    latency_ms double precision, request_size_bytes integer, response_size_bytes integer,
    "timestamp" timestamp with time zone
) ON COMMIT DELETE ROWS
"""


def usage_rows_insert(events: list[dict]) -> int:
    """Inserts events, skipping any already stored (same event id): returns how many were new."""
    if not events:
        return 0
    if connection.vendor == "postgresql" and len(events) > 1:
        return _copy_insert(events)
    inserted = 0
    columns = ", ".join(f'"{column}"' for column in COLUMNS)
    # Chunks keep the parameter count under the databases' limits (PostgreSQL: 65535).
    chunk_size = 2000
    with connection.cursor() as cursor:
        for offset in range(0, len(events), chunk_size):
            chunk = events[offset : offset + chunk_size]
            row = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
            sql = (
                # Column names are constants, values are parameters.
                f"INSERT INTO usage_logs ({columns}) VALUES {', '.join([row] * len(chunk))} "  # nosec B608
                'ON CONFLICT (event_id, "timestamp") DO NOTHING'
            )
            params = [_value(event, column) for event in chunk for column in COLUMNS]
            cursor.execute(sql, params)  # type: ignore[arg-type]
            inserted += max(cursor.rowcount, 0)
    return inserted


@cache
def _field(column: str) -> Field:
    field = UsageLog._meta.get_field(
        column.removesuffix("_id") if column in ("tenant_id", "api_key_id") else column
    )
    if not isinstance(field, Field):
        raise TypeError(f"usage_logs.{column} is not a concrete field")
    return field


def _copy_insert(events: list[dict]) -> int:
    """PostgreSQL: COPY into a temporary table, then one INSERT ... ON CONFLICT DO NOTHING. Several
    times faster than multi-row INSERTs for the batches of the usage flush."""
    columns = ", ".join(f'"{column}"' for column in COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(STAGING_TABLE)
        with (
            cursor.connection.cursor() as raw,
            raw.copy(f"COPY usage_staging ({columns}) FROM STDIN") as copy,
        ):
            for event in events:
                copy.write_row(
                    (
                        event["event_id"],
                        event["request_id"],
                        event["tenant_id"],
                        event["api_key_id"],
                        event["user_id"],
                        event["endpoint"],
                        event["method"],
                        event["status_code"],
                        event["outcome"],
                        event["latency_ms"],
                        event["request_size_bytes"],
                        event["response_size_bytes"],
                        event["timestamp"],
                    )
                )
        cursor.execute(
            # Column names are constants.
            f"INSERT INTO usage_logs ({columns}) SELECT {columns} FROM usage_staging "  # nosec B608
            'ON CONFLICT (event_id, "timestamp") DO NOTHING'
        )
        inserted = max(cursor.rowcount, 0)
        cursor.execute("TRUNCATE usage_staging")
    return inserted


def _value(event: dict, column: str) -> object:
    """The event's value as the database stores it (UUIDs and datetimes differ between backends)."""
    value = event.get(column)
    if column == "timestamp":
        value = datetime.fromisoformat(str(value))
    return _field(column).get_db_prep_value(value, connection)
