"""The admin API acts on the tenant of its URL only: another tenant's figures never show in its usage,
and another tenant is untouched by its PUT, PATCH, DELETE and rate-limit changes."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import AuditEntry, Tenant
from tests.usage.factories import event
from usage import events
from usage.services import rate_limits_set

URL = "/api/admin/tenants"
NEW_LIMITS = {"requests_per_minute": 7, "requests_per_hour": 70, "requests_per_day": 700}


def detail(tenant):
    return f"{URL}/{tenant.id}"


@pytest.fixture
def staff(world, client_for):
    return client_for(world.staff)


def key_client(secret):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    return client


class TestUsage:
    def test_each_tenants_usage_holds_its_own_requests_only(self, world, staff):
        today = timezone.now().date()
        noon = datetime.combine(today, time(12), tzinfo=UTC)
        yesterday_noon = noon - timedelta(days=1)
        events.usage_rows_insert(
            [
                *(event(world.tenant, noon) for _ in range(3)),
                event(world.tenant, noon, status=429),
                *(event(world.other_tenant, yesterday_noon, status=500, latency=800.0) for _ in range(5)),
                event(world.other_tenant, noon, endpoint="/api/v1/items"),
            ]
        )
        period = {"start": f"{today - timedelta(days=1)}", "end": f"{today + timedelta(days=1)}"}
        ours = staff.get(f"{detail(world.tenant)}/usage", period).json()
        theirs = staff.get(f"{detail(world.other_tenant)}/usage", period).json()
        assert ours["totals"] == {"requests": 4, "errors": 0, "rate_limited": 1}
        assert [(r["endpoint"], r["requests"], r["errors"]) for r in ours["by_endpoint"]] == [
            ("/api/v1/probe", 4, 0)
        ]
        assert [(p["requests"], p["errors"]) for p in ours["series"]] == [(0, 0), (4, 0)]
        assert theirs["totals"] == {"requests": 6, "errors": 5, "rate_limited": 0}
        assert [(r["endpoint"], r["requests"], r["errors"]) for r in theirs["by_endpoint"]] == [
            ("/api/v1/probe", 5, 5),
            ("/api/v1/items", 1, 0),
        ]
        assert [(p["requests"], p["errors"]) for p in theirs["series"]] == [(5, 5), (1, 0)]


@pytest.fixture(params=["tenant", "other_tenant"])
def sides(request, world, staff, make_key, client_for):
    """(the tenant acted on, the bystander with a working member session and key, a check that the
    bystander is exactly as it was). Both ways round: acting on the first or on the second tenant."""
    target = getattr(world, request.param)
    bystander = world.other_tenant if request.param == "tenant" else world.tenant
    member = world.outsider if bystander == world.other_tenant else world.admin
    Tenant.objects.filter(pk=bystander.pk).update(settings={"region": "eu"})
    rate_limits_set(tenant=bystander, requests_per_minute=4321, requests_per_hour=54321)
    _, secret = make_key(permissions=["read"], tenant=bystander)
    member_client = client_for(member)
    seen = staff.get(detail(bystander)).json()
    limits = staff.get(f"{detail(bystander)}/rate-limits").json()
    trail = sorted(AuditEntry.objects.filter(tenant=bystander).values_list("pk", flat=True))

    def untouched():
        assert staff.get(detail(bystander)).json() == seen
        assert staff.get(f"{detail(bystander)}/rate-limits").json() == limits
        assert sorted(AuditEntry.objects.filter(tenant=bystander).values_list("pk", flat=True)) == trail
        assert member_client.get("/api/v1/auth/me").status_code == 200
        assert key_client(secret).get("/api/v1/usage").status_code == 200

    assert seen["status"] == "active" and seen["settings"] == {"region": "eu"}
    assert limits["requests_per_minute"] == 4321
    return target, untouched


class TestChangesLeaveTheOtherTenantAlone:
    def test_put(self, sides, staff):
        target, untouched = sides
        body = {
            "name": "Renamed",
            "slug": f"{target.slug}-renamed",
            "plan": "enterprise",
            "settings": {"changed": True},
            "rate_limits": NEW_LIMITS,
        }
        response = staff.put(detail(target), body, format="json")
        assert response.status_code == 200, response.content
        assert {name: response.json()[name] for name in body} == body
        untouched()

    def test_patch(self, sides, staff):
        target, untouched = sides
        body = {"name": "Patched", "settings": {"patched": 1}, "rate_limits": NEW_LIMITS}
        response = staff.patch(detail(target), body, format="json")
        assert response.status_code == 200, response.content
        assert {name: response.json()[name] for name in body} == body
        untouched()

    @pytest.mark.parametrize("status", ["suspended", "cancelled"])
    def test_patch_of_the_status(self, sides, staff, status):
        target, untouched = sides
        assert staff.patch(detail(target), {"status": status}).json()["status"] == status
        untouched()

    def test_delete(self, sides, staff):
        target, untouched = sides
        assert staff.delete(detail(target)).status_code == 204
        assert staff.get(detail(target)).json()["status"] == "cancelled"
        untouched()

    def test_put_of_the_rate_limits(self, sides, staff):
        target, untouched = sides
        response = staff.put(f"{detail(target)}/rate-limits", NEW_LIMITS, format="json")
        assert response.json() == NEW_LIMITS
        assert staff.get(f"{detail(target)}/rate-limits").json() == NEW_LIMITS
        untouched()
