"""GET /api/v1/usage: every part of the answer (totals, routes, series) is the caller's tenant's alone."""

from datetime import UTC, datetime, time, timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from tests.usage.factories import event
from usage import events

URL = "/api/v1/usage"


def noon(day):
    return datetime.combine(day, time(12), tzinfo=UTC)


def period(today):
    return {"start": f"{today - timedelta(days=2)}", "end": f"{today + timedelta(days=1)}"}


def traffic(world):
    """Ours and theirs, on a shared route and on routes of their own, on different days, with
    different latencies and errors: any of their rows counted for us changes some figure."""
    today = timezone.now().date()
    ours = [
        *(event(world.tenant, noon(today), latency=2.0) for _ in range(3)),
        event(world.tenant, noon(today), status=404, endpoint="/api/v1/items", latency=4.0),
        event(world.tenant, noon(today - timedelta(days=2)), status=429, latency=1.0),
    ]
    theirs = [
        *(event(world.other_tenant, noon(today), status=500, latency=900.0) for _ in range(5)),
        *(
            event(world.other_tenant, noon(today - timedelta(days=1)), endpoint="/api/v1/recommendations")
            for _ in range(2)
        ),
    ]
    events.usage_rows_insert(ours + theirs)
    return today


def bucket(day, requests, errors):
    return {"bucket": f"{day}T00:00:00Z", "requests": requests, "errors": errors}


def route(endpoint, requests, errors, p50, p95):
    return {
        "endpoint": endpoint,
        "method": "GET",
        "requests": requests,
        "errors": errors,
        "p50_ms": p50,
        "p95_ms": p95,
    }


def test_it_shows_a_tenant_only_its_own_routes_and_series(world, client_for):
    today = traffic(world)
    body = client_for(world.admin).get(URL, period(today)).json()
    assert body["totals"] == {"requests": 5, "errors": 1, "rate_limited": 1}
    assert body["by_endpoint"] == [
        route("/api/v1/probe", 4, 0, 2.0, 2.0),
        route("/api/v1/items", 1, 1, 4.0, 4.0),
    ]
    assert body["series"] == [
        bucket(today - timedelta(days=2), 1, 0),
        bucket(today - timedelta(days=1), 0, 0),
        bucket(today, 4, 1),
    ]


def test_the_other_tenant_sees_only_its_own_routes_and_series(world, client_for):
    # The same rows from their side: ours must not leak into their answer either.
    today = traffic(world)
    body = client_for(world.outsider).get(URL, period(today)).json()
    assert body["totals"] == {"requests": 7, "errors": 5, "rate_limited": 0}
    assert body["by_endpoint"] == [
        route("/api/v1/probe", 5, 5, 900.0, 900.0),
        route("/api/v1/recommendations", 2, 0, 2.0, 2.0),
    ]
    assert body["series"] == [
        bucket(today - timedelta(days=2), 0, 0),
        bucket(today - timedelta(days=1), 2, 0),
        bucket(today, 5, 5),
    ]


def test_an_api_key_sees_only_its_own_tenants_routes_and_series(world, make_key):
    today = traffic(world)
    _, secret = make_key(permissions=["read"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    body = client.get(URL, period(today)).json()
    assert body["totals"]["requests"] == 5
    assert [(row["endpoint"], row["requests"]) for row in body["by_endpoint"]] == [
        ("/api/v1/probe", 4),
        ("/api/v1/items", 1),
    ]
    assert [point["requests"] for point in body["series"]] == [1, 0, 4]
