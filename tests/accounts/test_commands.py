from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from accounts.models import User, UserSession
from accounts.services import session_start
from accounts.tasks import sessions_prune


@override_settings(DEBUG=True, FIRST_SUPERUSER_EMAIL="", FIRST_SUPERUSER_PASSWORD="")
def test_ensure_superuser_creates_the_development_default_and_says_so(db):
    out = StringIO()
    call_command("ensure_superuser", stdout=out)
    user = User.objects.get(email="admin@example.com")
    assert user.is_staff and user.is_superuser and user.tenant is None
    assert "dev-admin-password-change-me" in out.getvalue()
    assert user.check_password("dev-admin-password-change-me")
    call_command("ensure_superuser", stdout=out)
    assert User.objects.filter(is_staff=True).count() == 1


@override_settings(
    DEBUG=False, FIRST_SUPERUSER_EMAIL="Ops@Example.com", FIRST_SUPERUSER_PASSWORD="Real-pass-from-env-42"
)
def test_ensure_superuser_uses_the_environment(db):
    call_command("ensure_superuser", stdout=StringIO())
    assert User.objects.get(email="ops@example.com").check_password("Real-pass-from-env-42")


@override_settings(DEBUG=False, FIRST_SUPERUSER_PASSWORD="")
def test_ensure_superuser_refuses_the_default_password_in_production(db):
    with pytest.raises(CommandError):
        call_command("ensure_superuser", stdout=StringIO())


@override_settings(DEBUG=False, FIRST_SUPERUSER_EMAIL="ops@example.com", FIRST_SUPERUSER_PASSWORD="a")
def test_ensure_superuser_refuses_a_weak_password(db):
    with pytest.raises(CommandError, match="FIRST_SUPERUSER_PASSWORD is refused"):
        call_command("ensure_superuser", stdout=StringIO())
    assert not User.objects.filter(email="ops@example.com").exists()
    # Once the user exists the password is not used, so a deployment starting again is not stopped.
    User.objects.create_superuser(email="ops@example.com", password="Real-pass-from-env-42")
    out = StringIO()
    call_command("ensure_superuser", stdout=out)
    assert "already exists" in out.getvalue()


def test_sessions_prune_drops_old_ended_and_expired_sessions(world):
    keep, _ = session_start(user=world.admin, ip=None, user_agent="")
    old_ended, _ = session_start(user=world.admin, ip=None, user_agent="")
    old_expired, _ = session_start(user=world.admin, ip=None, user_agent="")
    long_ago = timezone.now() - timedelta(days=40)
    UserSession.objects.filter(pk=old_ended.pk).update(ended_at=long_ago)
    UserSession.objects.filter(pk=old_expired.pk).update(expires_at=long_ago)
    assert sessions_prune.delay().get() == 2
    assert list(UserSession.objects.values_list("pk", flat=True)) == [keep.pk]


@override_settings(
    TRUSTED_PROXY_COUNT=1, LOGIN_FAILURE_RATE_PER_IP="2/m", LOGIN_FAILURE_RATE_PER_EMAIL="100/m"
)
def test_behind_a_proxy_the_client_address_comes_from_x_forwarded_for(api, world):
    def attempt(forwarded):
        return api.post(
            "/api/v1/auth/login",
            {"email": "nobody@acme.test", "password": "wrong-password"},
            format="json",
            HTTP_X_FORWARDED_FOR=forwarded,
        )

    for _ in range(2):
        assert attempt("spoofed, 203.0.113.9").status_code == 401
    assert attempt("other-spoof, 203.0.113.9").status_code == 429
    assert attempt("203.0.113.10").status_code == 401


@override_settings(
    DEBUG=False, FIRST_SUPERUSER_EMAIL="not-an-email", FIRST_SUPERUSER_PASSWORD="Real-pass-from-env-42"
)
def test_ensure_superuser_refuses_what_is_not_an_email(db):
    with pytest.raises(CommandError, match="not an email address"):
        call_command("ensure_superuser", stdout=StringIO())
    assert not User.objects.exists()


def test_the_commands_refuse_bad_input_with_a_message(db, settings):
    with pytest.raises(CommandError, match="has not begun"):
        call_command("usage_rollup", "--day", "9999-12-31", stdout=StringIO())
    with pytest.raises(CommandError, match="--users"):
        call_command("seed_demo", "--users", "-5", stdout=StringIO())
    settings.USAGE_BUFFER_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    from usage.events import buffer_client

    buffer_client.cache_clear()
    try:
        with pytest.raises(CommandError, match="Redis did not answer"):
            call_command("usage_dead_letters", stdout=StringIO())
    finally:
        buffer_client.cache_clear()
