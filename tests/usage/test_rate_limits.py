import logging
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.conftest import assert_error, tenant_change_form
from usage import ratelimit
from usage.services import rate_limits_set

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """The limiter's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(ratelimit, "clock", fake)
    return fake


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
def limiter_kind(request, settings):
    """Each behaviour test runs on the in-process limiter and on real Redis."""
    ratelimit.limiter.cache_clear()
    settings.RATE_LIMIT_REDIS_URL = "" if request.param == "local" else settings.TEST_REDIS_URL
    yield request.param
    ratelimit.limiter.cache_clear()


@pytest.fixture
def key_client(make_key, probe):
    _, secret = make_key()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def limit(world, minute=None, hour=None, day=None):
    rate_limits_set(
        tenant=world.tenant, requests_per_minute=minute, requests_per_hour=hour, requests_per_day=day
    )


class TestCounting:
    def test_exactly_the_limit_passes_then_429(self, world, key_client, probe, clock, limiter_kind):
        limit(world, minute=5)
        for remaining in (4, 3, 2, 1, 0):
            response = key_client.get(probe)
            assert response.status_code == 200
            assert response["X-RateLimit-Limit"] == "5"
            assert response["X-RateLimit-Remaining"] == str(remaining)
        refused = key_client.get(probe)
        error = assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
        assert error["details"] == {"window": "minute", "limit": 5, "retry_after": 12}
        assert error["message"] == "Rate limit of 5 requests per minute exceeded; retry in 12 s."
        assert refused["Retry-After"] == "12"  # 60 s / 5 tokens: one token back every 12 s
        assert refused["X-RateLimit-Remaining"] == "0"

    def test_a_refused_request_takes_no_token_and_buckets_refill_continuously(
        self, world, key_client, probe, clock, limiter_kind
    ):
        limit(world, minute=6)
        for _ in range(6):
            assert key_client.get(probe).status_code == 200
        for _ in range(3):
            assert key_client.get(probe).status_code == 429  # refusals take nothing...
        clock.advance(10)  # ...so one token (60 s / 6) is back after 10 s
        assert key_client.get(probe).status_code == 200
        assert key_client.get(probe).status_code == 429
        clock.advance(60)
        response = key_client.get(probe)
        assert response.status_code == 200
        assert response["X-RateLimit-Remaining"] == "5"

    def test_a_changed_limit_moves_what_is_left_by_the_difference(
        self, world, key_client, probe, clock, limiter_kind
    ):
        limit(world, day=5)
        for _ in range(5):
            assert key_client.get(probe).status_code == 200
        assert key_client.get(probe).status_code == 429
        limit(world, day=100_000)  # raised: the 5 used stay used, the rest is there at once
        response = key_client.get(probe)
        assert response.status_code == 200
        assert re.search(r'"day";r=99994;t=\d+$', response["RateLimit"]), response["RateLimit"]
        for _ in range(9):
            assert key_client.get(probe).status_code == 200
        limit(world, day=10)  # lowered below the 15 used: nothing left until it refills
        assert key_client.get(probe).status_code == 429
        clock.advance(86_400 / 10)  # one of 10 a day comes back every 2.4 hours
        assert key_client.get(probe).status_code == 200

    def test_time_before_a_change_refills_at_the_old_limit(
        self, world, key_client, probe, clock, limiter_kind
    ):
        limit(world, day=100)
        for _ in range(50):
            assert key_client.get(probe).status_code == 200
        clock.advance(43_200)  # half a day at 100 a day: full again
        limit(world, day=10)  # lowered: nothing is in use, so all of the new 10 are there
        response = key_client.get(probe)
        assert re.search(r'"day";r=9;t=\d+$', response["RateLimit"]), response["RateLimit"]

    def test_a_late_clock_reading_neither_refills_nor_rewinds_the_bucket(
        self, world, key_client, probe, clock, limiter_kind
    ):
        limit(world, minute=60)  # one token a second
        assert key_client.get(probe)["X-RateLimit-Remaining"] == "59"
        clock.advance(-1)  # another process read the clock a second earlier and arrives second
        assert key_client.get(probe)["X-RateLimit-Remaining"] == "58"
        clock.advance(1)  # back to the bucket's time: the second is not credited again
        assert key_client.get(probe)["X-RateLimit-Remaining"] == "57"

    def test_jwt_requests_count_against_the_same_tenant(
        self, world, client_for, key_client, probe, clock, limiter_kind
    ):
        limit(world, minute=3)
        user = client_for(world.developer)
        assert user.get(probe).status_code == 200
        assert key_client.get(probe).status_code == 200
        assert user.get(probe)["X-RateLimit-Remaining"] == "0"
        assert_error(key_client.get(probe), 429, "RATE_LIMIT_EXCEEDED")
        # Another tenant is not affected.
        assert client_for(world.outsider).get(probe).status_code == 200

    def test_the_tightest_window_is_reported_and_refuses(self, world, key_client, probe, clock, limiter_kind):
        limit(world, minute=100, hour=2)
        first = key_client.get(probe)
        assert first["X-RateLimit-Limit"] == "2"
        assert first["X-RateLimit-Remaining"] == "1"
        assert first["X-RateLimit-Reset"] == "1800"  # one token of 2/hour comes back in 30 min
        assert first["RateLimit-Policy"] == '"minute";q=100;w=60, "hour";q=2;w=3600, "day";q=1000000;w=86400'
        assert re.fullmatch(r'"minute";r=99;t=1, "hour";r=1;t=1800, "day";r=999999;t=\d+', first["RateLimit"])
        key_client.get(probe)
        error = assert_error(key_client.get(probe), 429, "RATE_LIMIT_EXCEEDED")
        assert error["details"]["window"] == "hour"
        assert error["details"]["retry_after"] == 1800

    def test_the_window_with_the_fewest_left_is_reported_and_a_refusal_its_own(
        self, world, key_client, probe, clock, limiter_kind
    ):
        # minute=10, hour=100: eight full minutes leave the hour about 28 (28%), then five requests leave
        # the minute 5 (50%): the minute refuses first, though a smaller share of the hour is left.
        limit(world, minute=10, hour=100, day=100000)
        for _ in range(8):
            for _ in range(10):
                assert key_client.get(probe).status_code == 200
            clock.advance(61)
        for _ in range(5):
            key_client.get(probe)
        tight = key_client.get(probe)
        assert (tight["X-RateLimit-Limit"], tight["X-RateLimit-Remaining"]) == ("10", "4")
        # A burst within a minute is refused by the minute's window: the 429 reports that one.
        limit(world, minute=2, hour=1000, day=1000)
        key_client.get(probe)
        key_client.get(probe)
        refused = key_client.get(probe)
        error = assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
        assert error["details"]["window"] == "minute"
        assert (refused["X-RateLimit-Limit"], refused["X-RateLimit-Remaining"]) == ("2", "0")

    @pytest.mark.parametrize("refusal", ["revoked key", "suspended tenant", "suspended tenant's user"])
    def test_refused_credentials_take_nothing_from_the_tenants_limits(
        self, world, make_key, client_for, probe, clock, limiter_kind, refusal
    ):
        # Whoever holds a revoked key must not be able to spend the tenant's requests (or read how
        # many are left); a suspended tenant's refusals never turn into 429s that promise a retry.
        from apikeys.models import ApiKey
        from apikeys.services import api_key_revoke
        from tenants.services import tenant_status_set

        limit(world, minute=2)
        api_key, secret = make_key()
        client = client_for(world.developer) if refusal.endswith("user") else APIClient()
        if not refusal.endswith("user"):
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        if refusal == "revoked key":
            api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk), actor=None)
        else:
            tenant_status_set(tenant=world.tenant, status="suspended", actor=world.staff)
        expected = (401, "AUTHENTICATION_FAILED") if refusal == "revoked key" else (403, "TENANT_SUSPENDED")
        for _ in range(3):
            refused = client.get(probe)
            assert_error(refused, *expected)
            assert "X-RateLimit-Remaining" not in refused
        if refusal == "revoked key":  # the tenant's own traffic still has its two
            _, fresh = make_key()
            other = APIClient()
            other.credentials(HTTP_AUTHORIZATION=f"Bearer {fresh}")
            assert [other.get(probe).status_code for _ in range(3)] == [200, 200, 429]


class TestLimitsInForce:
    def test_plan_defaults_apply_without_a_row(self, world, key_client, probe, client_for, clock):
        assert key_client.get(probe)["X-RateLimit-Limit"] == str(settings.DEFAULT_RATE_LIMIT_PER_MINUTE)
        other = client_for(world.outsider).get(probe)  # the pro plan
        assert other["RateLimit-Policy"].startswith('"minute";q=5000;w=60, "hour";q=250000;w=3600')

    def test_the_tenants_row_beats_the_plan_and_null_goes_back_to_it(self, world, key_client, probe, clock):
        limit(world, minute=2)
        assert key_client.get(probe)["X-RateLimit-Limit"] == "2"
        limit(world, minute=None)
        assert key_client.get(probe)["X-RateLimit-Limit"] == "1000"

    def test_a_change_through_the_admin_api_applies_to_the_next_request(
        self, world, client_for, key_client, probe, clock
    ):
        assert key_client.get(probe)["X-RateLimit-Limit"] == "1000"  # the key is cached now
        staff = client_for(world.staff)
        url = f"/api/admin/tenants/{world.tenant.id}/rate-limits"
        response = staff.put(
            url, {"requests_per_minute": 1, "requests_per_hour": 100, "requests_per_day": 1000}
        )
        assert response.json() == {
            "requests_per_minute": 1,
            "requests_per_hour": 100,
            "requests_per_day": 1000,
        }
        # The new capacity applies at once, and the request made this minute still counts: none left.
        refused = key_client.get(probe)
        assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
        assert refused["X-RateLimit-Limit"] == "1"
        assert staff.get(url).json()["requests_per_minute"] == 1
        assert (
            staff.get(f"/api/admin/tenants/{world.tenant.id}").json()["rate_limits"]["requests_per_hour"]
            == 100
        )

    def test_staff_set_limits_inside_the_tenant_object(self, world, client_for, clock):
        staff = client_for(world.staff)
        response = staff.patch(
            f"/api/admin/tenants/{world.tenant.id}", {"rate_limits": {"requests_per_day": 7}}
        )
        assert response.status_code == 200
        assert response.json()["rate_limits"] == {
            "requests_per_minute": 1000,
            "requests_per_hour": 50000,
            "requests_per_day": 7,
        }

    def test_the_rate_limits_endpoint_validates_and_is_for_staff(self, world, client_for):
        staff = client_for(world.staff)
        url = f"/api/admin/tenants/{world.tenant.id}/rate-limits"
        error = assert_error(
            staff.put(url, {"requests_per_minute": 0, "requests_per_hour": "x"}), 400, "VALIDATION_ERROR"
        )
        assert set(error["details"]) == {"requests_per_minute", "requests_per_hour", "requests_per_day"}
        for who in ("admin", "developer", "viewer"):
            assert_error(client_for(getattr(world, who)).get(url), 403, "FORBIDDEN")
        assert_error(
            staff.get("/api/admin/tenants/00000000-0000-0000-0000-000000000000/rate-limits"), 404, "NOT_FOUND"
        )

    def test_staff_and_anonymous_requests_carry_no_tenant_headers(self, world, client_for, api):
        assert "X-RateLimit-Limit" not in client_for(world.staff).get("/api/admin/tenants")
        assert "X-RateLimit-Limit" not in api.get("/health")

    def test_the_console_edits_the_limits(self, world, console, key_client, probe, clock):
        key_client.get(probe)
        data = tenant_change_form(world.tenant, requests_per_minute=1)
        response = console.post(f"/admin/tenants/tenant/{world.tenant.id}/change/", data)
        assert response.status_code == 302, response.content.decode()[:3000]
        assert key_client.get(probe)["X-RateLimit-Limit"] == "1"
        assert_error(key_client.get(probe), 429, "RATE_LIMIT_EXCEEDED")


def test_limiting_can_be_turned_off(world, key_client, probe, clock, settings):
    limit(world, minute=1)
    settings.RATE_LIMIT_ENABLED = False
    for _ in range(3):
        response = key_client.get(probe)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response


def test_login_protection_is_separate_from_tenant_limits(world, api, clock, settings):
    limit(world, minute=1)
    settings.LOGIN_FAILURE_RATE_PER_EMAIL = "100/m"
    for _ in range(3):
        response = api.post(
            "/api/v1/auth/login",
            {"email": "admin@acme.test", "password": "Correct-horse-battery-9"},
            format="json",
        )
        assert response.status_code == 200


@pytest.mark.redis
def test_a_burst_from_several_processes_gets_exactly_the_limit(settings):
    ratelimit.RedisLimiter(settings.TEST_REDIS_URL, timeout=1.0).client.delete("ratelimit:{burst-tenant}")
    command = [sys.executable, "-m", "tests.usage.burst", settings.TEST_REDIS_URL, "burst-tenant", "40"]
    workers = [
        subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:  # all four go at once
            worker.stdin.write("go\n")
            worker.stdin.flush()
        allowed = sum(int(worker.stdout.readline()) for worker in workers)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(timeout=10)
    assert allowed == 50  # 160 attempts at once, limit 50: not one more, not one less


@contextmanager
def failing_open_once(caplog):
    """What is inside lets requests through on an unreachable limiter: counted once, and logged."""
    before = ratelimit.rate_limit_errors_total.labels("unavailable")._value.get()
    with caplog.at_level(logging.WARNING, logger="usage.ratelimit"):
        yield
    assert ratelimit.rate_limit_errors_total.labels("unavailable")._value.get() == before + 1
    assert any("Rate limiter unavailable" in record.getMessage() for record in caplog.records)


@pytest.fixture
def private_limiter(private_redis, settings):
    """The limiter on a Redis of the test's own, which it may stop, with a short timeout."""
    settings.RATE_LIMIT_REDIS_URL = private_redis.url
    settings.RATE_LIMIT_REDIS_TIMEOUT = 0.05
    ratelimit.limiter.cache_clear()
    yield private_redis
    ratelimit.limiter.cache_clear()


@pytest.mark.redis
def test_redis_going_away_fails_open_and_comes_back(
    world, key_client, probe, private_limiter, caplog, monkeypatch
):
    limit(world, minute=2)
    assert key_client.get(probe)["X-RateLimit-Remaining"] == "1"
    private_limiter.stop()
    with failing_open_once(caplog):
        for _ in range(4):
            response = key_client.get(probe)
            assert response.status_code == 200
            assert "X-RateLimit-Limit" not in response
    private_limiter.start()  # an empty Redis again, as after a restart without persistence
    monkeypatch.setattr(ratelimit, "_open_until", 0.0)
    assert key_client.get(probe)["X-RateLimit-Remaining"] == "1"
    key_client.get(probe)
    assert_error(key_client.get(probe), 429, "RATE_LIMIT_EXCEEDED")


@pytest.mark.redis
def test_a_key_first_seen_while_redis_is_away_is_let_through_with_a_log_line(
    world, key_client, probe, private_limiter, caplog, monkeypatch
):
    from apikeys import services as keys

    private_limiter.stop()
    monkeypatch.setattr(keys, "_remembered", {})  # a fresh process: its key's generation is read first
    with failing_open_once(caplog):
        assert key_client.get(probe).status_code == 200
    monkeypatch.setattr(ratelimit, "_open_until", 0.0)


@pytest.mark.redis
def test_a_script_redis_no_longer_knows_is_loaded_again(
    world, key_client, probe, private_redis, settings, clock
):
    settings.RATE_LIMIT_REDIS_URL = private_redis.url
    ratelimit.limiter.cache_clear()
    limit(world, minute=3)
    try:
        assert key_client.get(probe)["X-RateLimit-Remaining"] == "2"
        ratelimit.limiter().client.script_flush()  # as after a restart or a SCRIPT FLUSH
        assert key_client.get(probe)["X-RateLimit-Remaining"] == "1"
        assert key_client.get(probe)["X-RateLimit-Remaining"] == "0"
        assert_error(key_client.get(probe), 429, "RATE_LIMIT_EXCEEDED")
        assert not ratelimit.limiter().client.connection_pool._in_use_connections
    finally:
        ratelimit.limiter.cache_clear()
