"""The shared world of the tests: two tenants (ours and an outsider's), a user per role, and staff."""

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import session_start
from apikeys.services import api_key_create
from tenants.models import Tenant
from tests.services import PrivateRedis
from usage import ratelimit

PASSWORD = "Correct-horse-battery-9"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# What CI runs against: without any of them, tests that need it would be skipped or run on a stand-in.
CI_SERVICES = (
    ("PostgreSQL", "DATABASE_URL", "postgres"),
    ("Redis", "REDIS_URL", "redis"),
    ("RabbitMQ", "CELERY_BROKER_URL", "amqp"),
)


def pytest_configure(config: pytest.Config) -> None:
    if not IN_CI:
        return
    missing = [
        f"{service} ({variable}={scheme}://...)"
        for service, variable, scheme in CI_SERVICES
        if not os.environ.get(variable, "").startswith(scheme)
    ]
    if missing:
        raise pytest.UsageError(f"CI runs against real services; not configured: {', '.join(missing)}.")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if settings.REDIS_URL:
        return
    for item in items:  # outside CI only: under CI, pytest_configure has refused to start without Redis
        if item.get_closest_marker("redis"):
            item.add_marker(pytest.mark.skip(reason="needs REDIS_URL (a real Redis server)"))


@pytest.fixture(autouse=True)
def _clean_cache() -> None:
    """A fresh cache and fresh rate-limit buckets for every test."""
    cache.clear()  # with Redis this empties the worker's database, the limiter's buckets included
    limiter = ratelimit.limiter()
    if isinstance(limiter, ratelimit.LocalLimiter):
        limiter.reset()
    ratelimit._open_until = 0.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, on its own port: the test may stop and restart it."""
    server = PrivateRedis(tmp_path)
    if server.binary is None:
        if IN_CI:
            pytest.fail("redis-server is required under CI for the fault tests.")
        pytest.skip("redis-server is not installed")
    server.start()
    yield server
    server.stop()


@dataclass
class World:
    tenant: Tenant
    admin: User
    developer: User
    viewer: User
    other_tenant: Tenant
    outsider: User
    staff: User
    support: User


def _user(tenant: Tenant | None, email: str, role: str | None, **fields: object) -> User:
    return User.objects.create_user(email=email, password=PASSWORD, tenant=tenant, role=role, **fields)


@pytest.fixture
def world(db: None) -> World:
    tenant = Tenant.objects.create(name="Acme", slug="acme", plan=Tenant.Plan.STARTER)
    other = Tenant.objects.create(name="Globex", slug="globex", plan=Tenant.Plan.PRO)
    return World(
        tenant=tenant,
        admin=_user(tenant, "admin@acme.test", User.Role.ADMIN),
        developer=_user(tenant, "dev@acme.test", User.Role.DEVELOPER),
        viewer=_user(tenant, "viewer@acme.test", User.Role.VIEWER),
        other_tenant=other,
        outsider=_user(other, "admin@globex.test", User.Role.ADMIN),
        staff=_user(None, "staff@platform.test", None, is_staff=True, is_superuser=True),
        support=_support_user(),
    )


def _support_user() -> User:
    from django.contrib.auth.models import Group

    from tenants.roles import SUPPORT_GROUP, support_group_ensure

    support_group_ensure()
    user = _user(None, "support@platform.test", None, is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT_GROUP))
    return user


@pytest.fixture
def console(world: World) -> Client:
    """A browser session of a staff superuser in the Django admin."""
    client = Client()
    client.force_login(world.staff)
    return client


@pytest.fixture
def support_console(world: World) -> Client:
    """A browser session in the Django admin of a staff member of the Support group."""
    client = Client()
    client.force_login(world.support)
    return client


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for(db: None) -> Callable[[User], APIClient]:
    """An API client holding a fresh session's access token for `user`."""

    def make(user: User) -> APIClient:
        _, pair = session_start(user=user, ip="127.0.0.1", user_agent="pytest")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair.access_token}")
        client.tokens = pair
        return client

    return make


def external_assets(html: str) -> list[str]:
    """What a page would load from another origin (a CDN, web fonts): the console must work offline."""
    return re.findall(r"""(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)""", html)


def assert_error(response: object, status: int, code: str) -> dict:
    """The envelope of API.md, with the expected status and code; returns the error object."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    assert error["timestamp"].endswith("Z")
    assert "details" in error
    return error


@pytest.fixture
def make_key(world):
    """Creates a key of our tenant (or another) and returns (ApiKey, secret)."""

    def make(permissions=("read", "write"), tenant=None, **fields):
        return api_key_create(
            tenant=tenant or world.tenant,
            name=fields.pop("name", "server"),
            permissions=list(permissions),
            created_by=world.admin,
            **fields,
        )

    return make


@pytest.fixture
def probe(settings):
    settings.ROOT_URLCONF = "tests.probe_urls"
    return "/api/v1/probe"


def tenant_change_form(tenant: Tenant, requests_per_minute: int | None = None, **fields: str) -> dict:
    """The POST of the console's tenant page: the tenant's fields, its rate-limit inline, empty inlines."""
    data = {"name": tenant.name, "slug": tenant.slug, "plan": tenant.plan, "settings": "{}", **fields}
    management = {"TOTAL_FORMS": "0", "INITIAL_FORMS": "0", "MIN_NUM_FORMS": "0", "MAX_NUM_FORMS": "1000"}
    for prefix in ("users", "api_keys"):
        data.update({f"{prefix}-{name}": value for name, value in management.items()})
    data.update(
        {
            "rate_limit-TOTAL_FORMS": "1",
            "rate_limit-INITIAL_FORMS": "0",
            "rate_limit-MIN_NUM_FORMS": "0",
            "rate_limit-MAX_NUM_FORMS": "1",
            "rate_limit-0-tenant": str(tenant.id),
        }
    )
    if requests_per_minute is not None:
        data["rate_limit-0-requests_per_minute"] = str(requests_per_minute)
    return data
