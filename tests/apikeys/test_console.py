import re

from apikeys.models import ApiKey, key_digest
from tenants.models import AuditEntry, Tenant


def test_creating_a_key_shows_its_secret_once(console, world):
    response = console.post(
        "/admin/apikeys/apikey/add/",
        {
            "tenant": str(world.tenant.id),
            "name": "from console",
            "permissions": ["read"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 200
    secret = re.search(r'class="api-key-secret"[^>]*>(rk_[^<]+)<', response.content.decode()).group(1)
    api_key = ApiKey.objects.get(name="from console")
    assert api_key.key_hash == key_digest(secret)
    assert api_key.permissions == ["read"] and api_key.created_by == world.staff
    entry = AuditEntry.objects.get(object_id=str(api_key.id))
    assert (entry.actor, entry.action, entry.source) == (world.staff, "api_key.create", "console")
    # Never again: not on the change page, not in the list, not in a message.
    for page in (
        "/admin/apikeys/apikey/",
        f"/admin/apikeys/apikey/{api_key.id}/change/",
        f"/admin/tenants/tenant/{world.tenant.id}/change/",
    ):
        content = console.get(page).content.decode()
        assert api_key.prefix in content
        assert secret not in content


def test_a_cancelled_tenant_gets_no_new_key_from_the_console(console, world):
    world.tenant.status = Tenant.Status.CANCELLED
    world.tenant.save()
    response = console.post(
        "/admin/apikeys/apikey/add/",
        {
            "tenant": str(world.tenant.id),
            "name": "late",
            "permissions": ["read"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 200
    assert "it can have no new API keys" in response.content.decode()
    assert not ApiKey.objects.filter(name="late").exists()


def test_the_list_and_the_revoke_action(console, world, make_key):
    api_key, _ = make_key(name="to revoke")
    listing = console.get("/admin/apikeys/apikey/").content.decode()
    assert "to revoke" in listing and api_key.prefix in listing
    console.post("/admin/apikeys/apikey/", {"action": "revoke_keys", "_selected_action": [str(api_key.id)]})
    api_key.refresh_from_db()
    assert api_key.status == "revoked"
    assert AuditEntry.objects.filter(
        object_id=str(api_key.id), action="api_key.revoke", actor=world.staff
    ).exists()


def test_keys_cannot_be_deleted_from_the_console(console, world, make_key):
    api_key, _ = make_key()
    assert console.get(f"/admin/apikeys/apikey/{api_key.id}/delete/").status_code == 403


def test_rotating_from_the_console_shows_the_new_secrets_once(console, world, make_key):
    old, _ = make_key(name="to rotate")
    rotate = {"action": "rotate_keys", "_selected_action": [str(old.id)]}
    response = console.post("/admin/apikeys/apikey/", rotate)
    secret = re.search(r'class="api-key-secret"[^>]*>(rk_[^<]+)<', response.content.decode()).group(1)
    new = ApiKey.objects.get(rotated_from=old)
    assert new.key_hash == key_digest(secret) and new.name == "to rotate"
    old.refresh_from_db()
    assert old.status == "revoked"
    assert AuditEntry.objects.filter(
        object_id=str(old.id), action="api_key.rotate", source="console"
    ).exists()
    again = console.post("/admin/apikeys/apikey/", rotate)
    assert "No key was rotated" in again.content.decode()  # a revoked key is not rotated again


def test_a_revoked_key_is_shown_but_not_changed_in_the_console(console, world, make_key):
    api_key, _ = make_key(name="old name")
    url = f"/admin/apikeys/apikey/{api_key.id}/change/"
    assert 'name="name"' in console.get(url).content.decode()  # an active key may be renamed
    console.post("/admin/apikeys/apikey/", {"action": "revoke_keys", "_selected_action": [str(api_key.id)]})
    assert 'name="name"' not in console.get(url).content.decode()
    saved = console.post(url, {"name": "new name"}, follow=True)  # a save changes nothing, and says so
    shown = [str(message) for message in saved.context["messages"]]
    assert shown == ["Nothing was changed."]
    api_key.refresh_from_db()
    assert api_key.name == "old name"
    assert not AuditEntry.objects.filter(object_id=str(api_key.id), action="api_key.update").exists()
