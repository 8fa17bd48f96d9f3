"""Sessions are a user's own: listing them, logging out everywhere, and staff's force logout and
password reset in the console never show or end another user's, of this tenant or another."""

import pytest

from accounts.models import UserSession
from tenants.models import AuditEntry
from tests.conftest import PASSWORD

ME = "/api/v1/auth/me"


@pytest.fixture
def everyone(world, client_for):
    """Two open sessions for each tenant user, one for the staff user: {user: [client, client]}."""
    users = (world.admin, world.developer, world.viewer, world.outsider)
    clients = {user: [client_for(user), client_for(user)] for user in users}
    clients[world.staff] = [client_for(world.staff)]
    return clients


def open_session_ids(user):
    return {
        str(pk)
        for pk in UserSession.objects.filter(user=user, ended_at__isnull=True).values_list("pk", flat=True)
    }


def assert_still_logged_in(everyone, *users):
    assert users
    for user in users:
        assert len(open_session_ids(user)) == len(everyone[user]), user.email
        for client in everyone[user]:
            assert client.get(ME).status_code == 200, user.email


def assert_logged_out(everyone, user):
    assert open_session_ids(user) == set()
    for client in everyone[user]:
        assert client.get(ME).status_code == 401


@pytest.mark.parametrize("who", ["admin", "outsider"])
def test_the_session_list_holds_the_callers_own_sessions_only(world, everyone, who):
    user = getattr(world, who)
    listed = everyone[user][0].get("/api/v1/auth/sessions").json()
    assert {session["id"] for session in listed} == open_session_ids(user)
    assert len(listed) == 2


@pytest.mark.parametrize("who", ["admin", "outsider"])
def test_logout_all_ends_the_callers_sessions_only(world, everyone, who):
    user = getattr(world, who)
    assert everyone[user][0].post("/api/v1/auth/logout-all").status_code == 204
    assert_logged_out(everyone, user)
    assert_still_logged_in(everyone, *(other for other in everyone if other != user))


def test_force_logout_ends_the_selected_users_sessions_only(world, everyone, console):
    selected = {"action": "force_logout", "_selected_action": [str(world.developer.id)]}
    assert console.post("/admin/accounts/user/", selected).status_code == 302
    assert_logged_out(everyone, world.developer)
    assert_still_logged_in(everyone, *(other for other in everyone if other != world.developer))
    forced = AuditEntry.objects.filter(action="user.force_logout").values_list("object_id", flat=True)
    assert list(forced) == [str(world.developer.id)]


def test_a_password_reset_in_the_console_ends_that_users_sessions_only(world, everyone, console):
    new = "Reset-by-staff-42"
    response = console.post(
        f"/admin/accounts/user/{world.developer.id}/password/",
        {"password1": new, "password2": new, "usable_password": "true"},
    )
    assert response.status_code == 302
    assert_logged_out(everyone, world.developer)
    assert_still_logged_in(everyone, *(other for other in everyone if other != world.developer))
    for user in (world.admin, world.viewer, world.outsider):
        user.refresh_from_db()
        assert user.check_password(PASSWORD), user.email
    reset = AuditEntry.objects.filter(action="user.password_reset").values_list("object_id", flat=True)
    assert list(reset) == [str(world.developer.id)]
