"""In-process measurements of the hot path's parts, against the same PostgreSQL and Redis as the
server: the rate limiter's cost, recording a usage event, the engine's answer, and how fast one
flush moves usage events into PostgreSQL. `python -m bench.micro TENANT_ID USERS`; prints JSON."""

import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime


def _median_us(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e6, 1)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import random

    from recommendations import engine
    from usage import events, ratelimit, services
    from usage.limits import Limits
    from usage.models import UsageLog

    tenant_id, users = sys.argv[1], int(sys.argv[2])
    limits = Limits(10**9, 10**9, 10**9)
    ratelimit.limiter().take(tenant_id, limits)
    # The floor of any Redis call on this machine, for scale: a bare PING on the limiter's connection.
    client = ratelimit.limiter().client  # type: ignore[union-attr]
    pings = []
    for _ in range(3000):
        started = time.perf_counter()
        client.ping()
        pings.append(time.perf_counter() - started)
    limiter = []
    for _ in range(3000):
        started = time.perf_counter()
        ratelimit.rate_limit_take(tenant_id="micro-" + tenant_id, plan="enterprise", limits=limits)
        limiter.append(time.perf_counter() - started)

    def event() -> dict:
        return {
            "event_id": str(uuid.uuid4()),
            "request_id": "micro",
            "tenant_id": tenant_id,
            "api_key_id": None,
            "user_id": None,
            "endpoint": "/api/v1/micro",
            "method": "GET",
            "status_code": 200,
            "outcome": "ok",
            "latency_ms": 1.0,
            "request_size_bytes": 0,
            "response_size_bytes": 10,
            "timestamp": datetime.now(UTC).isoformat(),
        }

    recording = []
    for _ in range(3000):
        item = event()
        started = time.perf_counter()
        events.usage_event_record(item)
        recording.append(time.perf_counter() - started)

    engine.builtin_recommend(tenant_id, engine.Query(user_id="user-0"))
    answers, scoring = [], []
    index = engine.index_for(tenant_id)
    for _ in range(500):
        query = engine.Query(user_id=f"user-{random.randrange(users)}", count=10)
        started = time.perf_counter()
        engine.builtin_recommend(tenant_id, query)
        answers.append(time.perf_counter() - started)
        history = engine.user_history(tenant_id, query.user_id)
        started = time.perf_counter()
        engine._personal_scores(index, engine._profile(index, history))
        scoring.append(time.perf_counter() - started)

    services.usage_flush()  # empty the buffer of the events above
    client = events.buffer_client()
    total = 100_000
    pipe = client.pipeline(transaction=False)
    for number in range(total):
        pipe.rpush(events.BUFFER_KEY, json.dumps(event(), separators=(",", ":")))
        if number % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    before = UsageLog.objects.count()
    started = time.perf_counter()
    flushed = services.usage_flush(max_batches=10_000).inserted
    flush_seconds = time.perf_counter() - started
    UsageLog.objects.filter(endpoint="/api/v1/micro").delete()
    print(
        json.dumps(
            {
                "redis_ping_median_us": _median_us(pings),
                "limiter_median_us": _median_us(limiter),
                "limiter_p95_us": round(sorted(limiter)[int(len(limiter) * 0.95)] * 1e6, 1),
                "usage_record_median_us": _median_us(recording),
                "engine_answer_median_ms": round(statistics.median(answers) * 1000, 3),
                "engine_scoring_median_ms": round(statistics.median(scoring) * 1000, 3),
                "flush_events": flushed,
                "flush_events_per_second": round(flushed / flush_seconds),
                "usage_rows_before_flush": before,
            }
        )
    )


if __name__ == "__main__":
    main()
