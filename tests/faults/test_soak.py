"""A bounded soak with accounting: 20,000 requests from 4 tenants at 32 concurrent connections against
gunicorn (2 workers, PostgreSQL, Redis). No 5xx; every tenant's usage is exactly its requests; the
tenant with a small limit gets exactly its limit through (plus the tokens its buckets earn back during
the run), and every refusal is counted as rate limited."""

import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from apikeys.services import api_key_create
from tenants.models import Tenant
from tests.live import Gunicorn
from usage.services import rate_limits_set, usage_summary

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

PER_TENANT = 5_000
LIMITED = 1_000


def test_twenty_thousand_requests_counted_exactly(tmp_path):
    tenants = [Tenant.objects.create(name=f"Soak {n}", slug=f"soak-{n}") for n in range(4)]
    keys = {
        tenant.slug: api_key_create(tenant=tenant, name="k", permissions=["read"])[1] for tenant in tenants
    }
    for tenant in tenants[:3]:
        rate_limits_set(
            tenant=tenant, requests_per_minute=10**9, requests_per_hour=10**9, requests_per_day=10**9
        )
    # Every bucket starts full and the day's refills one token every 86.4 s: LIMITED requests pass, plus
    # what the day's bucket earns back while the run lasts, and not one more.
    rate_limits_set(
        tenant=tenants[3], requests_per_minute=LIMITED, requests_per_hour=LIMITED, requests_per_day=LIMITED
    )
    # Fail-open on a slow Redis is tested on its own; here a busy machine must not let requests through.
    server = Gunicorn(tmp_path, workers=2, RATE_LIMIT_REDIS_TIMEOUT="5").start()
    sessions = threading.local()

    def call(slug: str) -> tuple[str, int]:
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        response = sessions.session.get(
            server.url + "/api/v1/usage/invoices", headers={"X-API-Key": keys[slug]}, timeout=60
        )
        return slug, response.status_code

    plan = [tenant.slug for tenant in tenants for _ in range(PER_TENANT)]
    plan = [plan[(i * 7919) % len(plan)] for i in range(len(plan))]  # interleaved tenants
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            outcomes = Counter(pool.map(call, plan))
        refilled = math.floor((time.monotonic() - started) * LIMITED / 86_400)
        assert sum(outcomes.values()) == 4 * PER_TENANT
        assert not [status for (_, status) in outcomes if status >= 500]
        for tenant in tenants[:3]:
            assert outcomes[(tenant.slug, 200)] == PER_TENANT
        limited = tenants[3].slug
        passed = outcomes[(limited, 200)]
        assert LIMITED <= passed <= LIMITED + refilled
        assert outcomes[(limited, 429)] == PER_TENANT - passed
        for tenant in tenants[:3]:
            usage = requests.get(
                server.url + "/api/v1/usage", headers={"X-API-Key": keys[tenant.slug]}, timeout=60
            )
            assert usage.json()["totals"] == {"requests": PER_TENANT, "errors": 0, "rate_limited": 0}
        now = timezone.now()
        totals = usage_summary(
            tenant_id=str(tenants[3].id),
            start=now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
            end=now + timedelta(days=1),
            granularity="day",
        )["totals"]
        assert totals == {"requests": PER_TENANT, "errors": 0, "rate_limited": PER_TENANT - passed}
    finally:
        server.stop()
