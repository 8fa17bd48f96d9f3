import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from unittest import mock

import jwt
import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User, UserSession
from tenants.models import Tenant
from tests.conftest import PASSWORD, assert_error

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"


def login(api, email, password=PASSWORD, **extra):
    return api.post(LOGIN, {"email": email, "password": password}, format="json", **extra)


def bearer(api, token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


class TestLogin:
    def test_it_returns_tokens_and_the_user(self, api, world):
        response = login(api, "Admin@Acme.test", HTTP_USER_AGENT="curl/8")
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
        assert body["user"] == {
            "id": str(world.admin.id),
            "email": "admin@acme.test",
            "role": "admin",
            "tenant": {
                "id": str(world.tenant.id),
                "name": "Acme",
                "slug": "acme",
                "plan": "starter",
                "status": "active",
            },
            "is_staff": False,
        }
        session = UserSession.objects.get(user=world.admin)
        assert session.user_agent == "curl/8"
        assert session.ip == "127.0.0.1"
        world.admin.refresh_from_db()
        assert world.admin.last_login is not None

    def test_it_gives_the_same_answer_for_a_wrong_password_and_an_unknown_email(self, api, world):
        wrong = assert_error(login(api, "admin@acme.test", "not-the-password"), 401, "AUTHENTICATION_FAILED")
        unknown = assert_error(login(api, "nobody@acme.test"), 401, "AUTHENTICATION_FAILED")
        assert wrong["message"] == unknown["message"] == "Invalid email or password."

    def test_it_refuses_a_deactivated_user(self, api, world):
        User.objects.filter(pk=world.developer.pk).update(is_active=False)
        assert_error(login(api, "dev@acme.test"), 401, "AUTHENTICATION_FAILED")

    @pytest.mark.parametrize(
        ("status", "code"),
        [(Tenant.Status.SUSPENDED, "TENANT_SUSPENDED"), (Tenant.Status.CANCELLED, "TENANT_CANCELLED")],
    )
    def test_it_refuses_users_of_an_inactive_tenant(self, api, world, status, code):
        Tenant.objects.filter(pk=world.tenant.pk).update(status=status)
        assert_error(login(api, "admin@acme.test"), 403, code)

    def test_it_validates_the_body(self, api, world):
        error = assert_error(
            api.post(LOGIN, {"email": "not-an-email"}, format="json"), 400, "VALIDATION_ERROR"
        )
        assert set(error["details"]) == {"email", "password"}

    @override_settings(LOGIN_FAILURE_RATE_PER_EMAIL="3/m", LOGIN_FAILURE_RATE_PER_IP="100/m")
    def test_it_slows_down_repeated_failures_for_one_email(self, api, world):
        for _ in range(3):
            assert_error(login(api, "admin@acme.test", "wrong-password"), 401, "AUTHENTICATION_FAILED")
        refused = login(api, "admin@acme.test")
        error = assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
        assert error["details"] == {"scope": "email"}
        assert error["message"] == f"Too many failed logins; try again in {refused['Retry-After']} s."
        # Another email from the same address is not affected.
        assert login(api, "dev@acme.test").status_code == 200

    @override_settings(LOGIN_FAILURE_RATE_PER_EMAIL="100/m", LOGIN_FAILURE_RATE_PER_IP="3/m")
    def test_it_slows_down_repeated_failures_from_one_address(self, api, world):
        for number in range(3):
            login(api, f"nobody{number}@acme.test", "wrong-password")
        response = login(api, "viewer@acme.test")
        error = assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
        assert error["details"] == {"scope": "ip"}
        assert int(response["Retry-After"]) >= 1
        assert login(api, "viewer@acme.test", REMOTE_ADDR="10.0.0.7").status_code == 200

    @override_settings(LOGIN_FAILURE_RATE_PER_EMAIL="3/m", LOGIN_FAILURE_RATE_PER_IP="100/m")
    def test_guesses_sent_at_once_are_refused_past_the_limit_too(self, world, monkeypatch):
        # Every guess waits at the password check until all ten have arrived (or a second has passed):
        # counted only after their checks, all ten would be let through.
        arrived = threading.Barrier(10, timeout=1.0)

        def slow_wrong_password(*args, **kwargs):
            try:
                arrived.wait()
            except threading.BrokenBarrierError:
                pass
            return None

        monkeypatch.setattr("accounts.views.authenticate", slow_wrong_password)
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(
                pool.map(lambda _: login(APIClient(), "admin@acme.test", "guess").status_code, range(10))
            )
        assert sorted(statuses) == [401] * 3 + [429] * 7

    @override_settings(LOGIN_FAILURE_RATE_PER_EMAIL="3/m", LOGIN_FAILURE_RATE_PER_IP="100/m")
    def test_good_logins_do_not_count(self, api, world):
        for _ in range(4):
            assert login(api, "admin@acme.test").status_code == 200
        for _ in range(2):
            login(api, "admin@acme.test", "wrong-password")
        assert login(api, "admin@acme.test").status_code == 200  # 2 failures of 3
        login(api, "admin@acme.test", "wrong-password")
        assert_error(login(api, "admin@acme.test"), 429, "RATE_LIMIT_EXCEEDED")

    @override_settings(LOGIN_FAILURE_RATE_PER_EMAIL="1/m", LOGIN_FAILURE_RATE_PER_IP="100/m")
    def test_an_attempt_whose_check_failed_does_not_count(self, api, world, monkeypatch):
        from django.db import OperationalError

        def database_down(*args, **kwargs):
            raise OperationalError("connection refused")

        monkeypatch.setattr("accounts.views.authenticate", database_down)
        assert_error(login(api, "admin@acme.test"), 503, "UPSTREAM_UNAVAILABLE")
        monkeypatch.undo()
        assert login(api, "admin@acme.test").status_code == 200  # not a 429: nothing failed to count

    @override_settings(LOGIN_FAILURE_RATE_PER_EMAIL="3/m", LOGIN_FAILURE_RATE_PER_IP="100/m")
    def test_the_consoles_login_counts_failures_too(self, world, client):
        def console_login(password):
            return client.post("/admin/login/", {"username": "support@platform.test", "password": password})

        for _ in range(3):
            assert console_login("wrong-password").status_code == 200  # the form again, with its error
        refused = console_login(PASSWORD)
        assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
        assert b"Too many failed logins" in refused.content
        assert "_auth_user_id" not in client.session  # the right password was not even tried

    @override_settings(LOGIN_FAILURE_RATE_PER_EMAIL="3/m", LOGIN_FAILURE_RATE_PER_IP="100/m")
    def test_the_consoles_good_logins_do_not_count(self, world, client):
        for _ in range(4):
            response = client.post(
                "/admin/login/", {"username": "support@platform.test", "password": PASSWORD}
            )
            assert response.status_code == 302
            client.logout()


class TestAccessTokens:
    @pytest.mark.parametrize("scheme", ["bearer ", "BEARER ", "Bearer ", "bearer\t", "Bearer  "])
    def test_the_scheme_is_case_insensitive(self, api, world, client_for, scheme):
        token = client_for(world.admin).tokens.access_token
        api.credentials(HTTP_AUTHORIZATION=f"{scheme}{token}")
        response = api.get(ME)
        assert response.status_code == 200, response.content
        assert response.json()["email"] == "admin@acme.test"

    def test_another_scheme_is_not_a_token(self, api, world, client_for):
        token = client_for(world.admin).tokens.access_token
        api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert_error(api.get(ME), 401, "AUTHENTICATION_FAILED")

    def test_it_refuses_a_token_signed_with_another_key(self, api, world, client_for):
        token = client_for(world.admin).tokens.access_token
        payload = jwt.decode(token, options={"verify_signature": False})
        forged = jwt.encode(payload, "another-key-" + "x" * 40, algorithm="HS256")
        assert_error(bearer(api, forged).get(ME), 401, "AUTHENTICATION_FAILED")

    def test_it_refuses_alg_none(self, api, world, client_for):
        token = client_for(world.admin).tokens.access_token
        payload = jwt.decode(token, options={"verify_signature": False})
        unsigned = jwt.encode(payload, None, algorithm="none")
        assert_error(bearer(api, unsigned).get(ME), 401, "AUTHENTICATION_FAILED")

    def test_it_refuses_an_expired_token(self, api, world, client_for):
        token = AccessToken(client_for(world.admin).tokens.access_token)
        token.set_exp(lifetime=-timedelta(seconds=5))
        assert_error(bearer(api, str(token)).get(ME), 401, "AUTHENTICATION_FAILED")

    def test_it_refuses_a_refresh_token_used_as_access_token(self, api, world, client_for):
        refresh = client_for(world.admin).tokens.refresh_token
        assert_error(bearer(api, refresh).get(ME), 401, "AUTHENTICATION_FAILED")

    def test_it_refuses_garbage_and_missing_credentials(self, api, world):
        assert_error(api.get(ME), 401, "AUTHENTICATION_FAILED")
        assert_error(bearer(api, "eyJnot.a.jwt").get(ME), 401, "AUTHENTICATION_FAILED")
        api.credentials(HTTP_AUTHORIZATION="Bearer a b")
        assert_error(api.get(ME), 401, "AUTHENTICATION_FAILED")

    def test_it_stops_working_when_the_user_is_deactivated(self, world, client_for):
        client = client_for(world.viewer)
        assert client.get(ME).status_code == 200
        User.objects.filter(pk=world.viewer.pk).update(is_active=False)
        assert_error(client.get(ME), 401, "AUTHENTICATION_FAILED")


class TestRefresh:
    def test_it_rotates_the_refresh_token(self, api, world):
        first = login(api, "dev@acme.test").json()
        response = api.post(REFRESH, {"refresh_token": first["refresh_token"]}, format="json")
        assert response.status_code == 200
        second = response.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert second["user"]["email"] == "dev@acme.test"
        assert bearer(APIClient(), second["access_token"]).get(ME).status_code == 200
        # The rotated-out token is refused...
        assert_error(
            api.post(REFRESH, {"refresh_token": first["refresh_token"]}, format="json"),
            401,
            "AUTHENTICATION_FAILED",
        )
        # ...and its reuse ends the session, so the newest token is refused too.
        assert_error(
            api.post(REFRESH, {"refresh_token": second["refresh_token"]}, format="json"),
            401,
            "AUTHENTICATION_FAILED",
        )
        assert_error(bearer(APIClient(), second["access_token"]).get(ME), 401, "AUTHENTICATION_FAILED")

    def test_it_refuses_an_access_token_and_garbage(self, api, world):
        tokens = login(api, "dev@acme.test").json()
        assert_error(
            api.post(REFRESH, {"refresh_token": tokens["access_token"]}, format="json"),
            401,
            "AUTHENTICATION_FAILED",
        )
        assert_error(
            api.post(REFRESH, {"refresh_token": "garbage"}, format="json"), 401, "AUTHENTICATION_FAILED"
        )
        assert_error(api.post(REFRESH, {}, format="json"), 400, "VALIDATION_ERROR")

    def test_it_refuses_a_suspended_tenant(self, api, world):
        tokens = login(api, "dev@acme.test").json()
        Tenant.objects.filter(pk=world.tenant.pk).update(status=Tenant.Status.SUSPENDED)
        assert_error(
            api.post(REFRESH, {"refresh_token": tokens["refresh_token"]}, format="json"),
            403,
            "TENANT_SUSPENDED",
        )

    def test_it_tracks_the_session_through_refreshes(self, api, world):
        tokens = login(api, "dev@acme.test").json()
        api.post(REFRESH, {"refresh_token": tokens["refresh_token"]}, format="json")
        assert UserSession.objects.filter(user=world.developer).count() == 1


class TestLogout:
    def test_it_ends_the_session_of_the_refresh_token(self, api, world):
        tokens = login(api, "dev@acme.test").json()
        assert api.post(LOGOUT, {"refresh_token": tokens["refresh_token"]}, format="json").status_code == 204
        assert_error(
            api.post(REFRESH, {"refresh_token": tokens["refresh_token"]}, format="json"),
            401,
            "AUTHENTICATION_FAILED",
        )
        assert_error(bearer(api, tokens["access_token"]).get(ME), 401, "AUTHENTICATION_FAILED")

    def test_it_refuses_a_forged_token(self, api, world):
        assert_error(
            api.post(LOGOUT, {"refresh_token": "x.y.z"}, format="json"), 401, "AUTHENTICATION_FAILED"
        )

    def test_logout_all_kills_every_access_and_refresh_token(self, api, world, client_for):
        phone, laptop = client_for(world.developer), client_for(world.developer)
        colleague = client_for(world.viewer)
        assert laptop.post("/api/v1/auth/logout-all").status_code == 204
        for client in (phone, laptop):
            assert_error(client.get(ME), 401, "AUTHENTICATION_FAILED")
            response = APIClient().post(
                REFRESH, {"refresh_token": client.tokens.refresh_token}, format="json"
            )
            assert_error(response, 401, "AUTHENTICATION_FAILED")
        assert colleague.get(ME).status_code == 200


class TestMe:
    def test_it_describes_staff_without_tenant(self, world, client_for):
        body = client_for(world.staff).get(ME).json()
        assert body == {
            "id": str(world.staff.id),
            "email": "staff@platform.test",
            "role": None,
            "tenant": None,
            "is_staff": True,
        }

    def test_it_refuses_users_of_a_suspended_tenant(self, world, client_for):
        client = client_for(world.viewer)
        Tenant.objects.filter(pk=world.tenant.pk).update(status=Tenant.Status.SUSPENDED)
        assert_error(client.get(ME), 403, "TENANT_SUSPENDED")
        Tenant.objects.filter(pk=world.tenant.pk).update(status=Tenant.Status.CANCELLED)
        assert_error(client.get(ME), 403, "TENANT_CANCELLED")
        Tenant.objects.filter(pk=world.tenant.pk).update(status=Tenant.Status.ACTIVE)
        assert client.get(ME).status_code == 200


class TestSessions:
    def test_it_lists_the_users_open_sessions_and_marks_the_current_one(self, api, world, client_for):
        login(api, "dev@acme.test", HTTP_USER_AGENT="Phone/1.0")
        current = client_for(world.developer)
        client_for(world.viewer)
        ended = client_for(world.developer)
        ended.post("/api/v1/auth/logout-all")  # ends all three of the developer's sessions
        current = client_for(world.developer)
        login(api, "dev@acme.test", HTTP_USER_AGENT="Phone/2.0")
        sessions = current.get("/api/v1/auth/sessions").json()
        assert len(sessions) == 2
        assert [s["current"] for s in sessions].count(True) == 1
        assert {s["user_agent"] for s in sessions} == {"pytest", "Phone/2.0"}
        assert set(sessions[0]) == {"id", "created_at", "last_used_at", "ip", "user_agent", "current"}
        # A session that was never refreshed was last used when it began, not a moment before.
        assert all(s["last_used_at"] == s["created_at"] for s in sessions)

    def test_ending_a_session_kills_its_tokens_only(self, world, client_for):
        keeper, victim = client_for(world.admin), client_for(world.admin)
        victim_id = next(s["id"] for s in keeper.get("/api/v1/auth/sessions").json() if not s["current"])
        assert keeper.delete(f"/api/v1/auth/sessions/{victim_id}").status_code == 204
        assert_error(victim.get(ME), 401, "AUTHENTICATION_FAILED")
        assert keeper.get(ME).status_code == 200
        assert_error(keeper.delete(f"/api/v1/auth/sessions/{victim_id}"), 404, "NOT_FOUND")

    def test_another_users_session_is_not_found(self, world, client_for):
        client_for(world.outsider)
        outsider_session = UserSession.objects.get(user=world.outsider)
        client = client_for(world.admin)
        assert_error(client.delete(f"/api/v1/auth/sessions/{outsider_session.id}"), 404, "NOT_FOUND")
        assert UserSession.objects.get(pk=outsider_session.pk).ended_at is None


class TestPasswordChange:
    URL = "/api/v1/auth/password"

    def test_it_changes_the_password_and_ends_the_other_sessions(self, api, world, client_for):
        current, other = client_for(world.developer), client_for(world.developer)
        colleague, outsider = client_for(world.admin), client_for(world.outsider)
        response = current.post(
            self.URL, {"current_password": PASSWORD, "new_password": "An0ther-long-passphrase"}
        )
        assert response.status_code == 204
        assert current.get(ME).status_code == 200
        assert_error(other.get(ME), 401, "AUTHENTICATION_FAILED")
        # Only the user's own sessions end: not a colleague's, not another tenant's user's.
        assert colleague.get(ME).status_code == 200 and outsider.get(ME).status_code == 200
        assert login(api, "dev@acme.test", "An0ther-long-passphrase").status_code == 200
        assert_error(login(api, "dev@acme.test"), 401, "AUTHENTICATION_FAILED")

    def test_it_needs_the_current_password(self, world, client_for):
        client = client_for(world.developer)
        response = client.post(
            self.URL, {"current_password": "wrong", "new_password": "An0ther-long-passphrase"}
        )
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert "current_password" in error["details"]

    @override_settings(LOGIN_FAILURE_RATE_PER_EMAIL="3/m", LOGIN_FAILURE_RATE_PER_IP="100/m")
    def test_wrong_current_passwords_count_as_failed_logins(self, world, client_for):
        client = client_for(world.developer)
        change = {"new_password": "An0ther-long-passphrase"}
        for _ in range(3):
            response = client.post(self.URL, {"current_password": "guess", **change})
            assert_error(response, 400, "VALIDATION_ERROR")
        refused = client.post(self.URL, {"current_password": PASSWORD, **change})
        assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
        assert User.objects.get(pk=world.developer.pk).check_password(PASSWORD)  # unchanged

    @override_settings(LOGIN_FAILURE_RATE_PER_EMAIL="1/m", LOGIN_FAILURE_RATE_PER_IP="100/m")
    def test_a_429_is_not_replayed_to_a_retry_under_the_same_idempotency_key(self, world, client_for):
        client = client_for(world.developer)
        change = {"current_password": PASSWORD, "new_password": "An0ther-long-passphrase"}
        assert_error(client.post(self.URL, {**change, "current_password": "guess"}), 400, "VALIDATION_ERROR")
        refused = client.post(self.URL, change, HTTP_IDEMPOTENCY_KEY="pw-1")
        assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
        cache.clear()  # the window has passed
        retry = client.post(self.URL, change, HTTP_IDEMPOTENCY_KEY="pw-1")
        assert retry.status_code == 204 and "Idempotent-Replayed" not in retry

    def test_it_applies_djangos_password_validators(self, world, client_for):
        client = client_for(world.developer)
        for weak in ("short", "password123", "12345678901", "dev@acme.test"):
            response = client.post(self.URL, {"current_password": PASSWORD, "new_password": weak})
            error = assert_error(response, 400, "VALIDATION_ERROR")
            assert "new_password" in error["details"]


def test_a_password_change_retried_with_its_idempotency_key_is_replayed(world, client_for):
    client = client_for(world.developer)
    body = {"current_password": PASSWORD, "new_password": "An0ther-long-passphrase"}
    first = client.post("/api/v1/auth/password", body, format="json", HTTP_IDEMPOTENCY_KEY="pw-1")
    again = client.post("/api/v1/auth/password", body, format="json", HTTP_IDEMPOTENCY_KEY="pw-1")
    assert first.status_code == again.status_code == 204
    assert again["Idempotent-Replayed"] == "true"


class TestIdempotentTokens:
    """Every POST under /api/v1/ honours Idempotency-Key (API.md), the token endpoints too."""

    def test_it_answers_a_retried_login_with_the_same_tokens_and_one_session(self, api, world):
        first = login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="login-1")
        again = login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="login-1")
        assert first.status_code == again.status_code == 200
        assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
        # The same answer, but for the seconds its access token has left now.
        replayed, answered = dict(again.json()), dict(first.json())
        assert 895 <= replayed.pop("expires_in") <= answered.pop("expires_in") == 900
        assert replayed == answered
        assert UserSession.objects.filter(user=world.developer).count() == 1
        assert bearer(APIClient(), again.json()["access_token"]).get(ME).status_code == 200

    def test_it_keeps_the_tokens_sealed_where_the_table_is_read(self, api, world):
        from tenants.models import IdempotencyRecord

        tokens = login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="login-1").json()
        stored = IdempotencyRecord.objects.get(tenant=world.tenant, key="login-1").response_body
        assert stored["user"]["email"] == "dev@acme.test"
        for name in ("access_token", "refresh_token"):
            assert set(stored[name]) == {"sealed"}
            assert tokens[name] not in str(stored)

    def test_it_answers_a_retried_refresh_again_and_keeps_the_session(self, api, world):
        tokens = login(api, "dev@acme.test").json()
        body = {"refresh_token": tokens["refresh_token"]}
        first = api.post(REFRESH, body, format="json", HTTP_IDEMPOTENCY_KEY="refresh-1")
        # The answer was lost on its way: the client sends the same refresh again.
        again = api.post(REFRESH, body, format="json", HTTP_IDEMPOTENCY_KEY="refresh-1")
        assert first.status_code == again.status_code == 200
        assert again["Idempotent-Replayed"] == "true"
        assert again.json()["refresh_token"] == first.json()["refresh_token"]
        # Not taken for a stolen token's reuse: the session lives on, and the new token works.
        newer = api.post(REFRESH, {"refresh_token": again.json()["refresh_token"]}, format="json")
        assert newer.status_code == 200
        assert UserSession.objects.get(user=world.developer).ended_at is None

    def test_a_refresh_retried_without_its_key_is_still_a_reuse(self, api, world):
        tokens = login(api, "dev@acme.test").json()
        body = {"refresh_token": tokens["refresh_token"]}
        assert api.post(REFRESH, body, format="json", HTTP_IDEMPOTENCY_KEY="refresh-1").status_code == 200
        assert_error(api.post(REFRESH, body, format="json"), 401, "AUTHENTICATION_FAILED")
        assert UserSession.objects.get(user=world.developer).end_reason == "refresh_reused"

    def test_it_refuses_the_same_key_with_another_body(self, api, world):
        assert login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="k").status_code == 200
        # Another user of the tenant, and the same user with another body, may not take its answer.
        assert_error(login(api, "viewer@acme.test", HTTP_IDEMPOTENCY_KEY="k"), 422, "IDEMPOTENCY_KEY_REUSED")
        tokens = login(api, "dev@acme.test").json()
        response = api.post(
            LOGOUT, {"refresh_token": tokens["refresh_token"]}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )
        assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
        assert UserSession.objects.filter(user=world.developer, ended_at__isnull=True).count() == 2

    def test_another_tenants_key_of_the_same_name_is_its_own(self, api, world):
        ours = login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="k")
        theirs = login(api, "admin@globex.test", HTTP_IDEMPOTENCY_KEY="k")
        assert ours.status_code == theirs.status_code == 200
        assert "Idempotent-Replayed" not in theirs
        assert theirs.json()["user"]["email"] == "admin@globex.test"

    def test_it_answers_a_retried_logout_again(self, api, world):
        tokens = login(api, "dev@acme.test").json()
        body = {"refresh_token": tokens["refresh_token"]}
        first = api.post(LOGOUT, body, format="json", HTTP_IDEMPOTENCY_KEY="bye")
        again = api.post(LOGOUT, body, format="json", HTTP_IDEMPOTENCY_KEY="bye")
        assert first.status_code == again.status_code == 204
        assert again["Idempotent-Replayed"] == "true"

    def test_a_failed_login_claims_no_key(self, api, world):
        assert_error(
            login(api, "dev@acme.test", "wrong", HTTP_IDEMPOTENCY_KEY="k"), 401, "AUTHENTICATION_FAILED"
        )
        assert login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="k").status_code == 200

    def refreshed(self, api, key="r1"):
        tokens = login(api, "dev@acme.test").json()
        body = {"refresh_token": tokens["refresh_token"]}
        first = api.post(REFRESH, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        assert first.status_code == 200
        return body, first.json()

    def test_a_replay_is_refused_once_its_pair_was_used_and_the_session_ends(self, api, world):
        body, pair = self.refreshed(api)
        # The client used the new pair; then the old token and its key come again (a thief's copy).
        assert api.post(REFRESH, {"refresh_token": pair["refresh_token"]}, format="json").status_code == 200
        again = api.post(REFRESH, body, format="json", HTTP_IDEMPOTENCY_KEY="r1")
        assert_error(again, 401, "AUTHENTICATION_FAILED")
        assert UserSession.objects.get(user=world.developer).end_reason == "refresh_reused"

    def test_a_replay_is_refused_after_a_logout_or_a_suspension(self, api, world):
        body, pair = self.refreshed(api)
        Tenant.objects.filter(pk=world.tenant.pk).update(status=Tenant.Status.SUSPENDED)
        assert_error(
            api.post(REFRESH, body, format="json", HTTP_IDEMPOTENCY_KEY="r1"), 403, "TENANT_SUSPENDED"
        )
        Tenant.objects.filter(pk=world.tenant.pk).update(status=Tenant.Status.ACTIVE)
        api.post(LOGOUT, {"refresh_token": pair["refresh_token"]}, format="json")
        response = api.post(REFRESH, body, format="json", HTTP_IDEMPOTENCY_KEY="r1")
        assert_error(response, 401, "AUTHENTICATION_FAILED")

    def test_a_login_replay_is_refused_once_its_tokens_were_refreshed_or_its_session_ended(self, api, world):
        tokens = login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="login-1").json()
        assert api.post(REFRESH, {"refresh_token": tokens["refresh_token"]}, format="json").status_code == 200
        # The password was right: not a 401; the first answer is gone, and the key says so.
        refused = assert_error(login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="login-1"), 409, "CONFLICT")
        assert "log in with a new key" in refused["message"]
        # The password's holder is not logged out for it: the session lives on.
        assert UserSession.objects.get(user=world.developer).ended_at is None
        again = login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="login-2").json()
        api.post(LOGOUT, {"refresh_token": again["refresh_token"]}, format="json")
        assert_error(login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="login-2"), 409, "CONFLICT")
        assert login(api, "dev@acme.test", HTTP_IDEMPOTENCY_KEY="login-3").status_code == 200

    def test_a_refresh_retried_after_its_access_token_expired_gets_the_same_unused_pair(
        self, api, world, settings
    ):
        from tenants.idempotency import KEEP
        from tenants.models import IdempotencyRecord

        body, pair = self.refreshed(api)
        record = IdempotencyRecord.objects.get(key="r1")
        assert abs(record.expires_at - record.created_at - KEEP).total_seconds() < 1  # 24 h, as any key
        # Past the access token's 15 minutes, the retry of a lost answer is a replay, not a second
        # exchange of the spent token (which would end the session as a stolen one).
        later = timezone.now() + settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] + timedelta(minutes=1)
        with mock.patch("django.utils.timezone.now", return_value=later):
            replay = api.post(REFRESH, body, format="json", HTTP_IDEMPOTENCY_KEY="r1")
        assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
        assert replay.json()["refresh_token"] == pair["refresh_token"]
        assert replay.json()["expires_in"] == 0  # its access token has expired: refresh it
        assert api.post(REFRESH, {"refresh_token": pair["refresh_token"]}, format="json").status_code == 200

    def test_a_sealed_token_opens_only_for_the_same_body(self, world, rf):
        from rest_framework.parsers import JSONParser
        from rest_framework.request import Request

        from tenants.idempotency import _seal, _unseal

        def request(body: bytes) -> Request:
            django_request = rf.post(LOGIN, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
            return Request(django_request, parsers=[JSONParser()])

        sealed = _seal("the-token", request=request(b'{"password": "one"}'))
        assert _unseal(sealed, request=request(b'{"password": "one"}')) == "the-token"
        assert _unseal(sealed, request=request(b'{"password": "two"}')) is None


class TestAuthenticationEvents:
    """Logins, failed logins, refusals and reused refresh tokens leave a log line (the seed's
    "monitor authentication events"); a failed login's email is shown as a digest only."""

    def lines(self, caplog, message):
        return [record for record in caplog.records if record.getMessage() == message]

    def test_a_login_and_a_failed_one(self, api, world, caplog):
        import logging

        from accounts.services import email_digest

        with caplog.at_level(logging.INFO, logger="accounts"):
            login(api, "dev@acme.test")
            login(api, "dev@acme.test", "Hunter2-typed-in-the-wrong-box")
        (good,) = self.lines(caplog, "Login")
        assert good.context["user_id"] == str(world.developer.id) and good.context["ip"] == "127.0.0.1"
        (bad,) = self.lines(caplog, "Login failed")
        assert bad.levelname == "WARNING" and bad.context["email_digest"] == email_digest("dev@acme.test")
        assert "Hunter2" not in str(bad.context) and "dev@acme.test" not in str(bad.context)

    @override_settings(LOGIN_FAILURE_RATE_PER_EMAIL="1/m", LOGIN_FAILURE_RATE_PER_IP="100/m")
    def test_a_refused_attempt(self, api, world, caplog):
        login(api, "dev@acme.test", "wrong")
        assert_error(login(api, "dev@acme.test"), 429, "RATE_LIMIT_EXCEEDED")
        (refused,) = self.lines(caplog, "Login attempt refused: too many failures")
        assert refused.context == {"scope": "email", "ip": "127.0.0.1"}

    def test_a_reused_refresh_token(self, api, world, caplog):
        tokens = login(api, "dev@acme.test").json()
        body = {"refresh_token": tokens["refresh_token"]}
        api.post(REFRESH, body, format="json")
        api.post(REFRESH, body, format="json")
        (reused,) = self.lines(caplog, "A refresh token was used again: its session is ended")
        assert reused.context["user_id"] == str(world.developer.id)
