"""Everything that writes rate limits, usage rows, rollups and invoices."""

import json
import logging
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import Aggregate, Case, Count, FloatField, Min, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from apikeys.models import ApiKey
from apikeys.services import api_keys_cache_invalidate
from tenants.audit import audit_record, snapshot
from tenants.models import AuditEntry, Tenant
from usage.events import (
    BUFFER_KEY,
    COLUMNS,
    DEAD_LETTER_KEY,
    DEAD_LETTER_MAX,
    INFLIGHT_INDEX_KEY,
    INFLIGHT_PREFIX,
    STORED_TOTAL_KEY,
    buffer_client,
    usage_rows_insert,
)
from usage.limits import WINDOWS, Limits, tenant_rate_limits
from usage.models import (
    ERRORS,
    RATE_LIMITED,
    ROLLED_BILLABLE,
    UNAUTHORIZED,
    DailyUsage,
    Invoice,
    RateLimit,
    RollupRun,
    UsageLog,
)

logger = logging.getLogger(__name__)

usage_flushed_total = Counter(
    "usage_events_flushed_total", "Usage events moved from the buffer into usage_logs."
)
usage_duplicates_total = Counter(
    "usage_events_deduplicated_total", "Buffered usage events already stored (a batch delivered again)."
)
usage_rejected_total = Counter(
    "usage_events_rejected_total", "Buffered usage events that could not be stored, by reason.", ["reason"]
)
usage_flush_seconds = Histogram("usage_flush_seconds", "Time of one flush of the usage buffer.")
usage_buffer_length = Gauge(
    "usage_buffer_length",
    "Usage events waiting in the buffer after the last flush.",
    multiprocess_mode="mostrecent",
)


def rate_limits_set(
    *, tenant: Tenant, actor: object = None, source: str = "api", **values: int | None
) -> Limits:
    """Sets the tenant's own limits: each window given is set (None: back to the plan's default), the
    others stay. The next request sees them: JWTs read them with the tenant, and the cached API keys
    of the tenant are dropped here."""
    fields = {field for _, field, _ in WINDOWS}
    unknown = set(values) - fields
    if unknown:
        raise TypeError(f"Unknown rate-limit fields: {sorted(unknown)}")
    names = tuple(field for _, field, _ in WINDOWS)
    with transaction.atomic():
        row, _ = RateLimit.objects.get_or_create(tenant=tenant)
        before = snapshot(row, names)
        for field, value in values.items():
            setattr(row, field, value)
        row.save()
        if actor is not None:
            audit_record(
                actor=actor,
                action="tenant.rate_limits",
                obj=tenant,
                source=source,
                before=before,
                after=snapshot(row, names),
            )
    tenant.rate_limit = row
    api_keys_cache_invalidate(tenant=tenant)
    return tenant_rate_limits(tenant)


# --- Usage: from the Redis buffer to usage_logs -----------------------------------------------------

# Takes up to ARGV[1] events off the buffer and parks them, atomically, in an in-flight list of
# their own registered (with the time) in the in-flight index. Until that batch is stored and
# acknowledged it stays there, so a worker killed at any point loses nothing: the next flush
# stores it again, and the unique event id keeps it from being counted twice.
TAKE_BATCH_LUA = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then return {} end
redis.call('LTRIM', KEYS[1], #items, -1)
-- RPUSH in slices: unpack() of a whole large batch would overflow Lua's stack.
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
end
redis.call('ZADD', KEYS[3], ARGV[2], KEYS[2])
return items
"""


@dataclass(frozen=True)
class FlushResult:
    taken: int
    inserted: int

    @property
    def duplicates(self) -> int:
        return self.taken - self.inserted


INT32_MAX = 2**31 - 1
OUTCOMES = frozenset(UsageLog.Outcome.values)


def _uuid_or_none(value: object, *, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise ValueError("not a UUID")
    return str(uuid.UUID(value))


def _count_or_none(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT32_MAX:
        raise ValueError("not a byte count")
    return value


def _text(value: object, length: int) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a text")
    value.encode()  # a lone surrogate cannot be stored: UnicodeEncodeError, a ValueError
    return value[:length]


def _event_checked(raw: object) -> dict:
    """The event as its row will hold it, each value of the type and range of its column; a
    ValueError names what is not (so that a batch goes into the table whole, nothing unstorable may
    reach it)."""
    if not isinstance(raw, dict) or not set(COLUMNS) <= set(raw):
        raise ValueError("missing fields")
    status, latency = raw["status_code"], raw["latency_ms"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        raise ValueError("not a status code")
    if isinstance(latency, bool) or not isinstance(latency, int | float) or not 0 <= latency < 1e12:
        raise ValueError("not a latency")
    if raw["outcome"] not in OUTCOMES:
        raise ValueError("not an outcome")
    moment = datetime.fromisoformat(_text(raw["timestamp"], 64))
    if moment.tzinfo is None:
        raise ValueError("a timestamp without its time zone")
    moment = moment.astimezone(UTC)  # OverflowError out of years 1-9999, as the database would
    return {
        "event_id": _uuid_or_none(raw["event_id"], nullable=False),
        "request_id": _text(raw["request_id"], 128),
        "tenant_id": _uuid_or_none(raw["tenant_id"], nullable=False),
        "api_key_id": _uuid_or_none(raw["api_key_id"], nullable=True),
        "user_id": _uuid_or_none(raw["user_id"], nullable=True),
        "endpoint": _text(raw["endpoint"], 255),
        "method": _text(raw["method"], 10),
        "status_code": status,
        "outcome": raw["outcome"],
        "latency_ms": float(latency),
        "request_size_bytes": _count_or_none(raw["request_size_bytes"]),
        "response_size_bytes": _count_or_none(raw["response_size_bytes"]),
        "timestamp": moment.isoformat(),
    }


@dataclass
class Stored:
    """What storing a batch came to: rows inserted, and the events set aside (kept with the batch's
    acknowledgement, so that a batch stored again does not set them aside twice)."""

    inserted: int = 0
    aside: list[bytes | str] = field(default_factory=list)

    def set_aside(self, item: bytes | str, reason: str, why: object) -> None:
        usage_rejected_total.labels(reason).inc()
        logger.error("Usage event set aside in %s (%s: %s): %.300r", DEAD_LETTER_KEY, reason, why, item)
        self.aside.append(item)


def _parse(items: list[bytes], stored: Stored) -> list[dict]:
    """The events of a batch that can be stored. One that cannot (unreadable, a value its column
    cannot hold) is set aside, one of a tenant deleted since is dropped: neither may hold back the
    events behind it."""
    events = []
    for item in items:
        try:
            events.append(_event_checked(json.loads(item)))
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            stored.set_aside(item, "unreadable", exc)
    tenants = {
        str(pk)
        for pk in Tenant.objects.filter(id__in={e["tenant_id"] for e in events}).values_list("id", flat=True)
    }
    wanted_keys = {e["api_key_id"] for e in events if e["api_key_id"]}
    keys = (
        {str(pk) for pk in ApiKey.objects.filter(id__in=wanted_keys).values_list("id", flat=True)}
        if wanted_keys
        else set()
    )
    kept = []
    for event in events:
        if event["tenant_id"] not in tenants:
            usage_rejected_total.labels("tenant_deleted").inc()
            continue
        if event["api_key_id"] and event["api_key_id"] not in keys:
            event["api_key_id"] = None
        kept.append(event)
    return kept


# The database cannot be reached: the batch stays in flight, whatever its rows.
UNREACHABLE = (OperationalError, InterfaceError)


def _store(items: list[bytes]) -> Stored:
    """Stores a batch. If the database refuses it, row by row: a row it refuses while it takes
    others is set aside; if it takes none (a constraint a deploy added, a table missing, a read-only
    database), the fault is the database's, not the rows', and the batch stays in flight."""
    stored = Stored()
    events = _parse(items, stored)
    try:
        with transaction.atomic():
            stored.inserted = usage_rows_insert(events)
        return stored
    except UNREACHABLE:
        raise
    except DatabaseError as exc:
        refusal = exc
        logger.warning(
            "A batch of %d usage events was refused (%s); storing them one by one", len(events), exc
        )
    refused: list[tuple[dict, DatabaseError]] = []
    for event in events:
        try:
            with transaction.atomic():
                stored.inserted += usage_rows_insert([event])
        except UNREACHABLE:
            raise
        except DatabaseError as row_error:
            refused.append((event, row_error))
    # One event alone refused for a value or a constraint is that event's fault, if the database still
    # takes a plain row: a quiet hour's flushes take one event each, and a constraint a deploy added
    # must not set them all aside.
    alone = (
        len(events) == 1 and isinstance(refusal, DataError | IntegrityError) and _takes_a_plain_row(events[0])
    )
    if refused and len(refused) == len(events) and not alone:
        raise refusal
    for event, why in refused:
        stored.set_aside(json.dumps(event), "refused", why)
    return stored


class _Undo(Exception):
    """Rolls back a row written only to see whether it would be taken."""


def _takes_a_plain_row(event: dict) -> bool:
    """Whether the database takes (then drops at once) a row of the event's tenant with ordinary values."""
    plain = {
        **event,
        "event_id": str(uuid.uuid4()),
        "request_id": "",
        "api_key_id": None,
        "user_id": None,
        "endpoint": "/",
        "method": "GET",
        "status_code": 200,
        "outcome": UsageLog.Outcome.OK.value,
        "latency_ms": 0.0,
        "request_size_bytes": None,
        "response_size_bytes": None,
        "timestamp": timezone.now().isoformat(),
    }
    try:
        with transaction.atomic():
            usage_rows_insert([plain])
            raise _Undo
    except _Undo:
        return True
    except UNREACHABLE:
        raise
    except DatabaseError:
        return False


def _acknowledge(client: redis.Redis, batch_key: str, stored: Stored) -> None:
    """The batch is in the table: it leaves the in-flight index, and what it set aside is kept."""
    pipe = client.pipeline(transaction=True)
    if stored.aside:
        pipe.rpush(DEAD_LETTER_KEY, *stored.aside)
        pipe.ltrim(DEAD_LETTER_KEY, -DEAD_LETTER_MAX, -1)
    pipe.delete(batch_key)
    pipe.zrem(INFLIGHT_INDEX_KEY, batch_key)
    pipe.execute()


def _inflight_store(client: redis.Redis, horizon: float | str) -> tuple[int, int]:
    """Stores again the batches taken before `horizon` and not yet acknowledged: (taken, inserted)."""
    taken = inserted = 0
    for raw_key in client.zrangebyscore(INFLIGHT_INDEX_KEY, "-inf", horizon):
        batch_key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        items: list[bytes] = client.lrange(batch_key, 0, -1)  # type: ignore[assignment]
        taken += len(items)
        stored = _store(items)
        _acknowledge(client, batch_key, stored)
        inserted += stored.inserted
    return taken, inserted


def usage_dead_letters_requeue() -> int:
    """Puts the events set aside back on the buffer, once what refused them has been put right; one
    still unstorable is set aside again by the next flush. Returns how many were moved."""
    client = buffer_client()
    if client is None:
        return 0
    moved = 0
    while moved < DEAD_LETTER_MAX and client.lmove(DEAD_LETTER_KEY, BUFFER_KEY, "LEFT", "RIGHT"):
        moved += 1
    return moved


def usage_flush(
    *, batch_size: int | None = None, max_batches: int = 500, recover_all: bool = False
) -> FlushResult:
    """Moves buffered events into usage_logs. First it stores again any batch left in flight by a
    worker that died (older than the visibility timeout, or all of them with `recover_all`).

    With `recover_all` it also stores, at the end, the batches other workers took meanwhile: a batch
    leaves the in-flight index only after its rows are committed, so when this returns every event
    buffered before the call is in the table."""
    batch_size = batch_size or settings.USAGE_FLUSH_BATCH_SIZE
    client = buffer_client()
    if client is None:
        return FlushResult(0, 0)
    started = time.perf_counter()
    horizon = "+inf" if recover_all else time.time() - settings.USAGE_INFLIGHT_TIMEOUT_SECONDS
    taken, inserted = _inflight_store(client, horizon)
    take = client.register_script(TAKE_BATCH_LUA)
    for _ in range(max_batches):
        batch_key = f"{INFLIGHT_PREFIX}{uuid.uuid4().hex}"
        items = take(keys=[BUFFER_KEY, batch_key, INFLIGHT_INDEX_KEY], args=[batch_size, time.time()])
        if not items:
            break
        taken += len(items)
        stored = _store(items)
        _acknowledge(client, batch_key, stored)
        inserted += stored.inserted
    if recover_all:
        late_taken, late_inserted = _inflight_store(client, horizon)
        taken, inserted = taken + late_taken, inserted + late_inserted
    result = FlushResult(taken, inserted)
    usage_flushed_total.inc(result.inserted)
    usage_duplicates_total.inc(result.duplicates)
    usage_flush_seconds.observe(time.perf_counter() - started)
    with client.pipeline(transaction=False) as pipe:
        if result.inserted:
            pipe.incrby(STORED_TOTAL_KEY, result.inserted)
        pipe.llen(BUFFER_KEY)
        usage_buffer_length.set(pipe.execute()[-1])
    return result


class UsageBufferCollector:
    """The buffer as it is when /metrics is read, whichever process flushed it: the events waiting,
    those set aside, and how many all workers have stored (since Redis started)."""

    def collect(self) -> Iterator[Metric]:
        client = buffer_client()
        if client is None:
            return
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.llen(BUFFER_KEY)
                pipe.llen(DEAD_LETTER_KEY)
                pipe.get(STORED_TOTAL_KEY)
                pending, dead, stored = pipe.execute()
        except redis.RedisError:
            logger.warning("Usage buffer unavailable for /metrics", exc_info=True)
            return
        yield GaugeMetricFamily(
            "usage_buffer_pending_events",
            "Usage events in the buffer now, waiting to be stored.",
            value=pending,
        )
        yield GaugeMetricFamily(
            "usage_dead_letter_events",
            "Usage events set aside because no row could be made of them.",
            value=dead,
        )
        yield CounterMetricFamily(
            "usage_events_stored",
            "Usage events moved from the buffer into usage_logs by every worker (since Redis started).",
            value=int(stored or 0),
        )


def usage_pending_flush() -> None:
    """Before usage is read: everything buffered or in flight is stored first."""
    try:
        usage_flush(recover_all=True)
    except redis.RedisError:
        logger.warning("Usage buffer unavailable while reading usage; answering from the database only")


# --- Reading usage ----------------------------------------------------------------------------------


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _by_endpoint(rows: QuerySet) -> list[dict]:
    groups = (
        rows.values("endpoint", "method")
        .annotate(requests=Count("id"), errors=Count("id", filter=ERRORS))
        .order_by("-requests", "endpoint", "method")
    )
    if connection.vendor == "postgresql":
        groups = groups.annotate(
            p50_ms=Percentile("latency_ms", fraction=0.5), p95_ms=Percentile("latency_ms", fraction=0.95)
        )
        return [
            {**group, "p50_ms": round(group["p50_ms"], 3), "p95_ms": round(group["p95_ms"], 3)}
            for group in groups
        ]
    latencies: dict[tuple[str, str], list[float]] = {}
    for endpoint, method, latency in rows.values_list("endpoint", "method", "latency_ms"):
        latencies.setdefault((endpoint, method), []).append(latency)
    result = []
    for group in groups:
        values = sorted(latencies.get((group["endpoint"], group["method"]), []))
        result.append(
            {
                **group,
                "p50_ms": round(_percentile(values, 0.5), 3),
                "p95_ms": round(_percentile(values, 0.95), 3),
            }
        )
    return result


def _buckets(start: datetime, end: datetime, granularity: str) -> list[datetime]:
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    first = start.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        first = first.replace(hour=0)
    buckets = []
    moment = first
    while moment < end:
        buckets.append(moment)
        moment += step
    return buckets


def usage_summary(*, tenant_id: str, start: datetime, end: datetime, granularity: str) -> dict:
    """GET /api/v1/usage: totals, per route pattern (with latency percentiles) and a series."""
    usage_pending_flush()
    rows = UsageLog.objects.filter(tenant_id=tenant_id, timestamp__gte=start, timestamp__lt=end)
    totals = rows.aggregate(
        requests=Count("id"),
        errors=Count("id", filter=ERRORS),
        rate_limited=Count("id", filter=Q(status_code=429)),
    )
    truncate = TruncHour if granularity == "hour" else TruncDay
    counted: dict[datetime, dict[str, int]] = {
        row["bucket"]: row  # type: ignore[misc]
        for row in rows.annotate(bucket=truncate("timestamp", tzinfo=UTC))
        .values("bucket")
        .annotate(requests=Count("id"), errors=Count("id", filter=ERRORS))
        .order_by("bucket")
    }
    series = [
        {
            "bucket": bucket,
            "requests": counted.get(bucket, {}).get("requests", 0),
            "errors": counted.get(bucket, {}).get("errors", 0),
        }
        for bucket in _buckets(start, end, granularity)
    ]
    return {
        "period": {"start": start, "end": end},
        "totals": totals,
        "by_endpoint": _by_endpoint(rows),
        "series": series,
    }


# --- Rollups, invoices, partitions ------------------------------------------------------------------


# The first key of the rollups' advisory locks (the second is the day).
ROLLUP_LOCK = 7_310_001


def usage_rollup(*, day: date) -> int:
    """Rolls one UTC day of raw rows up into DailyUsage, replacing what was there: run it twice, same
    result. A day whose raw rows are past retention is left as it is."""
    if day < raw_retention_cutoff().date():
        return 0
    rolled_at = timezone.now()
    oldest = _oldest_raw_day()
    kept = DailyUsage.objects.filter(day=day).count() if oldest is None or day < oldest else 0
    if kept:
        # Its raw rows were dropped (a shorter retention before): the rollup is all that is left of it.
        return kept
    start = _midnight(day)
    rows = UsageLog.objects.filter(timestamp__gte=start, timestamp__lt=start + timedelta(days=1))
    status_class = Case(
        When(status_code__lt=300, then=Value("2xx")),
        When(status_code__lt=400, then=Value("3xx")),
        When(status_code__lt=500, then=Value("4xx")),
        default=Value("5xx"),
    )
    groups = (
        rows.annotate(status_class=status_class)
        .values("tenant_id", "endpoint", "method", "status_class")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=ERRORS),
            rate_limited=Count("id", filter=RATE_LIMITED),
            unauthorized=Count("id", filter=UNAUTHORIZED),
            latency_ms_sum=Sum("latency_ms"),
        )
        .order_by()
    )
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Two rollups of one day (the hourly job, the billing job, a console re-run) take turns:
            # the second's delete would not see the first's new rows, and its insert would collide.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ROLLUP_LOCK, day.toordinal()])
        DailyUsage.objects.filter(day=day).delete()
        DailyUsage.objects.bulk_create(DailyUsage(day=day, **group) for group in groups)
        RollupRun.objects.update_or_create(day=day, defaults={"rolled_at": rolled_at})
    return DailyUsage.objects.filter(day=day).count()


def _oldest_raw_day() -> date | None:
    oldest = UsageLog.objects.aggregate(first=Min("timestamp"))["first"]  # the timestamp index's end
    return oldest.astimezone(UTC).date() if oldest is not None else None


# Earlier days one run of the recent rollup job catches up on at most: after a long outage, or on
# the first run after an upgrade, the backlog is spread over the hourly runs.
CATCH_UP_DAYS_PER_RUN = 7


def usage_rollup_due(*, today: date) -> list[date]:
    """The days the recent rollup job rolls up: yesterday (late events) and today, and, oldest first,
    up to CATCH_UP_DAYS_PER_RUN earlier days whose raw rows are there and that were not rolled up
    after they ended (the jobs were down)."""
    recent = [today - timedelta(days=1), today]
    oldest = _oldest_raw_day()
    if oldest is None:
        return recent
    first = max(raw_retention_cutoff().date(), oldest)
    ended = {
        run.day
        for run in RollupRun.objects.filter(day__gte=first, day__lt=recent[0])
        if run.rolled_at >= _midnight(run.day + timedelta(days=1))
    }
    earlier = (first + timedelta(days=n) for n in range((recent[0] - first).days))
    return [day for day in earlier if day not in ended][:CATCH_UP_DAYS_PER_RUN] + recent


def month_start(moment: date) -> date:
    return moment.replace(day=1)


def next_month(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _tenant_changes(tenant: Tenant) -> QuerySet:
    """The tenant's recorded changes (creation, edits, changes of status), oldest first."""
    # By the tenant's own (indexed) key first: the trail holds every key's and user's changes too.
    changes = AuditEntry.objects.filter(
        tenant_id=tenant.pk, object_type=Tenant._meta.label, object_id=str(tenant.pk)
    )
    return changes.order_by("at", "id")


def tenant_field_at(*, tenant: Tenant, field: str, moment: datetime) -> Any:
    """What one of the tenant's fields (plan, status) was at `moment`, from the audit trail: the last
    change before it, else what the first change after it found; with no change recorded, today's."""
    changes = _tenant_changes(tenant)
    last = changes.filter(at__lt=moment, after__has_key=field).values_list("after", flat=True).last()
    if last is not None:
        return last[field]
    first = changes.filter(at__gte=moment, before__has_key=field).values_list("before", flat=True).first()
    if first is not None:
        return first[field]
    if field == "status" and tenant.status == Tenant.Status.CANCELLED:
        # No history at all: cancelled by its last change, the best record of when.
        return Tenant.Status.CANCELLED if tenant.updated_at < moment else Tenant.Status.ACTIVE
    return getattr(tenant, field)


def tenant_billed_for(*, tenant: Tenant, month: date) -> bool:
    """Whether the tenant owes the month: it existed in it, and was not cancelled all through it."""
    began, ended = _midnight(month_start(month)), _midnight(next_month(month_start(month)))
    if tenant.created_at >= ended:
        return False
    cancelled = Tenant.Status.CANCELLED
    if tenant_field_at(tenant=tenant, field="status", moment=began) != cancelled:
        return True
    brought_back = _tenant_changes(tenant).filter(at__gte=began, at__lt=ended, after__has_key="status")
    return any(after["status"] != cancelled for after in brought_back.values_list("after", flat=True))


def invoice_generate(*, tenant: Tenant, month: date) -> Invoice:
    """The tenant's invoice for the month from its daily rollups; re-running replaces it in place.
    A month that has ended is billed at the plan the tenant was on when it ended (a later change of
    plan does not reprice it); a month under way, at today's."""
    first = month_start(month)
    ended = _midnight(next_month(first))
    closed = ended <= timezone.now()
    plan = tenant_field_at(tenant=tenant, field="plan", moment=ended) if closed else tenant.plan
    days = DailyUsage.objects.filter(tenant=tenant, day__gte=first, day__lt=next_month(first))
    billable = days.aggregate(billable=Coalesce(ROLLED_BILLABLE, 0))["billable"]
    price = settings.PLAN_PRICES.get(plan) or settings.PLAN_PRICES["starter"]
    overage = max(0, billable - price["included_requests"])
    overage_cents = (overage * price["overage_per_1000_cents"] + 999) // 1000
    invoice, _ = Invoice.objects.update_or_create(
        tenant=tenant,
        month=first,
        defaults={
            "plan": plan,
            "requests": billable,
            "included_requests": price["included_requests"],
            "overage_requests": overage,
            "base_cents": price["base_cents"],
            "overage_cents": overage_cents,
            "total_cents": price["base_cents"] + overage_cents,
        },
    )
    return invoice


def invoices_generate(*, month: date) -> int:
    """Stores what the usage buffer holds, rolls the month up (the days still in raw retention), then
    invoices every tenant that owes it (tenant_billed_for). A month that has not begun is refused."""
    first = month_start(month)
    if first > timezone.now().date():
        raise ValueError(f"{first:%Y-%m} has not begun: only a month under way or past is invoiced.")
    usage_pending_flush()
    day = first
    while day < min(next_month(first), timezone.now().date() + timedelta(days=1)):
        usage_rollup(day=day)
        day += timedelta(days=1)
    count = 0
    for tenant in Tenant.objects.all():
        if tenant_billed_for(tenant=tenant, month=first):
            invoice_generate(tenant=tenant, month=first)
            count += 1
        elif Invoice.objects.filter(tenant=tenant, month=first).delete()[0]:
            # Made by an earlier run on what was known then: the month is not owed.
            logger.warning(
                "Withdrew the %s invoice of tenant %s: the month is not owed", f"{first:%Y-%m}", tenant.pk
            )
    return count


def raw_retention_cutoff() -> datetime:
    return timezone.now() - timedelta(days=settings.USAGE_RAW_RETENTION_DAYS)


def raw_retention_start() -> datetime:
    """From when every request is still there row by row: the retention prunes whole days (months on
    PostgreSQL) before the cutoff, never part of the cutoff's own day."""
    return _midnight(raw_retention_cutoff().date())


PARTITIONS_LOCK = "SELECT pg_advisory_xact_lock(hashtext('usage_partitions'))"


def usage_partitions_ensure(*, months_ahead: int = 2) -> list[str]:
    """Creates the monthly partitions of usage_logs from this month to `months_ahead` on (PostgreSQL).
    Rows the default partition caught for a month without one (beat stopped for months, a host whose
    clock ran ahead) move into it: PostgreSQL refuses a partition for a range the default holds rows of."""
    if connection.vendor != "postgresql":
        return []
    created = []
    first = month_start(timezone.now().date())
    for _ in range(months_ahead + 1):
        name, bounds = (
            f"usage_logs_p{first:%Y_%m}",
            f"('{first:%Y-%m-%d}') TO ('{next_month(first):%Y-%m-%d}')",
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PARTITIONS_LOCK)
            cursor.execute("SELECT to_regclass(%s)", [name])
            if cursor.fetchone()[0] is None:
                # Held from the move to the attach: a row a flush routes to the default partition in
                # between would make PostgreSQL refuse the attach. The parent first, as DETACH takes
                # them (flushes' ROW EXCLUSIVE on the parent does not wait for this one).
                cursor.execute("LOCK TABLE usage_logs IN SHARE UPDATE EXCLUSIVE MODE")
                cursor.execute("LOCK TABLE usage_logs_default IN ACCESS EXCLUSIVE MODE")
                cursor.execute(
                    f"CREATE TABLE {name} (LIKE usage_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                )
                cursor.execute(
                    "WITH moved AS (DELETE FROM usage_logs_default "
                    'WHERE "timestamp" >= %s AND "timestamp" < %s RETURNING *) '
                    f"INSERT INTO {name} SELECT * FROM moved",  # nosec B608: a name made of a date
                    [_midnight(first), _midnight(next_month(first))],
                )
                cursor.execute(f"ALTER TABLE usage_logs ATTACH PARTITION {name} FOR VALUES FROM {bounds}")
        created.append(name)
        first = next_month(first)
    return created


def usage_partitions_prune() -> list[str]:
    """Drops raw usage older than the retention period (its days were rolled up on the days after
    them), whole partitions at a time on PostgreSQL; what the default partition caught (a month whose
    partition was missing) row by row."""
    cutoff = raw_retention_cutoff()
    if connection.vendor != "postgresql":
        # Whole days, as rollups count them: the cutoff's own day stays complete.
        UsageLog.objects.filter(timestamp__lt=_midnight(cutoff.date())).delete()
        return []
    dropped = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits "
            "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "WHERE parent.relname = 'usage_logs'"
        )
        names = [row[0] for row in cursor.fetchall()]
    for name in sorted(names):
        if not name.startswith("usage_logs_p"):
            continue
        first = datetime.strptime(name.removeprefix("usage_logs_p"), "%Y_%m").date()
        if datetime.combine(next_month(first), datetime.min.time(), tzinfo=UTC) > cutoff:
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PARTITIONS_LOCK)  # one upkeep at a time (usage_partitions_ensure)
            cursor.execute(f"ALTER TABLE usage_logs DETACH PARTITION {name}")
            cursor.execute(f"DROP TABLE {name}")
        dropped.append(name)
    with connection.cursor() as cursor:
        cursor.execute('DELETE FROM usage_logs_default WHERE "timestamp" < %s', [_midnight(cutoff.date())])
    return dropped
