"""Every URL, every method, every kind of caller: a method a URL does not serve is a 405 in the error
envelope (API.md, "Errors"), and nothing is ever a 500."""

import re

import pytest
from rest_framework.test import APIClient

from tests.conftest import assert_error

METHODS = ("get", "post", "put", "patch", "delete")
# Pages and documents outside the schema.
OTHER_PATHS = {"/docs": {"get"}, "/redoc": {"get"}, "/api/schema/": {"get"}, "/health": {"get"}}


def _served(api: APIClient) -> dict[str, set[str]]:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    served = {
        re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path): set(operations) & set(METHODS)
        for path, operations in schema["paths"].items()
    }
    return {**served, **OTHER_PATHS}


@pytest.fixture
def callers(world, make_key, client_for, settings):
    settings.RATE_LIMIT_ENABLED = False  # a thousand requests: no 429 may hide what a URL answers

    def key(permissions):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=make_key(permissions)[1])
        return client

    def make():
        return {
            "admin": client_for(world.admin),
            "viewer": client_for(world.viewer),
            "read key": key(("read",)),
            "write key": key(("read", "write")),
            "staff": client_for(world.staff),
            "nobody": APIClient(),
        }

    return make


def test_a_method_a_url_does_not_serve_is_a_405_for_its_callers(db, api, callers):
    served, clients = _served(api), callers()
    assert len(served) > 20
    checked = 0
    for path, methods in served.items():
        if path.startswith("/api/v1/auth/"):
            continue  # each its own caller: the sweep below still holds them to no 500
        own = ("staff",) if path.startswith("/api/admin/") else ("admin", "viewer", "read key", "write key")
        for method in set(METHODS) - methods:
            for name in own if path.startswith("/api/") else ("nobody",):
                response = getattr(clients[name], method)(path, {}, format="json")
                assert_error(response, 405, "METHOD_NOT_ALLOWED"), (name, method, path)
                checked += 1
    assert checked > 50


def test_no_caller_gets_a_500_from_any_url_and_method(db, api, callers):
    for path in _served(api):
        for method in (*METHODS, "options"):
            # Fresh credentials each time: a logout-all or a password change ends the caller's session.
            for name, client in callers().items():
                response = getattr(client, method)(path, {}, format="json")
                assert response.status_code < 500, (name, method, path, response.content[:200])
                if name != "nobody":
                    assert response.status_code != 401, (name, method, path)
