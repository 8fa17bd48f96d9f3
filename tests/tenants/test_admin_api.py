import json

import pytest

from accounts.models import User
from tenants.models import Tenant
from tests.conftest import PASSWORD, assert_error

URL = "/api/admin/tenants"


def detail(tenant):
    return f"{URL}/{tenant.id}"


@pytest.fixture
def staff(world, client_for):
    return client_for(world.staff)


class TestList:
    def test_it_lists_every_tenant_with_its_rate_limits(self, world, staff):
        response = staff.get(URL)
        assert response.status_code == 200
        body = response.json()
        assert [tenant["slug"] for tenant in body] == ["acme", "globex"]
        assert set(body[0]) == {
            "id",
            "name",
            "slug",
            "plan",
            "status",
            "settings",
            "rate_limits",
            "created_at",
            "updated_at",
        }
        assert body[0]["rate_limits"] == {
            "requests_per_minute": 1000,
            "requests_per_hour": 50000,
            "requests_per_day": 1000000,
        }

    def test_it_filters_by_status_and_plan(self, world, staff):
        Tenant.objects.filter(pk=world.other_tenant.pk).update(status="suspended")
        assert [t["slug"] for t in staff.get(URL, {"status": "suspended"}).json()] == ["globex"]
        assert [t["slug"] for t in staff.get(URL, {"plan": "starter"}).json()] == ["acme"]
        assert staff.get(URL, {"plan": "pro", "status": "active"}).json() == []

    def test_it_refuses_an_unknown_filter_value(self, world, staff):
        error = assert_error(staff.get(URL, {"status": "sleeping"}), 400, "VALIDATION_ERROR")
        assert "status" in error["details"]


class TestCreate:
    def test_it_creates_a_tenant_with_its_first_admin(self, api, world, staff):
        response = staff.post(
            URL,
            {
                "name": "Initech",
                "slug": "initech",
                "plan": "enterprise",
                "settings": {"region": "eu"},
                "admin_user": {"email": "boss@initech.test", "password": PASSWORD},
            },
        )
        assert response.status_code == 201
        body = response.json()
        assert body["status"] == "active"
        assert body["settings"] == {"region": "eu"}
        assert body["admin_user"]["email"] == "boss@initech.test"
        assert body["admin_user"]["role"] == "admin"
        login = api.post(
            "/api/v1/auth/login", {"email": "boss@initech.test", "password": PASSWORD}, format="json"
        )
        assert login.json()["user"]["tenant"]["slug"] == "initech"

    def test_it_creates_a_tenant_alone(self, world, staff):
        response = staff.post(URL, {"name": "Solo", "slug": "solo", "plan": "starter"})
        assert response.status_code == 201
        assert response.json()["plan"] == "starter"
        assert response.json()["admin_user"] is None

    def test_the_plan_is_not_optional(self, world, staff):
        error = assert_error(staff.post(URL, {"name": "Solo", "slug": "solo"}), 400, "VALIDATION_ERROR")
        assert set(error["details"]) == {"plan"}
        assert not Tenant.objects.filter(slug="solo").exists()

    @pytest.mark.parametrize("slug", ["acme", "ACME", "Acme"])
    def test_a_duplicate_slug_in_any_case_is_a_conflict(self, world, staff, slug):
        assert_error(staff.post(URL, {"name": "Acme 2", "slug": slug, "plan": "pro"}), 409, "CONFLICT")
        assert Tenant.objects.filter(slug__iexact="acme").count() == 1

    def test_a_taken_admin_email_creates_nothing(self, world, staff):
        response = staff.post(
            URL,
            {
                "name": "Dup",
                "slug": "dup",
                "plan": "starter",
                "admin_user": {"email": "admin@acme.test", "password": PASSWORD},
            },
        )
        assert_error(response, 409, "CONFLICT")
        assert not Tenant.objects.filter(slug="dup").exists()

    def test_it_validates(self, world, staff):
        error = assert_error(staff.post(URL, {"slug": "has spaces", "plan": "gold"}), 400, "VALIDATION_ERROR")
        assert set(error["details"]) == {"name", "slug", "plan"}
        response = staff.post(
            URL,
            {
                "name": "W",
                "slug": "weak",
                "plan": "pro",
                "admin_user": {"email": "a@weak.test", "password": "123"},
            },
        )
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert "admin_user" in error["details"]
        assert not Tenant.objects.filter(slug="weak").exists()
        error = assert_error(
            staff.post(URL, {"name": "S", "slug": "s", "plan": "pro", "settings": [1]}),
            400,
            "VALIDATION_ERROR",
        )
        assert "settings" in error["details"]
        deep: dict = {}
        for _ in range(200):
            deep = {"a": deep}
        error = assert_error(
            staff.post(URL, {"name": "D", "slug": "d", "plan": "pro", "settings": deep}),
            400,
            "VALIDATION_ERROR",
        )
        assert error["details"] == {"settings": ["Must not nest deeper than 32 levels."]}

    def test_fields_it_would_drop_are_refused(self, world, staff):
        body = {"name": "Quiet", "slug": "quiet", "plan": "pro"}
        error = assert_error(staff.post(URL, {**body, "status": "suspended"}), 400, "VALIDATION_ERROR")
        assert "status" in error["details"]  # else it would be created active, its keys working
        error = assert_error(staff.post(URL, {**body, "bogus": 1}), 400, "VALIDATION_ERROR")
        assert "bogus" in error["details"]
        assert not Tenant.objects.filter(slug="quiet").exists()
        assert staff.post(URL, {**body, "status": "active"}).status_code == 201


class TestDetail:
    def test_it_gets_one(self, world, staff):
        body = staff.get(detail(world.other_tenant)).json()
        assert body["slug"] == "globex"
        assert body["rate_limits"]["requests_per_minute"] == 5000

    def test_put_replaces_and_patch_amends(self, world, staff):
        response = staff.put(
            detail(world.tenant),
            {"name": "Acme Corp", "slug": "acme-corp", "plan": "pro", "settings": {"a": 1}},
        )
        assert response.status_code == 200
        assert response.json()["slug"] == "acme-corp"
        assert response.json()["plan"] == "pro"
        response = staff.patch(detail(world.tenant), {"status": "suspended"})
        assert response.json()["status"] == "suspended"
        assert response.json()["name"] == "Acme Corp"
        assert_error(staff.put(detail(world.tenant), {"name": "No slug"}), 400, "VALIDATION_ERROR")

    def test_unknown_fields_are_refused_and_what_was_read_may_come_back(self, world, staff):
        error = assert_error(staff.patch(detail(world.tenant), {"bogus": 1}), 400, "VALIDATION_ERROR")
        assert "bogus" in error["details"]
        read = staff.get(detail(world.tenant)).json()
        assert staff.put(detail(world.tenant), {**read, "name": "Acme Two"}).json()["name"] == "Acme Two"

    def test_unknown_fields_of_limits_and_of_the_first_admin_are_refused(self, world, staff):
        limits = {"requests_per_minute": 5, "requests_per_hour": None, "requests_per_day": None}
        for response in (
            staff.put(f"{detail(world.tenant)}/rate-limits", {**limits, "burst": 3}),
            staff.patch(detail(world.tenant), {"rate_limits": {**limits, "burst": 3}}),
        ):
            error = assert_error(response, 400, "VALIDATION_ERROR")
            assert "burst" in json.dumps(error["details"])
        assert staff.get(detail(world.tenant)).json()["rate_limits"]["requests_per_minute"] != 5
        admin_user = {"email": "boss@n2.test", "password": PASSWORD, "role": "viewer"}
        response = staff.post(URL, {"name": "N", "slug": "n2", "plan": "starter", "admin_user": admin_user})
        assert "role" in json.dumps(assert_error(response, 400, "VALIDATION_ERROR")["details"])
        assert not Tenant.objects.filter(slug="n2").exists()

    def test_limits_read_and_sent_back_stay_the_plans(self, world, staff):
        read = staff.get(detail(world.tenant)).json()  # the starter plan's defaults
        assert staff.put(detail(world.tenant), read).status_code == 200
        url = f"{detail(world.tenant)}/rate-limits"
        assert staff.put(url, read["rate_limits"]).status_code == 200
        upgraded = staff.patch(detail(world.tenant), {"plan": "enterprise"}).json()
        staff.patch(detail(world.other_tenant), {"plan": "enterprise"})
        enterprise = staff.get(detail(world.other_tenant)).json()["rate_limits"]
        assert upgraded["rate_limits"] == enterprise != read["rate_limits"]
        # A real change is still made, and null goes back to the plan's default.
        changed = staff.put(url, {**enterprise, "requests_per_minute": 7}).json()
        assert changed["requests_per_minute"] == 7
        assert staff.put(url, {**changed, "requests_per_minute": None}).json() == enterprise

    def test_a_plans_default_sent_with_the_plan_is_not_pinned(self, world, staff):
        url = f"{detail(world.tenant)}/rate-limits"
        staff.put(url, {"requests_per_minute": 7, "requests_per_hour": None, "requests_per_day": None})
        pro = staff.get(detail(world.other_tenant)).json()["rate_limits"]  # globex is on pro
        moved = staff.patch(detail(world.tenant), {"plan": "pro", "rate_limits": pro}).json()
        assert moved["rate_limits"] == pro
        back = staff.patch(detail(world.tenant), {"plan": "starter"}).json()
        assert back["rate_limits"]["requests_per_minute"] == 1000  # starter's: neither 7 nor pro's

    def test_limits_created_equal_to_the_plans_follow_the_plan_as_sent_later_do(self, world, staff):
        starter = staff.get(detail(world.tenant)).json()["rate_limits"]
        body = {
            "name": "Twin",
            "slug": "twin",
            "plan": "starter",
            "rate_limits": {**starter, "requests_per_day": 9},
        }
        created = staff.post(URL, body).json()
        pro = staff.get(detail(world.other_tenant)).json()["rate_limits"]
        moved = staff.patch(f"{URL}/{created['id']}", {"plan": "pro"}).json()["rate_limits"]
        assert moved == {**pro, "requests_per_day": 9}  # the plan's defaults moved, its own stayed

    def test_renaming_onto_a_taken_slug_is_a_conflict(self, world, staff):
        assert_error(staff.patch(detail(world.tenant), {"slug": "globex"}), 409, "CONFLICT")
        assert_error(staff.patch(detail(world.tenant), {"slug": "GloBex"}), 409, "CONFLICT")
        assert staff.patch(detail(world.tenant), {"slug": "ACME"}).json()["slug"] == "ACME"  # its own

    def test_delete_cancels_and_keeps_the_data(self, world, staff, client_for):
        member = client_for(world.viewer)
        assert staff.delete(detail(world.tenant)).status_code == 204
        world.tenant.refresh_from_db()
        assert world.tenant.status == "cancelled"
        assert User.objects.filter(tenant=world.tenant).count() == 3
        assert_error(member.get("/api/v1/auth/me"), 403, "TENANT_CANCELLED")

    def test_suspending_locks_the_tenants_users_out_at_once(self, world, staff, client_for):
        member = client_for(world.admin)
        staff.patch(detail(world.tenant), {"status": "suspended"})
        assert_error(member.get("/api/v1/users"), 403, "TENANT_SUSPENDED")
        staff.patch(detail(world.tenant), {"status": "active"})
        assert member.get("/api/v1/users").status_code == 200

    def test_a_change_whose_last_part_fails_changes_nothing(self, world):
        from tenants.models import AuditEntry
        from tenants.services import tenant_update

        with pytest.raises(TypeError):
            tenant_update(
                tenant=Tenant.objects.get(pk=world.tenant.pk),
                actor=world.staff,
                name="Renamed",
                rate_limits={"requests_per_week": 5},
            )
        assert Tenant.objects.get(pk=world.tenant.pk).name == world.tenant.name
        assert not AuditEntry.objects.filter(action="tenant.update").exists()

    def test_an_unknown_id_is_not_found(self, world, staff):
        assert_error(staff.get(f"{URL}/00000000-0000-0000-0000-000000000000"), 404, "NOT_FOUND")


@pytest.mark.parametrize("who", ["admin", "developer", "viewer"])
def test_tenant_users_may_not_use_the_admin_api(world, client_for, who):
    client = client_for(getattr(world, who))
    assert_error(client.get(URL), 403, "FORBIDDEN")
    assert_error(client.post(URL, {"name": "X", "slug": "x"}), 403, "FORBIDDEN")
    assert_error(client.get(detail(world.tenant)), 403, "FORBIDDEN")
    assert_error(client.patch(detail(world.tenant), {"plan": "enterprise"}), 403, "FORBIDDEN")
    assert_error(client.delete(detail(world.other_tenant)), 403, "FORBIDDEN")
    world.tenant.refresh_from_db()
    assert world.tenant.plan == "starter"


def test_it_needs_credentials(api, world):
    assert_error(api.get(URL), 401, "AUTHENTICATION_FAILED")
