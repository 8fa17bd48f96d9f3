"""NUL characters: PostgreSQL's text and jsonb cannot hold them, so wherever a request brings one it is
refused in the envelope, never a 500 (the suite runs on PostgreSQL in CI)."""

import pytest
from django.db import DataError
from rest_framework.test import APIClient

from config.exceptions import exception_handler
from recommendations.models import Item
from tests.conftest import assert_error


@pytest.fixture
def writer(world, make_key):
    _, secret = make_key(permissions=["read", "write"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    assert (
        client.post("/api/v1/items", {"items": [{"id": "a", "title": "A"}]}, format="json").status_code == 200
    )
    return client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/items/a%00b"),
        ("patch", "/api/v1/items/a%00b"),
        ("delete", "/api/v1/items/a%00b"),
        ("get", "/api/v1/items/a%00b/similar"),
    ],
)
def test_an_item_id_with_a_nul_is_not_found(world, writer, method, path):
    assert_error(getattr(writer, method)(path, {"title": "B"}, format="json"), 404, "NOT_FOUND")


def test_metadata_with_a_nul_is_refused_and_nothing_is_stored(world, writer):
    for metadata in ({"k": "a\u0000b"}, {"a\u0000b": 1}, {"deep": [{"k": "\u0000"}]}):
        response = writer.post(
            "/api/v1/items", {"items": [{"id": "n", "title": "N", "metadata": metadata}]}, format="json"
        )
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert "NUL" in str(error["details"])
    assert_error(
        writer.patch("/api/v1/items/a", {"metadata": {"k": "\u0000"}}, format="json"), 400, "VALIDATION_ERROR"
    )
    assert not Item.objects.filter(external_id="n").exists()
    assert Item.objects.get(tenant=world.tenant, external_id="a").metadata == {}


def test_tenant_settings_with_a_nul_are_refused(world, client_for):
    staff = client_for(world.staff)
    body = {"name": "Nul", "slug": "nul", "plan": "starter", "settings": {"x": "\u0000"}}
    error = assert_error(staff.post("/api/admin/tenants", body, format="json"), 400, "VALIDATION_ERROR")
    assert "settings" in error["details"]


def test_a_refusal_echoing_a_nul_is_answered_again_under_its_idempotency_key(world, writer):
    body = {"user_id": "u", "item_id": "a", "type": "\u0000"}
    for _ in range(2):  # not stored (jsonb cannot hold the echo), so answered afresh: never 500 or 409
        response = writer.post("/api/v1/interactions", body, format="json", HTTP_IDEMPOTENCY_KEY="nul-1")
        assert_error(response, 400, "VALIDATION_ERROR")


def test_a_value_the_database_refuses_is_a_400_in_the_envelope():
    response = exception_handler(DataError("value out of range for type integer"), {"view": None})
    assert response.status_code == 400
    assert response.data["error"]["code"] == "VALIDATION_ERROR"
    assert response.data["error"]["message"] == "A value in the request cannot be stored or looked up."
