"""Per-tenant rate limiting: a token bucket per window (minute, hour, day), all three checked and
taken at once. With Redis that is one Lua script, one round trip, atomic across every process;
without it an in-process limiter does the same within one process. If Redis fails, requests pass."""

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest
from prometheus_client import Counter, Histogram

from config.exceptions import RateLimitExceeded
from usage.limits import WINDOWS, Limits
from usage.redis_calls import BUCKETS_SCRIPT, redis_call

LONGEST_PERIOD = max(period for _, _, period in WINDOWS)
# How long a tenant's hash outlives its last use: its buckets would be full again by then.
HASH_TTL_SECONDS = LONGEST_PERIOD + 60

logger = logging.getLogger(__name__)

# The clock of the limiter, in seconds; tests replace it to move time without sleeping.
clock: Callable[[], float] = time.time

rate_limit_decisions_total = Counter(
    "rate_limit_decisions_total",
    "Requests allowed or refused by the tenant rate limiter, by plan and refusing window.",
    ["plan", "decision", "window"],
)
rate_limit_errors_total = Counter(
    "rate_limit_errors_total", "Rate-limiter failures that let the request through (fail open).", ["reason"]
)
rate_limit_check_seconds = Histogram(
    "rate_limit_check_seconds",
    "Time spent deciding a request's rate limit.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)


@dataclass(frozen=True)
class WindowState:
    name: str
    limit: int
    period: int
    remaining: float

    @property
    def reset_seconds(self) -> int:
        """Seconds until the bucket is full again."""
        return max(0, math.ceil((self.limit - self.remaining) * self.period / self.limit))


@dataclass(frozen=True)
class Marks:
    """The tenant's change marks, read in the limiter's round trip: each is replaced after every change
    to the tenant's catalog or model, so what a process keeps of either is good while its mark stands."""

    catalog: str
    model: str


# What a process keeps under a mark is trusted this long at most, in case a renewal was lost (Redis
# unreachable at that moment).
MARKS_TRUST_SECONDS = 60.0


def mark_stands(kept_under: object, kept_at: float, current: object) -> bool:
    """Whether what a process kept under a mark (or marks) at `kept_at` (monotonic) is still good."""
    return kept_under == current and time.monotonic() - kept_at < MARKS_TRUST_SECONDS


@dataclass(frozen=True)
class Decision:
    allowed: bool
    windows: tuple[WindowState, ...]
    refused_window: str | None = None
    retry_after: float = 0.0
    marks: Marks | None = None

    @property
    def tightest(self) -> WindowState:
        """The window that refuses first: the one that refused, else the one with the fewest requests
        left (of equals, the one that takes longest to come back)."""
        if self.refused_window is not None:
            return next(window for window in self.windows if window.name == self.refused_window)
        return min(self.windows, key=lambda window: (int(window.remaining), -window.reset_seconds))

    def headers(self) -> dict[str, str]:
        tight = self.tightest
        headers = {
            "X-RateLimit-Limit": str(tight.limit),
            "X-RateLimit-Remaining": str(int(tight.remaining)),
            "X-RateLimit-Reset": str(tight.reset_seconds),
            "RateLimit-Policy": ", ".join(f'"{w.name}";q={w.limit};w={w.period}' for w in self.windows),
            "RateLimit": ", ".join(
                f'"{w.name}";r={int(w.remaining)};t={w.reset_seconds}' for w in self.windows
            ),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


def _windows(limits: Limits) -> list[tuple[str, int, int]]:
    return [(name, getattr(limits, field), period) for name, field, period in WINDOWS]


def _decision(
    windows: list[tuple[str, int, int]],
    allowed: bool,
    refused: int,
    wait: float,
    tokens: list[float],
    marks: Marks | None = None,
) -> Decision:
    states = tuple(
        WindowState(name=name, limit=limit, period=period, remaining=max(0.0, remaining))
        for (name, limit, period), remaining in zip(windows, tokens, strict=True)
    )
    return Decision(
        allowed=allowed,
        windows=states,
        refused_window=windows[refused - 1][0] if not allowed and refused else None,
        retry_after=wait,
        marks=marks,
    )


class StaleGeneration(Exception):
    """The credentials generation a process remembered is no longer the tenant's: nothing was taken."""


GENERATION_FIELD = "g"
CATALOG_MARK_FIELD, MODEL_MARK_FIELD = "c", "m"


def bucket_key(tenant_id: str) -> str:
    # The braces are a hash tag: on Redis Cluster all of a tenant's state lives in one slot.
    return f"ratelimit:{{{tenant_id}}}"


class RedisLimiter:
    def __init__(self, url: str, timeout: float) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=0
        )
        self.script = self.client.register_script(BUCKETS_SCRIPT)

    def take(self, tenant_id: str, limits: Limits | None, generation: str | None = None) -> Decision:
        windows = _windows(limits) if limits is not None else []
        args: list[float | int | str] = [clock(), generation or "", HASH_TTL_SECONDS]
        for _, limit, period in windows:
            args += [limit, period]
        result = self._run(bucket_key(tenant_id), args)
        if int(result[0]) == -1:
            raise StaleGeneration()
        allowed, refused, wait, catalog, model, *tokens = result
        return _decision(
            windows,
            bool(int(allowed)),
            int(refused),
            float(wait),
            [float(t) for t in tokens],
            Marks(catalog=catalog.decode(), model=model.decode()),
        )

    def _run(self, key: str, args: list[float | int | str]) -> list:
        """The script by its digest; one Redis does not know (a restart, a SCRIPT FLUSH) goes through
        redis-py's Script, which loads it."""
        try:
            return redis_call(self.client, "EVALSHA", self.script.sha, 1, key, *args)
        except redis.exceptions.NoScriptError:
            return self.script(keys=[key], args=args)

    def generation(self, tenant_id: str) -> str:
        """The tenant's generation, created if it has none (a hash that expired or was deleted), so
        that entries remembered under a generation that vanished can never match again."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(bucket_key(tenant_id), GENERATION_FIELD, uuid.uuid4().hex)
        pipe.hget(bucket_key(tenant_id), GENERATION_FIELD)
        pipe.expire(bucket_key(tenant_id), HASH_TTL_SECONDS)
        value = pipe.execute()[1]
        return value.decode() if isinstance(value, bytes) else str(value)

    def fields_renew(self, tenant_ids: set[str], fields: tuple[str, ...]) -> None:
        """A new random value in each field (a generation or a mark) of each tenant's hash."""
        pipe = self.client.pipeline(transaction=False)
        for tenant_id in tenant_ids:
            pipe.hset(bucket_key(tenant_id), mapping={field: uuid.uuid4().hex for field in fields})
            pipe.expire(bucket_key(tenant_id), HASH_TTL_SECONDS)
        pipe.execute()


class LocalLimiter:
    """The same buckets in this process's memory, for the embedded set-up without Redis."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, list[tuple[float, float, int]]] = {}

    def take(self, tenant_id: str, limits: Limits | None, generation: str | None = None) -> Decision:
        """`generation` is ignored: without a shared store no process remembers keys (see apikeys)."""
        if limits is None:
            return _decision([], True, 0, 0.0, [])
        windows = _windows(limits)
        now = clock()
        with self.lock:
            state = self.buckets.get(tenant_id) or [(float(limit), now, limit) for _, limit, _ in windows]
            tokens, stamps, refused, wait = [], [], 0, 0.0
            for index, ((_, limit, period), (held, since, held_limit)) in enumerate(
                zip(windows, state, strict=True), start=1
            ):
                rate = limit / period
                stamp = max(now, since)
                # As the Redis script does: refilled at the limit it was filled under, then moved.
                current = min(float(held_limit), held + (stamp - since) * held_limit / period)
                if held_limit != limit:
                    current = max(0.0, min(float(limit), current + limit - held_limit))
                tokens.append(current)
                stamps.append(stamp)
                if current < 1 and (1 - current) / rate > wait:
                    wait, refused = (1 - current) / rate, index
            allowed = refused == 0
            if allowed:
                tokens = [t - 1 for t in tokens]
            self.buckets[tenant_id] = [
                (held, stamp, limit)
                for held, stamp, (_, limit, _) in zip(tokens, stamps, windows, strict=True)
            ]
        return _decision(windows, allowed, refused, wait, tokens)

    def reset(self) -> None:
        with self.lock:
            self.buckets.clear()


@cache
def limiter() -> RedisLimiter | LocalLimiter:
    if settings.RATE_LIMIT_REDIS_URL:
        return RedisLimiter(settings.RATE_LIMIT_REDIS_URL, settings.RATE_LIMIT_REDIS_TIMEOUT)
    return LocalLimiter()


# After a Redis failure, skip Redis for a moment rather than pay its timeout on every request.
_open_until = 0.0
BACKOFF_SECONDS = 1.0


def _limiter_failed(exc: redis.RedisError) -> None:
    """Redis did not answer the limiter: it is skipped for a moment, and the metric and the log say so."""
    global _open_until
    _open_until = time.monotonic() + BACKOFF_SECONDS
    reason = "timeout" if isinstance(exc, redis.TimeoutError) else "unavailable"
    rate_limit_errors_total.labels(reason).inc()
    logger.warning("Rate limiter unavailable (%s); request let through", exc.__class__.__name__)


def rate_limit_take(
    *, tenant_id: str, plan: str, limits: Limits | None, generation: str | None = None
) -> Decision | None:
    """Takes one request from the tenant's buckets (none with `limits` None: only the generation is
    confirmed). None means the limiter failed and the request passes."""
    global _open_until
    if time.monotonic() < _open_until:
        rate_limit_errors_total.labels("backoff").inc()
        return None
    started = time.perf_counter()
    try:
        decision = limiter().take(tenant_id, limits, generation)
    except redis.RedisError as exc:
        _limiter_failed(exc)
        return None
    finally:
        rate_limit_check_seconds.observe(time.perf_counter() - started)
    if limits is not None:
        rate_limit_decisions_total.labels(
            plan, "allowed" if decision.allowed else "refused", decision.refused_window or "all"
        ).inc()
    return decision


def rate_limit_request(
    request: HttpRequest, *, tenant_id: str, plan: str, limits: Limits, generation: str | None = None
) -> bool:
    """Counts the request against its tenant; raises 429 when a window is empty.
    The decision stays on the request so the answer can carry the rate-limit headers.

    With `generation` (that of a key this process remembers) the same round trip confirms that the
    tenant's credentials have not changed since: StaleGeneration if they have, and nothing is taken.
    Returns whether that generation was confirmed."""
    enabled = settings.RATE_LIMIT_ENABLED
    if not enabled and generation is None:
        return False
    decision = rate_limit_take(
        tenant_id=tenant_id, plan=plan, limits=limits if enabled else None, generation=generation
    )
    request.rate_limit = decision if enabled else None  # type: ignore[attr-defined]
    request.tenant_marks = decision.marks if decision is not None else None  # type: ignore[attr-defined]
    if decision is not None and not decision.allowed:
        refused = decision.tightest
        retry_after = max(1, math.ceil(decision.retry_after))
        raise RateLimitExceeded(
            wait=decision.retry_after,
            detail=f"Rate limit of {refused.limit} requests per {refused.name} exceeded; "
            f"retry in {retry_after} s.",
            details={"window": refused.name, "limit": refused.limit, "retry_after": retry_after},
        )
    return decision is not None and generation is not None


def tenant_generation(tenant_id: str) -> str | None:
    """The tenant's current credentials generation; None where there is none to confirm against
    (no Redis, or Redis not answering)."""
    current = limiter()
    if not isinstance(current, RedisLimiter) or time.monotonic() < _open_until:
        return None
    try:
        return current.generation(tenant_id)
    except redis.RedisError as exc:
        _limiter_failed(exc)  # the request's own limiter call is skipped then: this is its failure
        return None


def tenant_generations_bump(tenant_ids: set[str]) -> None:
    """A new credentials generation for these tenants: every process drops the keys it remembers."""
    _fields_renew(tenant_ids, (GENERATION_FIELD,))


def tenant_marks_renew(tenant_id: str, *, catalog: bool = False, model: bool = False) -> None:
    """On a change to the tenant's catalog or model: every process drops what it keeps of it on the
    tenant's next request. Inside a transaction this is done again once it has committed, so that
    what a process read in between is dropped too."""
    fields = (CATALOG_MARK_FIELD,) * catalog + (MODEL_MARK_FIELD,) * model
    if connection.in_atomic_block:
        _marks_renew(tenant_id, fields, holding_locks=True)
        transaction.on_commit(lambda: _marks_renew(tenant_id, fields, holding_locks=False))
    else:
        _marks_renew(tenant_id, fields, holding_locks=False)


def _marks_renew(tenant_id: str, fields: tuple[str, ...], *, holding_locks: bool) -> None:
    """While the limiter skips Redis after a failure, a write holding its locks does not wait for
    Redis's timeout; once committed it tries all the same: a renewal skipped then would leave every
    process, the writer's included, on the old catalog until what they keep expires
    (MARKS_TRUST_SECONDS), though Redis may well be answering again."""
    global _open_until
    if holding_locks and time.monotonic() < _open_until:
        return
    if not _fields_renew({tenant_id}, fields):
        _open_until = time.monotonic() + BACKOFF_SECONDS


def _fields_renew(tenant_ids: set[str], fields: tuple[str, ...]) -> bool:
    """Whether Redis took the new values (or there is no Redis to take them)."""
    current = limiter()
    if not tenant_ids or not fields or not isinstance(current, RedisLimiter):
        return True
    try:
        current.fields_renew(tenant_ids, fields)
    except redis.RedisError as exc:
        # Not fatal: what a process keeps under a generation or a mark also expires by itself
        # (apikeys.services, recommendations.engine).
        logger.warning("Could not renew %s (%s)", "/".join(fields), exc.__class__.__name__)
        return False
    return True
