import hashlib
from datetime import datetime, timedelta
from unittest import mock

import pytest
import redis
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys.models import ApiKey
from apikeys.services import api_key_revoke, api_keys_cache_invalidate, cache_key
from tenants.models import AuditEntry, Tenant
from tests.conftest import assert_error
from usage import ratelimit
from usage.events import buffer_client

URL = "/api/v1/api-keys"
KEY_FIELDS = {"id", "name", "prefix", "permissions", "status", "created_at", "expires_at", "last_used_at"}


def detail(api_key, suffix=""):
    return f"{URL}/{api_key.id}{suffix}"


def key_client(secret, header="bearer"):
    client = APIClient()
    if header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    else:
        client.credentials(HTTP_X_API_KEY=secret)
    return client


class TestCreate:
    @pytest.mark.parametrize("who", ["admin", "developer"])
    def test_it_shows_the_secret_once_and_stores_only_its_digest(self, world, client_for, who):
        client = client_for(getattr(world, who))
        response = client.post(URL, {"name": "Production", "permissions": ["read"]})
        assert response.status_code == 201
        body = response.json()
        assert set(body) == KEY_FIELDS | {"key"}
        secret = body["key"]
        assert secret.startswith("rk_") and len(secret) >= 3 + 43  # 256 bits, base64url
        assert secret.startswith(body["prefix"]) and len(body["prefix"]) < len(secret) // 2
        assert body["status"] == "active" and body["permissions"] == ["read"]
        row = ApiKey.objects.get(pk=body["id"])
        assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert row.created_by == getattr(world, who)
        stored = " ".join(str(value) for value in ApiKey.objects.filter(pk=row.pk).values().first().values())
        assert secret not in stored and secret[len(body["prefix"]) :] not in stored
        for page in (client.get(URL), client.get(detail(row))):
            assert secret not in page.content.decode()
            assert "key" not in (page.json()[0] if isinstance(page.json(), list) else page.json())

    def test_it_defaults_to_read_and_write_and_accepts_an_expiry(self, world, client_for):
        expires = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = client_for(world.admin).post(URL, {"name": "CI", "expires_at": expires}).json()
        assert body["permissions"] == ["read", "write"]
        assert body["expires_at"] == expires

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({}, "name"),
            ({"name": "x" * 129}, "name"),
            ({"name": "k", "permissions": ["admin"]}, "permissions"),
            ({"name": "k", "permissions": []}, "permissions"),
            ({"name": "k", "permissions": ["read", "read"]}, "permissions"),
            ({"name": "k", "permissions": "read"}, "permissions"),
            ({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
            ({"name": "k", "expires_at": "soon"}, "expires_at"),
        ],
    )
    def test_it_validates(self, world, client_for, payload, field):
        error = assert_error(client_for(world.admin).post(URL, payload), 400, "VALIDATION_ERROR")
        assert field in error["details"]

    def test_it_is_recorded_in_the_audit_trail(self, world, client_for):
        body = client_for(world.developer).post(URL, {"name": "Audited"}).json()
        entry = AuditEntry.objects.get(object_id=body["id"], action="api_key.create")
        assert entry.actor == world.developer and entry.tenant == world.tenant and entry.source == "api"
        assert entry.after["prefix"] == body["prefix"]
        assert body["key"] not in str(entry.after) and body["key"][len(body["prefix"]) :] not in str(
            entry.after
        )


class TestManage:
    def test_list_and_get_show_only_the_tenants_keys(self, world, client_for, make_key):
        mine, _ = make_key(name="mine")
        theirs, _ = make_key(name="theirs", tenant=world.other_tenant)
        client = client_for(world.developer)
        listed = client.get(URL).json()
        assert [key["name"] for key in listed] == ["mine"]
        assert set(listed[0]) == KEY_FIELDS
        assert client.get(detail(mine)).json()["id"] == str(mine.id)
        assert_error(client.get(detail(theirs)), 404, "NOT_FOUND")

    def test_patch_renames_and_changes_permissions(self, world, client_for, make_key):
        api_key, _ = make_key()
        response = client_for(world.developer).patch(
            detail(api_key), {"name": "renamed", "permissions": ["read"]}
        )
        assert response.status_code == 200
        assert response.json()["name"] == "renamed" and response.json()["permissions"] == ["read"]
        entry = AuditEntry.objects.get(object_id=str(api_key.id), action="api_key.update")
        assert entry.before["permissions"] == ["read", "write"] and entry.after["permissions"] == ["read"]

    def test_delete_revokes_and_keeps_the_row(self, world, client_for, make_key):
        api_key, secret = make_key()
        client = client_for(world.admin)
        assert client.delete(detail(api_key)).status_code == 204
        api_key.refresh_from_db()
        assert api_key.status == "revoked" and api_key.revoked_at is not None
        assert client.get(detail(api_key)).json()["status"] == "revoked"
        assert client.delete(detail(api_key)).status_code == 204  # revoking twice is harmless
        entry = AuditEntry.objects.get(object_id=str(api_key.id), action="api_key.revoke")
        assert (
            entry.actor == world.admin
            and entry.before["status"] == "active"
            and entry.after["status"] == "revoked"
        )

    @pytest.mark.parametrize("who", ["admin", "developer", "viewer"])
    def test_another_tenants_key_is_not_found_for_any_action(self, world, client_for, make_key, who):
        theirs, secret = make_key(tenant=world.other_tenant)
        client = client_for(getattr(world, who))
        for response in (
            client.get(detail(theirs)),
            client.patch(detail(theirs), {"name": "pwned"}),
            client.delete(detail(theirs)),
            client.post(detail(theirs, "/rotate"), {}),
        ):
            if who == "viewer":  # refused by role before the key is even looked for
                assert_error(response, 403, "FORBIDDEN")
            else:
                assert_error(response, 404, "NOT_FOUND")
        theirs.refresh_from_db()
        assert theirs.name == "server" and theirs.status == "active"

    def test_a_key_cannot_be_created_for_another_tenant(self, world, client_for):
        client = client_for(world.admin)
        body = {"name": "planted", "permissions": ["read"], "tenant": str(world.other_tenant.id)}
        error = assert_error(client.post(URL, body, format="json"), 400, "VALIDATION_ERROR")
        assert "tenant" in error["details"]
        assert not ApiKey.objects.filter(name="planted").exists()

    def test_viewers_may_not_even_look(self, world, client_for, make_key):
        api_key, _ = make_key()
        client = client_for(world.viewer)
        assert_error(client.get(URL), 403, "FORBIDDEN")
        assert_error(client.get(detail(api_key)), 403, "FORBIDDEN")
        assert_error(client.post(URL, {"name": "nope"}), 403, "FORBIDDEN")
        assert_error(client.patch(detail(api_key), {"name": "nope"}), 403, "FORBIDDEN")
        assert_error(client.delete(detail(api_key)), 403, "FORBIDDEN")
        assert_error(client.post(detail(api_key, "/rotate"), {}), 403, "FORBIDDEN")

    def test_staff_do_not_use_the_tenant_endpoints(self, world, client_for):
        assert_error(client_for(world.staff).get(URL), 403, "FORBIDDEN")

    def test_an_api_key_never_manages_keys_or_users(self, world, make_key):
        api_key, secret = make_key()
        client = key_client(secret)
        assert_error(client.get(URL), 403, "FORBIDDEN")
        assert_error(client.post(URL, {"name": "child"}), 403, "FORBIDDEN")
        assert_error(client.post(detail(api_key, "/rotate"), {}), 403, "FORBIDDEN")
        assert_error(client.delete(detail(api_key)), 403, "FORBIDDEN")
        assert_error(client.get("/api/v1/users"), 403, "FORBIDDEN")
        assert_error(client.get("/api/v1/auth/me"), 403, "FORBIDDEN")
        assert_error(client.get("/api/admin/tenants"), 403, "FORBIDDEN")
        assert ApiKey.objects.count() == 1


class TestAuthentication:
    @pytest.mark.parametrize("header", ["bearer", "x-api-key"])
    def test_both_headers_work(self, world, make_key, probe, header):
        api_key, secret = make_key()
        response = key_client(secret, header).get(probe)
        assert response.status_code == 200
        assert response.json() == {"tenant": str(world.tenant.id), "key": str(api_key.id)}

    def test_read_keys_may_not_write_and_write_keys_also_read(self, world, make_key, probe):
        _, read_only = make_key(permissions=["read"])
        _, write = make_key(permissions=["write"])
        _, both = make_key()
        assert key_client(read_only).get(probe).status_code == 200
        assert_error(key_client(read_only).post(probe, {}), 403, "FORBIDDEN")
        assert key_client(write).post(probe, {}).status_code == 200
        assert key_client(write).get(probe).status_code == 200
        assert key_client(both).post(probe, {}).status_code == 200

    def test_bad_keys_all_get_the_same_401(self, world, make_key, probe, client_for):
        revoked, revoked_secret = make_key()
        client_for(world.admin).delete(detail(revoked))
        expired, expired_secret = make_key()
        ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        candidates = [
            revoked_secret,
            expired_secret,
            "rk_" + "A" * 43,
            "rk_",
            "rk_" + "x" * 500,
            "nonsense",
            "rk_\u00e9\u00e8",
        ]
        messages = set()
        for secret in candidates:
            for header in ("bearer", "x-api-key"):
                messages.add(
                    assert_error(key_client(secret, header).get(probe), 401, "AUTHENTICATION_FAILED")[
                        "message"
                    ]
                )
        assert messages == {"Invalid API key."}

    def test_a_cached_key_expires_on_time(self, world, make_key, probe):
        expires_at = timezone.now() + timedelta(minutes=5)
        _, secret = make_key(expires_at=expires_at)
        client = key_client(secret)
        assert client.get(probe).status_code == 200  # now cached
        with mock.patch("django.utils.timezone.now", return_value=expires_at + timedelta(seconds=1)):
            assert_error(client.get(probe), 401, "AUTHENTICATION_FAILED")

    def test_revocation_applies_to_the_very_next_request(self, world, make_key, probe, client_for):
        api_key, secret = make_key()
        client = key_client(secret)
        assert client.get(probe).status_code == 200
        client_for(world.admin).delete(detail(api_key))
        assert_error(client.get(probe), 401, "AUTHENTICATION_FAILED")

    def test_a_permission_change_applies_to_the_very_next_request(self, world, make_key, probe, client_for):
        api_key, secret = make_key()
        client = key_client(secret)
        assert client.post(probe, {}).status_code == 200
        client_for(world.admin).patch(detail(api_key), {"permissions": ["read"]})
        assert_error(client.post(probe, {}), 403, "FORBIDDEN")

    @pytest.mark.parametrize(
        ("status", "code"), [("suspended", "TENANT_SUSPENDED"), ("cancelled", "TENANT_CANCELLED")]
    )
    def test_suspending_the_tenant_applies_to_the_very_next_request(
        self, world, make_key, probe, client_for, status, code
    ):
        _, secret = make_key()
        client = key_client(secret)
        assert client.get(probe).status_code == 200
        staff = client_for(world.staff)
        staff.patch(f"/api/admin/tenants/{world.tenant.id}", {"status": status})
        assert_error(client.get(probe), 403, code)
        staff.patch(f"/api/admin/tenants/{world.tenant.id}", {"status": "active"})
        assert client.get(probe).status_code == 200

    @pytest.mark.redis
    def test_a_recently_validated_key_costs_no_query(self, world, make_key, probe, django_assert_num_queries):
        _, secret = make_key()
        client = key_client(secret)
        assert client.get(probe).status_code == 200
        with django_assert_num_queries(0):  # key from the cache, limits and usage in Redis
            assert client.get(probe).status_code == 200

    @pytest.mark.redis
    def test_a_remembered_key_costs_one_redis_call_for_key_and_limits(
        self, world, make_key, probe, private_redis, settings
    ):
        settings.RATE_LIMIT_REDIS_URL = settings.USAGE_BUFFER_REDIS_URL = private_redis.url
        ratelimit.limiter.cache_clear()
        buffer_client.cache_clear()
        _, secret = make_key()
        client = key_client(secret)
        assert client.get(probe).status_code == 200
        server = redis.Redis.from_url(private_redis.url)
        server.config_resetstat()
        try:
            for _ in range(3):
                assert client.get(probe).status_code == 200
            calls = {
                name.removeprefix("cmdstat_"): stats["calls"]
                for name, stats in server.info("commandstats").items()
                if name not in ("cmdstat_info", "cmdstat_config|resetstat")
            }
            # Per request, two calls: the limiter's script, which also confirms the remembered key,
            # and the usage event. The rest of the statistics are the script's own commands.
            assert calls.pop("evalsha") == 3 and calls.pop("rpush") == 3
            assert set(calls) == {"hget", "hmget", "hset", "expire"}
            api_key = ApiKey.objects.get(tenant=world.tenant)
            api_key_revoke(api_key=api_key, actor=None)
            assert_error(client.get(probe), 401, "AUTHENTICATION_FAILED")
        finally:
            ratelimit.limiter.cache_clear()
            buffer_client.cache_clear()

    @pytest.mark.redis
    def test_a_remembered_key_is_read_afresh_when_the_limiter_cannot_confirm_it(
        self, world, make_key, probe, private_redis, settings
    ):
        settings.RATE_LIMIT_REDIS_URL = private_redis.url
        settings.RATE_LIMIT_REDIS_TIMEOUT = 0.2
        ratelimit.limiter.cache_clear()
        api_key, secret = make_key()
        client = key_client(secret)
        try:
            assert client.get(probe).status_code == 200  # remembered, confirmed by the limiter
            private_redis.stop()
            api_key_revoke(api_key=api_key, actor=None)  # the new generation cannot be written
            assert_error(client.get(probe), 401, "AUTHENTICATION_FAILED")
        finally:
            ratelimit.limiter.cache_clear()

    @pytest.mark.redis
    def test_a_key_remembered_under_a_generation_that_vanished_is_read_afresh(self, world, make_key, probe):
        api_key, secret = make_key()
        client = key_client(secret)
        assert client.get(probe).status_code == 200
        buckets = ratelimit.limiter().client
        assert buckets.hget(ratelimit.bucket_key(str(world.tenant.id)), "g") is not None
        # Revoked behind the services' back, then the tenant's hash lost (evicted, failed over).
        ApiKey.objects.filter(pk=api_key.pk).update(status=ApiKey.Status.REVOKED)
        cache.delete(cache_key(api_key.key_hash))
        buckets.delete(ratelimit.bucket_key(str(world.tenant.id)))
        assert_error(client.get(probe), 401, "AUTHENTICATION_FAILED")

    @pytest.mark.redis
    def test_an_invalidation_inside_a_transaction_is_done_again_after_commit(
        self, world, make_key, django_capture_on_commit_callbacks
    ):
        api_key, _ = make_key()
        tenant_id = str(world.tenant.id)
        with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
            api_keys_cache_invalidate(keys=[api_key])
            during = ratelimit.tenant_generation(tenant_id)
        assert len(callbacks) == 1
        callbacks[0]()
        assert ratelimit.tenant_generation(tenant_id) not in (None, during)

    def test_guessing_keys_costs_one_query_per_guess_at_most(
        self, world, make_key, probe, django_assert_num_queries
    ):
        guess = key_client("rk_" + "x" * 43)
        assert_error(guess.get(probe), 401, "AUTHENTICATION_FAILED")
        with django_assert_num_queries(0):
            assert_error(guess.get(probe), 401, "AUTHENTICATION_FAILED")
        _, secret = make_key()  # a key created after guesses is known at once
        assert key_client(secret).get(probe).status_code == 200

    def test_without_redis_the_only_query_is_the_usage_row(
        self, world, make_key, probe, settings, django_assert_num_queries
    ):
        settings.USAGE_BUFFER_REDIS_URL = ""
        buffer_client.cache_clear()
        _, secret = make_key()
        client = key_client(secret)
        assert client.get(probe).status_code == 200
        try:
            with django_assert_num_queries(1) as captured:
                assert client.get(probe).status_code == 200
            assert "INSERT INTO usage_logs" in captured.captured_queries[0]["sql"]
        finally:
            buffer_client.cache_clear()

    def test_last_used_at_is_written_at_most_once_a_minute(self, world, make_key, probe):
        api_key, secret = make_key()
        client = key_client(secret)
        client.get(probe)
        api_key.refresh_from_db()
        first = api_key.last_used_at
        assert first is not None
        client.get(probe)
        api_key.refresh_from_db()
        assert api_key.last_used_at == first


class TestRotate:
    def test_without_grace_the_old_key_stops_at_once(self, world, client_for, make_key, probe):
        old, old_secret = make_key(permissions=["read"], name="prod")
        response = client_for(world.developer).post(detail(old, "/rotate"), {})
        assert response.status_code == 201
        new = response.json()
        assert new["name"] == "prod" and new["permissions"] == ["read"] and new["id"] != str(old.id)
        assert_error(key_client(old_secret).get(probe), 401, "AUTHENTICATION_FAILED")
        assert key_client(new["key"]).get(probe).status_code == 200
        old.refresh_from_db()
        assert old.status == "revoked"
        assert ApiKey.objects.get(pk=new["id"]).rotated_from == old
        assert AuditEntry.objects.filter(object_id=str(old.id), action="api_key.rotate").exists()
        assert AuditEntry.objects.filter(object_id=new["id"], action="api_key.rotate_new").exists()

    def test_with_grace_the_old_key_works_until_the_grace_ends(self, world, client_for, make_key, probe):
        old, old_secret = make_key()
        old_client = key_client(old_secret)
        assert old_client.get(probe).status_code == 200  # cached before the rotation
        new = client_for(world.admin).post(detail(old, "/rotate"), {"grace_seconds": 3600}).json()
        assert old_client.get(probe).status_code == 200
        assert key_client(new["key"]).get(probe).status_code == 200
        shown = client_for(world.admin).get(detail(old)).json()
        assert shown["status"] == "active"
        # Its end is shown where a caller looks for it; the new key has none.
        ends = datetime.fromisoformat(shown["expires_at"])
        assert timedelta(seconds=3590) < ends - timezone.now() <= timedelta(seconds=3600)
        assert new["expires_at"] is None
        # Revoked outright during its grace: nothing is left of the grace to show.
        assert client_for(world.admin).delete(detail(old)).status_code == 204
        assert client_for(world.admin).get(detail(old)).json()["expires_at"] is None
        later = timezone.now() + timedelta(seconds=3601)
        with mock.patch("django.utils.timezone.now", return_value=later):
            assert_error(old_client.get(probe), 401, "AUTHENTICATION_FAILED")
            assert key_client(new["key"]).get(probe).status_code == 200

    def test_a_key_in_its_grace_is_not_rotated_again(self, world, client_for, make_key, probe):
        old, old_secret = make_key()
        client = client_for(world.admin)
        assert client.post(detail(old, "/rotate"), {"grace_seconds": 60}).status_code == 201
        old.refresh_from_db()
        ends = old.revokes_at
        error = assert_error(client.post(detail(old, "/rotate"), {"grace_seconds": 86400}), 409, "CONFLICT")
        assert "already rotated" in error["message"]
        old.refresh_from_db()
        assert old.revokes_at == ends
        assert ApiKey.objects.filter(tenant=world.tenant, name=old.name).count() == 2
        assert client.delete(detail(old)).status_code == 204  # but it can still be stopped now
        assert_error(key_client(old_secret).get(probe), 401, "AUTHENTICATION_FAILED")

    def test_it_validates_the_grace(self, world, client_for, make_key):
        api_key, _ = make_key()
        for grace in (-1, 86401, "a while"):
            error = assert_error(
                client_for(world.admin).post(detail(api_key, "/rotate"), {"grace_seconds": grace}),
                400,
                "VALIDATION_ERROR",
            )
            assert "grace_seconds" in error["details"]

    def test_a_key_that_no_longer_works_cannot_be_changed(self, world, client_for, make_key):
        revoked, _ = make_key()
        expired, _ = make_key(name="expired")
        client = client_for(world.admin)
        client.delete(detail(revoked))
        ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        for api_key, state in ((revoked, "revoked"), (expired, "expired")):
            error = assert_error(client.patch(detail(api_key), {"permissions": ["read"]}), 409, "CONFLICT")
            assert state in error["message"]
            api_key.refresh_from_db()
            assert api_key.permissions == ["read", "write"]
        assert not AuditEntry.objects.filter(action="api_key.update").exists()

    def test_a_revoked_key_cannot_be_rotated(self, world, client_for, make_key):
        api_key, _ = make_key()
        client = client_for(world.admin)
        client.delete(detail(api_key))
        assert_error(client.post(detail(api_key, "/rotate"), {}), 409, "CONFLICT")


class TestStaffApi:
    ADMIN_URL = "/api/admin/api-keys"

    def test_staff_list_any_tenants_keys(self, world, client_for, make_key):
        make_key(name="acme-key")
        make_key(name="globex-key", tenant=world.other_tenant)
        staff = client_for(world.staff)
        assert {key["name"] for key in staff.get(self.ADMIN_URL).json()} == {"acme-key", "globex-key"}
        only = staff.get(self.ADMIN_URL, {"tenant": str(world.other_tenant.id)}).json()
        assert [key["name"] for key in only] == ["globex-key"]
        assert only[0]["tenant"] == str(world.other_tenant.id)
        assert_error(staff.get(self.ADMIN_URL, {"tenant": "nope"}), 400, "VALIDATION_ERROR")

    def test_staff_create_a_key_for_a_tenant(self, world, client_for, probe):
        staff = client_for(world.staff)
        response = staff.post(
            self.ADMIN_URL, {"tenant": str(world.tenant.id), "name": "from staff", "permissions": ["read"]}
        )
        assert response.status_code == 201
        assert key_client(response.json()["key"]).get(probe).json()["tenant"] == str(world.tenant.id)
        assert AuditEntry.objects.filter(object_id=response.json()["id"], actor=world.staff).exists()
        error = assert_error(staff.post(self.ADMIN_URL, {"name": "no tenant"}), 400, "VALIDATION_ERROR")
        assert "tenant" in error["details"]

    def test_staff_name_the_tenant_in_the_query(self, world, client_for, probe):
        staff = client_for(world.staff)
        url = f"{self.ADMIN_URL}?tenant={world.other_tenant.id}"
        response = staff.post(url, {"name": "by query", "permissions": ["read"]})
        assert response.status_code == 201, response.content
        assert key_client(response.json()["key"]).get(probe).json()["tenant"] == str(world.other_tenant.id)
        both = {"tenant": str(world.other_tenant.id), "name": "both", "permissions": ["read"]}
        same = staff.post(url, both)
        assert same.status_code == 201
        upper = staff.post(f"{self.ADMIN_URL}?tenant={str(world.other_tenant.id).upper()}", both)
        assert upper.status_code == 201, upper.content
        error = assert_error(
            staff.post(url, {"tenant": str(world.tenant.id), "name": "two", "permissions": ["read"]}),
            400,
            "VALIDATION_ERROR",
        )
        assert "tenant" in error["details"]
        assert not ApiKey.objects.filter(name="two").exists()

    def test_a_cancelled_tenant_gets_no_new_key(self, world, client_for):
        world.other_tenant.status = Tenant.Status.CANCELLED
        world.other_tenant.save()
        staff = client_for(world.staff)
        body = {"tenant": str(world.other_tenant.id), "name": "late", "permissions": ["read"]}
        assert_error(staff.post(self.ADMIN_URL, body), 409, "CONFLICT")
        assert not ApiKey.objects.filter(name="late").exists()

    @pytest.mark.parametrize("who", ["admin", "developer", "viewer"])
    def test_tenant_users_may_not(self, world, client_for, who):
        client = client_for(getattr(world, who))
        assert_error(client.get(self.ADMIN_URL), 403, "FORBIDDEN")
        assert_error(
            client.post(self.ADMIN_URL, {"tenant": str(world.tenant.id), "name": "x"}), 403, "FORBIDDEN"
        )


@pytest.mark.parametrize("change", ["revoke", "update"])
def test_it_keeps_the_key_as_it_was_when_the_audit_entry_cannot_be_written(
    world, make_key, monkeypatch, change
):
    from django.db import DatabaseError

    from apikeys import services

    api_key, _ = make_key(permissions=("read",))

    def audit_refused(**_: object) -> None:
        raise DatabaseError("audit_entries is not writable")

    monkeypatch.setattr(services, "audit_record", audit_refused)
    with pytest.raises(DatabaseError):
        if change == "revoke":
            services.api_key_revoke(api_key=api_key, actor=None)
        else:
            services.api_key_update(api_key=api_key, actor=None, permissions=["read", "write"])
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert (stored.status, stored.permissions) == (ApiKey.Status.ACTIVE, ["read"])


def test_it_refuses_two_credentials_that_differ(world, make_key, client_for):
    _, secret = make_key()
    _, theirs = make_key(tenant=world.other_tenant)
    jwt = client_for(world.outsider).tokens.access_token
    for authorization in ("Bearer rk_garbage", f"Bearer {theirs}", f"Bearer {jwt}"):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secret, HTTP_AUTHORIZATION=authorization)
        response = client.get("/api/v1/items")
        assert_error(response, 401, "AUTHENTICATION_FAILED")
        assert "not two that differ" in response.json()["error"]["message"]
    # The same key twice, an empty header, or another scheme (a proxy's Basic credential): the key's.
    for authorization in (f"Bearer {secret}", "", "Bearer ", "Basic dXNlcjpwYXNz"):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secret, HTTP_AUTHORIZATION=authorization)
        assert client.get("/api/v1/items").status_code == 200, authorization


def test_the_schema_offers_either_key_header_not_both(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    security = schema["paths"]["/api/v1/items"]["get"]["security"]
    assert {"apiKeyBearer": []} in security and {"apiKeyHeader": []} in security
    assert not any(len(requirement) > 1 for requirement in security)
