"""A body's values must have their JSON types (API.md: `embedding: [float]`, `value?: number`, ...):
what DRF would turn into the right type ("5" into 5, "no" into false) is a 400, never stored as
something the caller did not send. Times carry their zone."""

import pytest
from rest_framework.test import APIClient

from recommendations.models import Interaction, Item
from tests.conftest import assert_error


@pytest.fixture
def writer(world, make_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_key()[1])
    client.post("/api/v1/items", {"items": [{"id": "a", "title": "A"}]}, format="json")
    return client


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", 5, "Must be a string."),
        ("categories", ["ok", 1], "Must be a string."),
        ("is_active", "no", "Must be true or false."),
        ("is_active", 0, "Must be true or false."),
        ("embedding", ["1.5"], "Must be a number."),
        ("embedding", [True, False], "Must be a number."),
        ("description", None, "This field may not be null."),
    ],
)
def test_an_items_values_keep_their_json_types(writer, field, value, message):
    response = writer.post(
        "/api/v1/items", {"items": [{"id": "b", "title": "B", field: value}]}, format="json"
    )
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"]["items"]["0"][field] == [message]
    patch = writer.patch("/api/v1/items/a", {field: value}, format="json")
    assert assert_error(patch, 400, "VALIDATION_ERROR")["details"][field] == [message]
    assert not Item.objects.filter(external_id="b").exists()
    assert Item.objects.get(external_id="a").title == "A"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"type": "rating", "value": True}, "value", "Must be a number."),
        ({"type": "rating", "value": "4"}, "value", "Must be a number."),
        ({"type": "view", "user_id": 7}, "user_id", "Must be a string."),
    ],
)
def test_an_interactions_values_keep_their_json_types(writer, body, field, message):
    response = writer.post("/api/v1/interactions", {"user_id": "u", "item_id": "a", **body}, format="json")
    assert assert_error(response, 400, "VALIDATION_ERROR")["details"][field] == [message]
    assert not Interaction.objects.exists()


def test_a_rating_of_a_whole_number_is_a_number(writer):
    body = {"user_id": "u", "item_id": "a", "type": "rating", "value": 4}
    assert writer.post("/api/v1/interactions", body, format="json").status_code == 202
    assert Interaction.objects.get().value == 4.0


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"count": "5"}, "count", "Must be an integer."),
        ({"count": 5.0}, "count", "Must be an integer."),
        ({"count": True}, "count", "Must be an integer."),
        ({"exclude_seen": "false"}, "exclude_seen", "Must be true or false."),
    ],
)
def test_a_recommendation_requests_values_keep_their_json_types(writer, body, field, message):
    response = writer.post("/api/v1/recommendations", {"user_id": "u", **body}, format="json")
    assert assert_error(response, 400, "VALIDATION_ERROR")["details"][field] == [message]
    assert (
        writer.post("/api/v1/recommendations", {"user_id": "u", "count": 5}, format="json").status_code == 200
    )


def test_the_admin_apis_and_the_key_apis_values_keep_theirs(world, client_for):
    staff, admin = client_for(world.staff), client_for(world.admin)
    limits = staff.put(
        f"/api/admin/tenants/{world.tenant.id}/rate-limits", {"requests_per_minute": "100"}, format="json"
    )
    assert assert_error(limits, 400, "VALIDATION_ERROR")["details"]["requests_per_minute"] == [
        "Must be an integer."
    ]
    key = admin.post("/api/v1/api-keys", {"name": 12345}, format="json")
    assert assert_error(key, 400, "VALIDATION_ERROR")["details"]["name"] == ["Must be a string."]


@pytest.mark.parametrize("moment", ["2025-01-07T10:30:45", "2025-01-07", "2025-01-07 10:30:45"])
def test_a_time_without_its_zone_is_refused(writer, world, client_for, moment):
    body = {"user_id": "u", "item_id": "a", "type": "view", "timestamp": moment}
    response = writer.post("/api/v1/interactions", body, format="json")
    assert assert_error(response, 400, "VALIDATION_ERROR")["details"]["timestamp"] == [
        "Must be an ISO 8601 time with its zone, as 2025-01-07T10:30:45Z."
    ]
    key = client_for(world.admin).post("/api/v1/api-keys", {"name": "k", "expires_at": "2099-01-01T00:00:00"})
    assert "expires_at" in assert_error(key, 400, "VALIDATION_ERROR")["details"]


def test_a_time_with_its_zone_is_taken_in_utc(writer):
    for moment in ("2025-01-07T10:30:45Z", "2025-01-07T15:30:45+05:00"):
        body = {"user_id": "u", "item_id": "a", "type": "view", "timestamp": moment}
        assert writer.post("/api/v1/interactions", body, format="json").status_code == 202
    assert {row.timestamp.isoformat() for row in Interaction.objects.all()} == {"2025-01-07T10:30:45+00:00"}


def test_an_items_id_is_not_changed_by_a_patch(writer):
    changed = writer.patch("/api/v1/items/a", {"id": "z", "title": "New"}, format="json")
    assert assert_error(changed, 400, "VALIDATION_ERROR")["details"]["id"] == [
        "An item's id cannot be changed: it is the URL's."
    ]
    assert (
        Item.objects.get(external_id="a").title == "A" and not Item.objects.filter(external_id="z").exists()
    )
    as_read = writer.get("/api/v1/items/a").json()
    sent_back = writer.patch("/api/v1/items/a", {**as_read, "title": "New"}, format="json")
    assert sent_back.status_code == 200 and sent_back.json()["title"] == "New"
    # An id's spaces are its own: sent back as read, it is the same id.
    writer.post("/api/v1/items", {"items": [{"id": " b\u00a0", "title": "B"}]}, format="json")
    as_read = writer.get("/api/v1/items/ b\u00a0").json()
    sent_back = writer.patch("/api/v1/items/ b\u00a0", {**as_read, "title": "New"}, format="json")
    assert sent_back.status_code == 200 and sent_back.json()["id"] == " b\u00a0"


def test_a_number_beyond_a_double_is_refused_where_free_json_is_kept(world, client_for, make_key):
    from rest_framework.test import APIClient

    from tenants.models import Tenant

    staff = client_for(world.staff)
    answer = staff.patch(
        f"/api/admin/tenants/{world.tenant.id}", '{"settings": {"a": 1e999}}', content_type="application/json"
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "VALIDATION_ERROR"
    assert Tenant.objects.get(pk=world.tenant.pk).settings == {}
    _, secret = make_key()
    writer = APIClient()
    writer.credentials(HTTP_X_API_KEY=secret)
    body = '{"items": [{"id": "i", "title": "I", "metadata": {"big": -1e999}}]}'
    answer = writer.post("/api/v1/items", body, content_type="application/json")
    assert answer.status_code == 400 and "infinite" in answer.json()["error"]["message"]
