from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from recommendations.models import Item
from tests.conftest import PASSWORD, assert_error
from usage import ratelimit
from usage.models import UsageLog
from usage.services import rate_limits_set

URL = "/api/v1/usage"


def key_client(secret):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    return client


def rows(tenant):
    return UsageLog.objects.filter(tenant=tenant)


class TestCapture:
    @override_settings(MAX_REQUEST_BODY_BYTES=1024)
    def test_a_body_refused_unread_is_still_counted_and_rate_limited(self, world, client_for, make_key):
        _, secret = make_key()
        key = key_client(secret)
        batch = {"items": [{"id": f"i{n}", "title": "x" * 100} for n in range(20)]}
        response = key.post("/api/v1/items", batch, format="json")
        error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert error["details"] == {"limit_bytes": 1024}
        assert "X-RateLimit-Remaining" in response and "RateLimit-Policy" in response
        bad_length = key.generic("POST", "/api/v1/items", "{}", CONTENT_LENGTH="-5")
        assert_error(bad_length, 400, "VALIDATION_ERROR")
        assert not Item.objects.filter(tenant=world.tenant).exists()
        assert client_for(world.admin).get(URL).json()["totals"] == {
            "requests": 2,
            "errors": 2,
            "rate_limited": 0,
        }
        refused = rows(world.tenant).exclude(endpoint=URL).values_list("status_code", flat=True)
        assert sorted(refused) == [400, 413]
        # Elsewhere (the console) the refusal comes at once, before any authentication.
        console = client_for(world.admin).post("/admin/login/", {"x": "y" * 2000})
        assert console.status_code == 413

    def test_every_tenant_request_is_recorded_once_with_its_route_pattern(
        self, world, client_for, make_key, probe
    ):
        api_key, secret = make_key()
        user = client_for(world.developer)
        key = key_client(secret)
        key.get(probe)
        key.post(probe, {"x": 1})
        user.get(f"/api/v1/users/{world.viewer.id}")  # 403: developers do not manage users
        user.get(f"/api/v1/api-keys/{api_key.id}")
        user.get("/api/v1/api-keys/00000000-0000-0000-0000-000000000000")
        user.get(URL)  # flushes; its own event lands after its answer
        earlier = rows(world.tenant).exclude(endpoint=URL).order_by("timestamp")
        recorded = list(earlier.values_list("endpoint", "method", "status_code", "outcome"))
        assert recorded == [
            ("/api/v1/probe", "GET", 200, "ok"),
            ("/api/v1/probe", "POST", 200, "ok"),
            ("/api/v1/users/{id}", "GET", 403, "unauthorized"),
            ("/api/v1/api-keys/{id}", "GET", 200, "ok"),
            ("/api/v1/api-keys/{id}", "GET", 404, "client_error"),
        ]
        first = rows(world.tenant).get(method="POST")
        assert first.api_key_id == api_key.id and first.user_id is None
        assert first.request_size_bytes == len(b'{"x":1}') and first.response_size_bytes > 0
        assert first.latency_ms > 0
        by_user = rows(world.tenant).filter(endpoint="/api/v1/api-keys/{id}").first()
        assert by_user.user_id == world.developer.id and by_user.api_key_id is None

    def test_refusals_of_a_known_tenant_are_recorded(self, world, client_for, make_key, probe, monkeypatch):
        monkeypatch.setattr(ratelimit, "clock", lambda: 1_800_000_000.0)  # no refill between requests
        revoked, revoked_secret = make_key()
        client_for(world.admin).delete(f"/api/v1/api-keys/{revoked.id}")
        _, read_secret = make_key(permissions=["read"])
        key_client(revoked_secret).get(probe)  # 401
        key_client(read_secret).post(probe, {})  # 403
        rate_limits_set(tenant=world.tenant, requests_per_minute=3)
        key_client(read_secret).get(probe)  # of 3, the DELETE and the 403 used two: this one passes
        key_client(read_secret).get(probe)  # 429
        summary = client_for(world.staff).get(f"/api/admin/tenants/{world.tenant.id}/usage").json()
        outcomes = sorted(rows(world.tenant).values_list("status_code", "outcome"))
        assert outcomes == [
            (200, "ok"),
            (204, "ok"),
            (401, "unauthorized"),
            (403, "unauthorized"),
            (429, "rate_limited"),
        ]
        assert summary["totals"] == {"requests": 5, "errors": 2, "rate_limited": 1}

    def test_refused_access_tokens_of_the_tenants_users_are_recorded(self, world, client_for, probe):
        logged_out, deactivated = client_for(world.developer), client_for(world.viewer)
        logged_out.post("/api/v1/auth/logout-all")
        client_for(world.admin).delete(f"/api/v1/users/{world.viewer.id}")
        assert logged_out.get(probe).status_code == deactivated.get(probe).status_code == 401
        client_for(world.staff).get(f"/api/admin/tenants/{world.tenant.id}/usage")  # stores what is pending
        refused = rows(world.tenant).filter(endpoint=probe, status_code=401)
        assert refused.count() == 2 and set(refused.values_list("outcome", flat=True)) == {"unauthorized"}

    def test_a_refused_token_of_a_user_moved_away_is_not_recorded_for_the_new_tenant(
        self, world, client_for, probe
    ):
        from accounts.services import sessions_end_all

        old_token = client_for(world.developer)
        User.objects.filter(pk=world.developer.pk).update(tenant=world.other_tenant)
        sessions_end_all(user=world.developer, reason="moved")
        assert old_token.get(probe).status_code == 401
        client_for(world.staff).get(
            f"/api/admin/tenants/{world.other_tenant.id}/usage"
        )  # stores what is pending
        assert not rows(world.other_tenant).exists()

    def test_requests_without_a_tenant_are_not_recorded(self, world, api, client_for, make_key):
        api.post("/api/v1/auth/login", {"email": "admin@acme.test", "password": PASSWORD}, format="json")
        api.get("/health")
        api.get("/api/v1/api-keys")
        client_for(world.staff).get("/api/admin/tenants")
        key_client("rk_unknown").get("/api/v1/usage")
        # A tenant's two usage reads afterwards: each stores what is pending before it (with a Redis
        # buffer, the second stores the first's event; without, each is stored as it ends), and
        # nothing else is there.
        _, secret = make_key()
        key_client(secret).get("/api/v1/usage")
        key_client(secret).get("/api/v1/usage")
        assert set(UsageLog.objects.values_list("endpoint", flat=True)) == {"/api/v1/usage"}


class TestUsageEndpoint:
    def test_it_counts_exactly_and_splits_by_route_and_time(self, world, client_for, make_key, probe):
        _, secret = make_key()
        key = key_client(secret)
        for _ in range(7):
            key.get(probe)
        for _ in range(3):
            key.get("/api/v1/api-keys")  # 403: keys never manage keys
        response = client_for(world.viewer).get(URL)
        assert response.status_code == 200
        body = response.json()
        now = timezone.now()
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        assert body["period"]["start"] == month_start.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert body["totals"] == {"requests": 10, "errors": 3, "rate_limited": 0}
        by_endpoint = {(row["endpoint"], row["method"]): row for row in body["by_endpoint"]}
        assert by_endpoint[("/api/v1/probe", "GET")]["requests"] == 7
        assert by_endpoint[("/api/v1/probe", "GET")]["errors"] == 0
        assert by_endpoint[("/api/v1/api-keys", "GET")]["errors"] == 3
        probe_row = by_endpoint[("/api/v1/probe", "GET")]
        assert 0 < probe_row["p50_ms"] <= probe_row["p95_ms"]
        series = body["series"]
        assert series[0]["bucket"] == body["period"]["start"]
        assert all(
            later["bucket"] > earlier["bucket"] for earlier, later in zip(series, series[1:], strict=False)
        )
        today = now.strftime("%Y-%m-%dT00:00:00Z")
        assert [point for point in series if point["bucket"] == today] == [
            {"bucket": today, "requests": 10, "errors": 3}
        ]
        assert sum(point["requests"] for point in series) == 10

    def test_the_usage_call_itself_counts_in_the_next_answer(self, world, client_for):
        client = client_for(world.admin)
        assert client.get(URL).json()["totals"]["requests"] == 0
        assert client.get(URL).json()["totals"]["requests"] == 1

    def test_hourly_series_over_a_chosen_period(self, world, client_for, make_key, probe):
        _, secret = make_key()
        key_client(secret).get(probe)
        now = timezone.now().astimezone(UTC)
        start = (now - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=4)
        params = {"start": start.isoformat(), "end": end.isoformat(), "granularity": "hour"}
        body = client_for(world.admin).get(URL, params).json()
        assert [point["bucket"] for point in body["series"]] == [
            (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in range(4)
        ]
        assert body["series"][2]["requests"] == 1

    def test_a_period_without_usage_is_all_zeros(self, world, client_for, make_key, probe):
        _, secret = make_key()
        key_client(secret).get(probe)
        first = timezone.now().date() - timedelta(days=10)
        period = {"start": f"{first}", "end": f"{first + timedelta(days=2)}"}
        body = client_for(world.admin).get(URL, period).json()
        assert body["totals"] == {"requests": 0, "errors": 0, "rate_limited": 0}
        assert body["by_endpoint"] == []
        assert body["series"] == [
            {"bucket": f"{first}T00:00:00Z", "requests": 0, "errors": 0},
            {"bucket": f"{first + timedelta(days=1)}T00:00:00Z", "requests": 0, "errors": 0},
        ]

    def test_a_period_older_than_the_rows_kept_is_refused_not_zero(self, world, client_for, settings):
        settings.USAGE_RAW_RETENTION_DAYS = 30
        client = client_for(world.admin)
        kept_from = timezone.now().date() - timedelta(days=30)
        error = assert_error(
            client.get(URL, {"start": f"{kept_from - timedelta(days=1)}"}), 400, "VALIDATION_ERROR"
        )
        assert error["details"]["start"] == [
            f"Usage is kept request by request for 30 days: from {kept_from}. "
            "Earlier months are in /api/v1/usage/invoices."
        ]
        assert client.get(URL, {"start": f"{kept_from}"}).status_code == 200
        # Asked for by default, this month starts where the rows kept start, if that is later.
        settings.USAGE_RAW_RETENTION_DAYS = 1
        today = timezone.now().date()
        expected = max(today.replace(day=1), today - timedelta(days=1))
        assert client.get(URL).json()["period"]["start"] == f"{expected}T00:00:00Z"

    def test_only_an_end_means_the_month_it_closes(self, world, client_for):
        end = (timezone.now() + timedelta(days=40)).strftime("%Y-%m-01")
        body = client_for(world.admin).get(URL, {"end": end}).json()
        start = datetime.fromisoformat(body["period"]["start"].replace("Z", "+00:00"))
        assert body["period"]["end"] == f"{end}T00:00:00Z"
        assert start.day == 1 and 28 <= (datetime.fromisoformat(f"{end}T00:00:00+00:00") - start).days <= 31

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"start": "yesterday"}, "start"),
            ({"start": "2026-02-01", "end": "2026-01-01"}, "end"),
            ({"start": "2024-01-01", "end": "2026-01-01"}, "end"),
            ({"start": "2026-01-01", "end": "2026-03-01", "granularity": "hour"}, "granularity"),
            ({"granularity": "week"}, "granularity"),
            ({"start": "9999-12-15T00:00:00Z"}, "start"),
            ({"start": "9999-12-31T00:00:00Z", "end": "9999-12-31T23:59:59Z"}, "start"),
            ({"start": "2026-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}, "end"),
            ({"start": "0001-01-01T00:00:00-01:00"}, "start"),
            ({"start": "0001-01-01T00:00:00+01:00"}, "start"),
        ],
    )
    def test_it_validates_the_query(self, world, client_for, params, field):
        error = assert_error(client_for(world.admin).get(URL, params), 400, "VALIDATION_ERROR")
        assert field in error["details"]

    def test_another_tenants_usage_is_never_visible(self, world, client_for, make_key, probe):
        _, secret = make_key(tenant=world.other_tenant)
        for _ in range(4):
            key_client(secret).get(probe)
        assert client_for(world.admin).get(URL).json()["totals"]["requests"] == 0
        assert client_for(world.outsider).get(URL).json()["totals"]["requests"] == 4

    def test_read_keys_may_read_usage_and_staff_see_any_tenant(self, world, client_for, make_key, probe):
        _, read_secret = make_key(permissions=["read"])
        _, write_secret = make_key(permissions=["write"])
        key_client(read_secret).get(probe)
        assert key_client(read_secret).get(URL).json()["totals"]["requests"] == 1
        assert key_client(write_secret).get(URL).json()["totals"]["requests"] == 2
        staff = client_for(world.staff)
        assert staff.get(f"/api/admin/tenants/{world.tenant.id}/usage").json()["totals"]["requests"] == 3
        assert_error(staff.get(URL), 403, "FORBIDDEN")
        assert_error(
            client_for(world.admin).get(f"/api/admin/tenants/{world.tenant.id}/usage"), 403, "FORBIDDEN"
        )

    def test_it_needs_credentials(self, api, world):
        assert_error(api.get(URL), 401, "AUTHENTICATION_FAILED")
        assert_error(api.get(f"{URL}/invoices"), 401, "AUTHENTICATION_FAILED")


def test_iso_dates_and_times_are_both_accepted(world, client_for):
    client = client_for(world.admin)
    day = timezone.now().date() - timedelta(days=20)
    following = day + timedelta(days=1)
    body = client.get(URL, {"start": f"{day}T06:00:00Z", "end": f"{following}"}).json()
    assert body["period"] == {"start": f"{day}T06:00:00Z", "end": f"{following}T00:00:00Z"}
    assert body["series"][0]["bucket"] == f"{day}T00:00:00Z"
    assert datetime.fromisoformat(body["series"][-1]["bucket"].replace("Z", "+00:00")) < datetime(
        following.year, following.month, following.day, tzinfo=UTC
    )
