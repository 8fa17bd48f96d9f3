import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from accounts.models import User
from tests.conftest import PASSWORD, assert_error

URL = "/api/v1/users"


def detail(user):
    return f"{URL}/{user.id}"


class TestAsTenantAdmin:
    def test_it_lists_only_the_tenants_users(self, world, client_for):
        response = client_for(world.admin).get(URL)
        assert response.status_code == 200
        assert [user["email"] for user in response.json()] == [
            "admin@acme.test",
            "dev@acme.test",
            "viewer@acme.test",
        ]
        assert set(response.json()[0]) == {
            "id",
            "email",
            "role",
            "is_active",
            "last_login",
            "created_at",
            "updated_at",
        }

    def test_it_creates_a_user_who_can_log_in(self, api, world, client_for):
        response = client_for(world.admin).post(
            URL, {"email": "New@Acme.test", "password": PASSWORD, "role": "developer"}
        )
        assert response.status_code == 201
        body = response.json()
        assert body["email"] == "new@acme.test"
        assert body["role"] == "developer"
        assert "password" not in body
        created = User.objects.get(pk=body["id"])
        assert created.tenant_id == world.tenant.id
        assert created.password.startswith("md5$")  # hashed (MD5 only in tests; Argon2 in settings)
        login = api.post(
            "/api/v1/auth/login", {"email": "new@acme.test", "password": PASSWORD}, format="json"
        )
        assert login.status_code == 200

    def test_it_refuses_attempts_to_set_tenant_or_staff(self, world, client_for):
        response = client_for(world.admin).post(
            URL,
            {
                "email": "sneaky@acme.test",
                "password": PASSWORD,
                "role": "viewer",
                "tenant": str(world.other_tenant.id),
                "is_staff": True,
            },
        )
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert set(error["details"]) == {"tenant", "is_staff"}
        assert "accepts: email, password, role" in error["message"]
        assert not User.objects.filter(email="sneaky@acme.test").exists()

    def test_a_field_it_cannot_change_is_refused_not_ignored(self, world, client_for):
        url = f"{URL}/{world.viewer.id}"
        response = client_for(world.admin).patch(
            url, {"password": "Another-long-pass-1", "role": "developer"}
        )
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert set(error["details"]) == {"password"}
        world.viewer.refresh_from_db()
        assert world.viewer.role == "viewer" and world.viewer.check_password(PASSWORD)

    def test_emails_are_unique_across_the_platform_ignoring_case(self, world, client_for):
        response = client_for(world.admin).post(
            URL, {"email": "ADMIN@globex.test", "password": PASSWORD, "role": "viewer"}
        )
        assert_error(response, 409, "CONFLICT")

    def test_it_validates_the_body_and_the_password(self, world, client_for):
        client = client_for(world.admin)
        error = assert_error(client.post(URL, {"email": "x", "role": "owner"}), 400, "VALIDATION_ERROR")
        assert set(error["details"]) == {"email", "password", "role"}
        error = assert_error(
            client.post(URL, {"email": "a@acme.test", "password": "password", "role": "viewer"}),
            400,
            "VALIDATION_ERROR",
        )
        assert "password" in error["details"]

    def test_it_changes_a_role(self, world, client_for):
        client = client_for(world.admin)
        response = client.patch(detail(world.viewer), {"role": "developer"})
        assert response.status_code == 200
        assert response.json()["role"] == "developer"
        assert client.get(detail(world.viewer)).json()["role"] == "developer"

    def test_deleting_deactivates_and_kills_the_users_tokens(self, api, world, client_for):
        victim = client_for(world.developer)
        assert client_for(world.admin).delete(detail(world.developer)).status_code == 204
        world.developer.refresh_from_db()
        assert world.developer.is_active is False
        assert_error(victim.get("/api/v1/auth/me"), 401, "AUTHENTICATION_FAILED")
        login = api.post(
            "/api/v1/auth/login", {"email": "dev@acme.test", "password": PASSWORD}, format="json"
        )
        assert_error(login, 401, "AUTHENTICATION_FAILED")

    def test_the_last_admin_cannot_be_removed(self, world, client_for):
        client = client_for(world.admin)
        assert_error(client.delete(detail(world.admin)), 409, "CONFLICT")
        assert_error(client.patch(detail(world.admin), {"role": "viewer"}), 409, "CONFLICT")
        client.patch(detail(world.developer), {"role": "admin"})
        assert client.patch(detail(world.admin), {"role": "viewer"}).status_code == 200

    def test_another_tenants_user_is_not_found(self, world, client_for):
        client = client_for(world.admin)
        for response in (
            client.get(detail(world.outsider)),
            client.patch(detail(world.outsider), {"role": "viewer"}),
            client.delete(detail(world.outsider)),
        ):
            assert_error(response, 404, "NOT_FOUND")
        world.outsider.refresh_from_db()
        assert world.outsider.is_active and world.outsider.role == "admin"

    def test_a_malformed_id_is_not_found(self, world, client_for):
        assert_error(client_for(world.admin).get(f"{URL}/not-a-uuid"), 404, "NOT_FOUND")


@pytest.mark.parametrize("who", ["developer", "viewer", "staff"])
def test_only_tenant_admins_manage_users(world, client_for, who):
    client = client_for(getattr(world, who))
    assert_error(client.get(URL), 403, "FORBIDDEN")
    assert_error(
        client.post(URL, {"email": "x@acme.test", "password": PASSWORD, "role": "viewer"}), 403, "FORBIDDEN"
    )
    assert_error(client.patch(detail(world.viewer), {"role": "admin"}), 403, "FORBIDDEN")
    assert_error(client.delete(detail(world.viewer)), 403, "FORBIDDEN")


def test_it_needs_credentials(api, world):
    assert_error(api.get(URL), 401, "AUTHENTICATION_FAILED")


def test_wrong_method_is_405(world, client_for):
    assert_error(client_for(world.admin).put(URL, {}), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.django_db(transaction=True)
def test_two_admins_removing_each_other_at_once_leave_one(world, client_for, monkeypatch):
    from accounts import services

    second = User.objects.create_user(
        email="second@acme.test", password=PASSWORD, tenant=world.tenant, role=User.Role.ADMIN
    )
    first_client, second_client = client_for(world.admin), client_for(second)
    # Each request waits at the check for the other (half a second at most): checked at the same
    # moment, each would see the other still active and both would go.
    both_there = threading.Barrier(2, timeout=0.5)
    check = services._other_active_admins

    def at_the_same_moment(user):
        try:
            both_there.wait()
        except threading.BrokenBarrierError:
            pass
        return check(user)

    monkeypatch.setattr(services, "_other_active_admins", at_the_same_moment)

    def remove(client, user):
        try:
            return client.delete(detail(user)).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = sorted(
            pool.map(lambda job: remove(*job), [(first_client, second), (second_client, world.admin)])
        )
    assert statuses == [204, 409]
    assert User.objects.filter(tenant=world.tenant, role=User.Role.ADMIN, is_active=True).count() == 1


def test_an_edit_from_a_copy_read_before_another_change_keeps_that_change(world):
    from accounts import services

    services.user_update(user=world.viewer, role="admin")
    # What a PATCH read before a concurrent DELETE or demotion committed: it writes only its own field.
    stale_developer = User.objects.get(pk=world.developer.pk)
    stale_admin = User.objects.get(pk=world.admin.pk)
    services.user_deactivate(user=User.objects.get(pk=world.developer.pk))
    services.user_update(user=User.objects.get(pk=world.admin.pk), role="viewer")
    services.user_update(user=stale_developer, email="dev2@acme.test")
    services.user_update(user=stale_admin, email="boss2@acme.test")
    developer, admin = User.objects.get(pk=world.developer.pk), User.objects.get(pk=world.admin.pk)
    assert (developer.email, developer.is_active) == ("dev2@acme.test", False)
    assert (admin.email, admin.role) == ("boss2@acme.test", "viewer")


def test_a_promotion_read_stale_cannot_leave_the_tenant_without_an_admin(world):
    from accounts import services
    from config.exceptions import Conflict

    stale_viewer = User.objects.get(pk=world.viewer.pk)
    services.user_update(user=User.objects.get(pk=world.viewer.pk), role="admin")
    services.user_update(user=User.objects.get(pk=world.admin.pk), role="viewer")
    # The stale copy says viewer: the last admin is only found by reading the row again.
    with pytest.raises(Conflict):
        services.user_update(user=stale_viewer, role="developer")
    assert User.objects.filter(tenant=world.tenant, role="admin", is_active=True).count() == 1


class TestAuditTrail:
    """A tenant admin's changes to its users, and a user's password change, are in the audit trail."""

    def test_it_records_who_created_changed_and_deactivated_whom(self, world, client_for):
        from tenants.models import AuditEntry

        admin = client_for(world.admin)
        created = admin.post(URL, {"email": "new@acme.test", "password": PASSWORD, "role": "viewer"}).json()
        assert admin.patch(f"{URL}/{created['id']}", {"role": "developer"}).status_code == 200
        assert admin.delete(f"{URL}/{created['id']}").status_code == 204
        entries = list(AuditEntry.objects.filter(object_id=created["id"]).order_by("id"))
        assert [entry.action for entry in entries] == ["user.create", "user.update", "user.update"]
        assert {(entry.actor_id, entry.tenant_id, entry.source) for entry in entries} == {
            (world.admin.id, world.tenant.id, "api")
        }
        assert entries[0].after["role"] == "viewer" and entries[0].before is None
        assert (entries[1].before["role"], entries[1].after["role"]) == ("viewer", "developer")
        assert (entries[2].before["is_active"], entries[2].after["is_active"]) == (True, False)
        assert "password" not in str([entry.after for entry in entries])

    def test_a_change_that_changes_nothing_is_not_recorded(self, world, client_for):
        from tenants.models import AuditEntry

        response = client_for(world.admin).patch(detail(world.viewer), {"role": "viewer"})
        assert response.status_code == 200
        assert not AuditEntry.objects.filter(object_id=str(world.viewer.id)).exists()

    def test_a_password_change_is_recorded_without_the_password(self, world, client_for):
        from tenants.models import AuditEntry

        client, other = client_for(world.developer), client_for(world.developer)
        body = {"current_password": PASSWORD, "new_password": "An0ther-long-passphrase"}
        assert client.post("/api/v1/auth/password", body).status_code == 204
        entry = AuditEntry.objects.get(action="user.password_change")
        assert (entry.actor_id, entry.object_id, entry.tenant_id) == (
            world.developer.id,
            str(world.developer.id),
            world.tenant.id,
        )
        assert entry.after == {"sessions_ended": 1}
        assert_error(other.get("/api/v1/auth/me"), 401, "AUTHENTICATION_FAILED")  # the one that ended
        assert "An0ther" not in str(entry.before) + str(entry.after)
