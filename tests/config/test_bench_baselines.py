"""The benchmark's baselines served by the application (bench.app_urls): they answer, and D makes the
limiter's call it is there to measure."""

from django.test import override_settings
from rest_framework.test import APIClient

from bench.app_urls import BENCH_TENANT
from bench.baseline_urls import PAYLOAD
from usage.ratelimit import LocalLimiter, bucket_key, limiter


@override_settings(ROOT_URLCONF="bench.app_urls")
def test_it_serves_the_baselines_behind_the_middleware_and_d_takes_from_the_limiter() -> None:
    client = APIClient()
    for path in ("/api/v1/bench-baseline", "/api/v1/bench-limiter"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json() == PAYLOAD
        assert response["X-Request-ID"]  # through the application's middleware
    active = limiter()
    if isinstance(active, LocalLimiter):
        assert BENCH_TENANT in active.buckets
    else:
        assert active.client.exists(bucket_key(BENCH_TENANT))
