"""The console refuses what the API refuses, says so in the form, and never answers odd input with a
server error; users are deactivated, never deleted; an object's history is its audit trail."""

import re

import pytest

from accounts.models import User
from apikeys.models import ApiKey
from tests.conftest import tenant_change_form


def form_errors(response) -> str:
    return " ".join(re.findall(r"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S))


def test_users_are_not_deleted_from_the_console(console, world):
    assert console.get(f"/admin/accounts/user/{world.admin.id}/delete/").status_code == 403
    choices = console.get("/admin/accounts/user/").context["action_form"].fields["action"].choices
    assert "delete_selected" not in [name for name, _ in choices]
    assert User.objects.filter(pk=world.admin.pk).exists()


@pytest.mark.parametrize(
    ("settings", "problem"),
    [('{"a": 1e999}', "infinite number"), ('{"a": NaN}', "NaN"), ('{"x": "\\ud800"}', "lone surrogate")],
)
@pytest.mark.parametrize("page", ["add", "change"])
def test_tenant_settings_json_has_no_numbers_and_texts_it_cannot_hold(
    console, world, settings, problem, page
):
    if page == "add":
        url, data = "/admin/tenants/tenant/add/", {"name": "New", "slug": "new", "plan": "starter"}
    else:
        url, data = f"/admin/tenants/tenant/{world.tenant.id}/change/", tenant_change_form(world.tenant)
    response = console.post(url, {**data, "settings": settings})
    assert response.status_code == 200
    assert problem in form_errors(response)


def test_a_tenants_first_admin_email_is_at_most_255_characters(console, world):
    email = f"{'a' * 60}.{'b' * 60}.{'c' * 60}@{'d' * 60}.{'e' * 60}.test"
    data = {"name": "Long", "slug": "long", "plan": "starter", "settings": "{}"}
    response = console.post(
        "/admin/tenants/tenant/add/", {**data, "admin_email": email, "admin_password": "Another-long-pass-1"}
    )
    assert response.status_code == 200 and "at most 255 characters" in form_errors(response)
    assert not User.objects.filter(email=email).exists()


def test_a_key_cannot_be_made_expired_from_the_console(console, world):
    data = {"tenant": str(world.tenant.id), "name": "dead", "permissions": ["read"]}
    response = console.post(
        "/admin/apikeys/apikey/add/", {**data, "expires_at_0": "2020-01-01", "expires_at_1": "00:00:00"}
    )
    assert response.status_code == 200 and "Must be in the future" in form_errors(response)
    assert not ApiKey.objects.filter(name="dead").exists()


def test_a_limit_beyond_what_the_api_allows_is_refused(console, world):
    data = tenant_change_form(world.tenant, requests_per_minute=99_999_999_999_999)
    response = console.post(f"/admin/tenants/tenant/{world.tenant.id}/change/", data)
    assert response.status_code == 200 and "2000000000" in form_errors(response)


def test_only_staff_may_be_superusers(console, world):
    url = f"/admin/accounts/user/{world.developer.id}/change/"
    form = console.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(
        tenant=str(world.tenant.id), groups=[], user_permissions=[], is_active="on", is_superuser="on"
    )
    data.update({"sessions-TOTAL_FORMS": "0", "sessions-INITIAL_FORMS": "0"})
    response = console.post(url, data)
    assert response.status_code == 200 and "Only staff can be superusers" in form_errors(response)
    assert not User.objects.get(pk=world.developer.pk).is_superuser


@pytest.mark.parametrize(
    "query",
    [
        "at__year=99999999999999999999",
        "at__year=9999&at__month=12&at__day=31",
        "at__year=2026&at__month=11&at__day=99999999999999999999",
    ],
)
def test_a_date_out_of_range_in_the_audit_drill_down_is_refused_not_a_500(console, world, query):
    response = console.get(f"/admin/tenants/auditentry/?{query}")
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


@pytest.mark.parametrize("model", ["apikeys/apikey", "accounts/user"])
def test_an_add_page_for_a_tenant_that_is_no_key_shows_none_selected(console, world, model):
    assert console.get(f"/admin/{model}/add/?tenant=garbage").status_code == 200


@pytest.mark.parametrize("model", ["tenants/tenant", "apikeys/apikey", "accounts/user", "auth/group"])
def test_an_action_on_ids_that_are_no_keys_does_nothing_and_says_so(console, world, model):
    action = {"tenants/tenant": "suspend_tenants", "apikeys/apikey": "revoke_keys"}.get(model, "force_logout")
    if model == "auth/group":
        action = "delete_selected"
    response = console.post(
        f"/admin/{model}/", {"action": action, "_selected_action": ["abc", "1 OR 1=1"]}, follow=True
    )
    assert response.status_code == 200
    assert "nothing was done" in response.content.decode()


def test_an_objects_history_is_its_audit_trail(console, world, support_console):
    from django.contrib.auth.models import Group

    response = console.get(f"/admin/tenants/tenant/{world.tenant.id}/history/")
    assert response.status_code == 302
    assert response["Location"] == (
        f"/admin/tenants/auditentry/?object_type=tenants.Tenant&object_id={world.tenant.id}"
    )
    data = {"action": "suspend_tenants", "_selected_action": [str(world.tenant.id)], "confirmed": "yes"}
    console.post("/admin/tenants/tenant/", data)
    assert "tenant.suspended" in console.get(response["Location"]).content.decode()
    # Of its own model only: an invoice and a group may share an integer id.
    group = Group.objects.get(name="Support")
    console.post(f"/admin/auth/group/{group.pk}/change/", {"name": "Support", "permissions": []})
    listed = console.get(console.get(f"/admin/auth/group/{group.pk}/history/")["Location"]).content.decode()
    assert "group.update" in listed
    assert "auth.Group" in console.get(f"/admin/auth/group/{group.pk}/history/")["Location"]
    # An object that does not exist, or one the role may not see: as Django's own history page does.
    missing = console.get("/admin/tenants/tenant/00000000-0000-0000-0000-000000000000/history/")
    assert missing.status_code == 302 and "auditentry" not in missing["Location"]
    assert support_console.get(f"/admin/auth/group/{group.pk}/history/").status_code == 403


def test_an_action_on_an_id_out_of_the_keys_range_does_nothing(console, world):
    data = {"action": "delete_selected", "_selected_action": ["99999999999999999999"]}
    response = console.post("/admin/auth/group/", data, follow=True)
    assert response.status_code == 200 and "nothing was done" in response.content.decode()


def test_actions_say_what_they_changed_and_what_already_was(console, world, make_key):
    def act(action, pk, model="tenants/tenant"):
        data = {"action": action, "_selected_action": [str(pk)], "confirmed": "yes"}
        return console.post(f"/admin/{model}/", data, follow=True).content.decode()

    assert "1 tenant(s) suspended." in act("suspend_tenants", world.tenant.id)
    again = act("suspend_tenants", world.tenant.id)
    assert "1 tenant(s) already suspended: unchanged." in again and "tenant(s) suspended." not in again
    assert "1 tenant(s) reactivated." in act("activate_tenants", world.tenant.id)
    api_key, _ = make_key()
    assert "1 key(s) revoked." in act("revoke_keys", api_key.id, "apikeys/apikey")
    again = act("revoke_keys", api_key.id, "apikeys/apikey")
    assert "1 key(s) already revoked: unchanged." in again and "key(s) revoked." not in again
