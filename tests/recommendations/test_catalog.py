import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework.exceptions import NotFound
from rest_framework.test import APIClient

from recommendations.models import Interaction, Item
from tests.conftest import assert_error

ITEMS = "/api/v1/items"


def item(item_id, **fields):
    return {"id": item_id, "title": fields.pop("title", f"Item {item_id}"), **fields}


@pytest.fixture
def writer(make_key):
    _, secret = make_key(permissions=["read", "write"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    return client


@pytest.fixture
def reader(make_key):
    _, secret = make_key(permissions=["read"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    return client


class TestUpsert:
    def test_it_creates_then_updates_by_the_tenants_own_id(self, world, writer):
        response = writer.post(
            ITEMS, {"items": [item("sku-1", categories=["shoes"]), item("sku.2/x".replace("/", ""))]}
        )
        assert response.status_code == 200
        assert response.json() == {"created": 2, "updated": 0}
        response = writer.post(
            ITEMS, {"items": [item("sku-1", title="Renamed", metadata={"price": 10}), item("sku-3")]}
        )
        assert response.json() == {"created": 1, "updated": 1}
        row = Item.objects.get(tenant=world.tenant, external_id="sku-1")
        assert row.title == "Renamed" and row.metadata == {"price": 10} and row.categories == []
        assert Item.objects.filter(tenant=world.tenant).count() == 3

    def test_one_invalid_item_rejects_the_batch_with_its_index(self, world, writer):
        batch = [item("ok-1"), item("ok-2"), {"id": "bad", "embedding": ["x"]}, item("ok-3")]
        error = assert_error(writer.post(ITEMS, {"items": batch}), 400, "VALIDATION_ERROR")
        assert list(error["details"]["items"]) == ["2"]
        assert set(error["details"]["items"]["2"]) == {"title", "embedding"}
        assert error["message"].startswith("items.2.")
        assert Item.objects.count() == 0

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({}, "This field is required."),
            ({"id": "a", "title": "single"}, "This field is required."),
            ({"items": None}, "This field may not be null."),
            ({"items": []}, "This list may not be empty."),
            ({"items": "nope"}, 'Expected a list of items but got type "str".'),
            (
                {"items": [item(str(n)) for n in range(1001)]},
                "Ensure this field has no more than 1000 elements.",
            ),
        ],
    )
    def test_an_error_of_the_batch_field_itself_is_not_an_items_error(self, world, writer, body, message):
        error = assert_error(writer.post(ITEMS, body), 400, "VALIDATION_ERROR")
        unknown = ["Unknown field; this endpoint accepts: items."]
        assert error["details"] == {"items": [message], **{name: unknown for name in body if name != "items"}}
        assert error["message"].startswith(f"items: {message}")

    @pytest.mark.parametrize(
        "body",
        [
            {"items": []},
            {"items": [item(str(n)) for n in range(1001)]},
            {"items": "nope"},
            {},
            [item("a")],
            {"items": [item("a"), item("a")]},
            {"items": [item("")]},
            {"items": [item("x" * 256)]},
            {"items": [item("a", metadata=[1])]},
            {"items": [item("a", categories="shoes")]},
        ],
    )
    def test_it_validates(self, world, writer, body):
        assert_error(writer.post(ITEMS, body), 400, "VALIDATION_ERROR")
        assert Item.objects.count() == 0

    @pytest.mark.parametrize("depth", [33, 896])
    def test_metadata_nested_too_deeply_is_refused(self, world, writer, depth):
        nested: dict = {}
        for _ in range(depth - 1):
            nested = {"a": nested}
        response = writer.post(ITEMS, {"items": [item("deep", metadata=nested)]})
        error = assert_error(response, 400, "VALIDATION_ERROR")
        if depth == 33:
            assert error["details"]["items"]["0"]["metadata"] == ["Must not nest deeper than 32 levels."]
        else:  # refused by the parser or by the field, depending on how deep the stack already is
            assert "nested too deeply" in error["message"] or "32 levels" in error["message"]
        assert not Item.objects.exists()

    def test_metadata_as_deep_as_allowed_is_kept(self, world, writer):
        nested: dict = {"leaf": [1, {"x": True}]}
        for _ in range(29):
            nested = {"a": nested}
        assert writer.post(ITEMS, {"items": [item("deep", metadata=nested)]}).status_code == 200
        assert Item.objects.get(external_id="deep").metadata == nested

    def test_nan_is_not_json(self, world, writer):
        body = '{"items": [{"id": "a", "title": "t", "embedding": [NaN]}]}'
        assert_error(writer.post(ITEMS, body, content_type="application/json"), 400, "VALIDATION_ERROR")

    def test_a_thousand_items_in_one_batch(self, world, writer):
        batch = [item(f"i{n}", description="words " * 20, categories=["c" + str(n % 7)]) for n in range(1000)]
        assert writer.post(ITEMS, {"items": batch}).json() == {"created": 1000, "updated": 0}

    def test_read_keys_and_viewers_may_not_write(self, world, reader, client_for):
        assert_error(reader.post(ITEMS, {"items": [item("a")]}), 403, "FORBIDDEN")
        assert_error(client_for(world.viewer).post(ITEMS, {"items": [item("a")]}), 403, "FORBIDDEN")
        assert client_for(world.developer).post(ITEMS, {"items": [item("a")]}).status_code == 200


class TestRead:
    def test_list_pages_with_a_cursor_and_filters_by_category(self, world, writer, reader):
        writer.post(
            ITEMS,
            {"items": [item(f"i{n:02}", categories=["even" if n % 2 == 0 else "odd"]) for n in range(25)]},
        )
        seen, cursor = [], None
        while True:
            params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
            page = reader.get(ITEMS, params).json()
            seen += [row["id"] for row in page["results"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"i{n:02}" for n in range(25)]
        evens = reader.get(ITEMS, {"category": "even", "limit": 100}).json()
        assert [row["id"] for row in evens["results"]] == [f"i{n:02}" for n in range(0, 25, 2)]
        assert evens["next_cursor"] is None

    def test_a_cursor_tells_nothing_and_serves_only_its_tenant(self, world, writer, reader, make_key):
        from rest_framework.test import APIClient

        writer.post(ITEMS, {"items": [item(f"i{n}") for n in range(3)]})
        cursor = reader.get(ITEMS, {"limit": 1}).json()["next_cursor"]
        # Not the platform's row key (which would tell how many items all tenants hold): sealed, and
        # sealed anew each time.
        assert not cursor.isdigit() and cursor != reader.get(ITEMS, {"limit": 1}).json()["next_cursor"]
        assert [row["id"] for row in reader.get(ITEMS, {"limit": 1, "cursor": cursor}).json()["results"]] == [
            "i1"
        ]
        tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
        assert_error(reader.get(ITEMS, {"cursor": tampered}), 400, "VALIDATION_ERROR")
        theirs = APIClient()
        theirs.credentials(HTTP_X_API_KEY=make_key(tenant=world.other_tenant)[1])
        assert_error(theirs.get(ITEMS, {"cursor": cursor}), 400, "VALIDATION_ERROR")
        # A bare row key is no cursor: probing numbers would tell the platform's row keys.
        first = Item.objects.get(tenant=world.tenant, external_id="i0").pk
        assert_error(reader.get(ITEMS, {"limit": 1, "cursor": str(first)}), 400, "VALIDATION_ERROR")

    @pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"cursor": "%%%"}])
    def test_list_validates(self, world, reader, params):
        assert_error(reader.get(ITEMS, params), 400, "VALIDATION_ERROR")

    def test_get_patch_delete_one(self, world, writer):
        writer.post(ITEMS, {"items": [item("sku.1:x", categories=["a"])]})
        url = f"{ITEMS}/sku.1:x"
        body = writer.get(url).json()
        assert body["id"] == "sku.1:x" and body["categories"] == ["a"] and body["is_active"] is True
        assert set(body) == {
            "id",
            "title",
            "description",
            "categories",
            "metadata",
            "embedding",
            "is_active",
            "created_at",
            "updated_at",
        }
        patched = writer.patch(url, {"title": "New", "is_active": False}).json()
        assert patched["title"] == "New" and patched["is_active"] is False
        assert_error(writer.patch(url, {"metadata": "x"}), 400, "VALIDATION_ERROR")
        assert writer.delete(url).status_code == 204
        assert_error(writer.get(url), 404, "NOT_FOUND")

    def test_another_tenants_items_are_not_found(self, world, writer, make_key):
        writer.post(ITEMS, {"items": [item("mine")]})
        _, other_secret = make_key(tenant=world.other_tenant)
        other = APIClient()
        other.credentials(HTTP_X_API_KEY=other_secret)
        other.post(ITEMS, {"items": [item("theirs")]})
        assert [row["id"] for row in writer.get(ITEMS).json()["results"]] == ["mine"]
        for response in (
            writer.get(f"{ITEMS}/theirs"),
            writer.patch(f"{ITEMS}/theirs", {"title": "pwned"}),
            writer.delete(f"{ITEMS}/theirs"),
            writer.get(f"{ITEMS}/theirs/similar"),
        ):
            assert_error(response, 404, "NOT_FOUND")
        assert Item.objects.get(external_id="theirs").title == "Item theirs"
        # The same id in two tenants is two items.
        assert other.post(ITEMS, {"items": [item("mine")]}).json() == {"created": 1, "updated": 0}


class TestInteractions:
    URL = "/api/v1/interactions"

    def test_one_or_a_batch(self, world, writer):
        writer.post(ITEMS, {"items": [item("a"), item("b")]})
        assert writer.post(self.URL, {"user_id": "u1", "item_id": "a", "type": "view"}).json() == {
            "accepted": 1
        }
        batch = {
            "interactions": [
                {"user_id": "u1", "item_id": "b", "type": "purchase", "timestamp": "2026-01-01T10:00:00Z"},
                {"user_id": "u2", "item_id": "a", "type": "rating", "value": 4.5},
            ]
        }
        response = writer.post(self.URL, batch)
        assert response.status_code == 202 and response.json() == {"accepted": 2}
        assert Interaction.objects.filter(tenant=world.tenant).count() == 3
        rating = Interaction.objects.get(user_id="u2")
        assert rating.value == 4.5 and rating.type == "rating"

    def test_an_unknown_item_refuses_the_batch(self, world, writer, make_key):
        writer.post(ITEMS, {"items": [item("a")]})
        _, other_secret = make_key(tenant=world.other_tenant)
        other = APIClient()
        other.credentials(HTTP_X_API_KEY=other_secret)
        other.post(ITEMS, {"items": [item("theirs")]})
        batch = {
            "interactions": [
                {"user_id": "u", "item_id": "a", "type": "view"},
                {"user_id": "u", "item_id": "theirs", "type": "view"},
            ]
        }
        error = assert_error(writer.post(self.URL, batch), 400, "VALIDATION_ERROR")
        assert list(error["details"]["interactions"]) == ["1"]
        assert Interaction.objects.count() == 0
        # One interaction alone: its error is its own, as for any other field of it.
        alone = {"user_id": "u", "item_id": "theirs", "type": "view"}
        error = assert_error(writer.post(self.URL, alone), 400, "VALIDATION_ERROR")
        assert error["details"] == {"item_id": ["No item 'theirs' in the catalog."]}
        assert Interaction.objects.count() == 0
        null = assert_error(writer.post(self.URL, {"interactions": None}), 400, "VALIDATION_ERROR")
        assert null["details"] == {"interactions": ["This field may not be null."]}

    @pytest.mark.parametrize(
        "body",
        [
            {"user_id": "u", "item_id": "a", "type": "stare"},
            {"user_id": "u", "item_id": "a", "type": "rating"},
            {"user_id": "", "item_id": "a", "type": "view"},
            {"user_id": "u", "item_id": "a", "type": "view", "timestamp": "2999-01-01T00:00:00Z"},
            {"user_id": "u", "item_id": "a", "type": "view", "value": "big"},
            {"interactions": []},
            {"interactions": [{"user_id": "u", "item_id": "a", "type": "view"}] * 1001},
        ],
    )
    def test_it_validates(self, world, writer, body):
        writer.post(ITEMS, {"items": [item("a")]})
        assert_error(writer.post(self.URL, body), 400, "VALIDATION_ERROR")
        assert Interaction.objects.count() == 0

    def test_read_keys_may_not_record(self, world, writer, reader):
        writer.post(ITEMS, {"items": [item("a")]})
        assert_error(
            reader.post(self.URL, {"user_id": "u", "item_id": "a", "type": "view"}), 403, "FORBIDDEN"
        )


def test_misspelt_or_unknown_item_fields_are_refused_not_dropped(world, writer):
    batch = {"items": [{"id": "ok", "title": "OK"}, {"id": "typo", "title": "T", "category": ["shoes"]}]}
    error = assert_error(writer.post(ITEMS, batch, format="json"), 400, "VALIDATION_ERROR")
    assert "category" in error["details"]["items"]["1"]
    assert not Item.objects.filter(tenant=world.tenant, external_id__in=["ok", "typo"]).exists()
    writer.post(ITEMS, {"items": [{"id": "ok", "title": "OK"}]}, format="json")
    error = assert_error(writer.patch(f"{ITEMS}/ok", {"titel": "x"}, format="json"), 400, "VALIDATION_ERROR")
    assert "titel" in error["details"]
    read = writer.get(f"{ITEMS}/ok").json()  # an item as read may be sent back, changed
    assert writer.patch(f"{ITEMS}/ok", {**read, "title": "Better"}, format="json").json()["title"] == "Better"


@pytest.mark.parametrize(
    ("path", "body", "unknown"),
    [
        (ITEMS, {"items": [item("a")], "foo": 1}, ["foo"]),
        (
            "/api/v1/interactions",
            {"user_id": "u", "item_id": "a", "type": "view", "timestmap": "x"},
            ["timestmap"],
        ),
        (
            "/api/v1/interactions",
            {"interactions": [{"user_id": "u", "item_id": "a", "type": "view"}], "x": 1},
            ["x"],
        ),
        ("/api/v1/recommendations", {"user_id": "u", "exclude_sen": False}, ["exclude_sen"]),
        ("/api/v1/recommendations", {"user_id": "u", "filters": {"category": ["x"]}}, ["filters"]),
    ],
)
def test_misspelt_fields_of_every_write_are_refused_not_dropped(world, writer, path, body, unknown):
    writer.post(ITEMS, {"items": [item("a")]})
    error = assert_error(writer.post(path, body, format="json"), 400, "VALIDATION_ERROR")
    assert list(error["details"]) == unknown
    assert not Interaction.objects.exists()


@pytest.mark.parametrize("value", [3.5e38, -1e39])
def test_an_embedding_value_beyond_32_bit_floats_is_refused(world, writer, value):
    error = assert_error(
        writer.post(ITEMS, {"items": [item("big", embedding=[value, 1.0])]}, format="json"),
        400,
        "VALIDATION_ERROR",
    )
    assert "embedding" in error["details"]["items"]["0"]
    assert (
        writer.post(ITEMS, {"items": [item("big", embedding=[3.4e38, 1.0])]}, format="json").status_code
        == 200
    )


@pytest.mark.parametrize("path", [ITEMS, "/api/v1/interactions", "/api/v1/recommendations"])
def test_options_describes_the_endpoint(world, writer, path):
    response = writer.options(path)
    assert response.status_code == 200, response.content
    assert response.json()["name"]


def test_an_item_id_with_a_slash_is_refused_and_the_schema_says_so(world, writer, api):
    error = assert_error(writer.post(ITEMS, {"items": [item("shoes/123")]}), 400, "VALIDATION_ERROR")
    assert error["details"]["items"]["0"]["id"] == ["Must not contain '/' (it is a part of the item's URL)."]
    assert not Item.objects.exists()
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "'/'" in schema["components"]["schemas"]["ItemInputRequest"]["properties"]["id"]["description"]


class TestConcurrentWrites:
    """A PATCH or DELETE works on the item its view read a moment before; another request may have
    changed or deleted it since. These pass that earlier copy to the service, as the race would."""

    def test_a_patch_of_an_item_deleted_meanwhile_is_not_found_and_does_not_bring_it_back(
        self, world, writer
    ):
        from recommendations import services

        writer.post(ITEMS, {"items": [item("d")]})
        read_before = Item.objects.get(external_id="d")
        assert writer.delete(f"{ITEMS}/d").status_code == 204
        for change in ({"title": "new"}, {"is_active": False}):
            with pytest.raises(NotFound):
                services.item_update(item=read_before, **change)
        assert not Item.objects.filter(external_id="d").exists()
        with pytest.raises(NotFound):
            services.item_delete(item=read_before)

    def test_a_patch_writes_only_its_own_fields(self, world, writer):
        from recommendations import services

        writer.post(ITEMS, {"items": [item("p", categories=["a"])]})
        read_before = Item.objects.get(external_id="p")
        assert writer.patch(f"{ITEMS}/p", {"is_active": False}).status_code == 200
        services.item_update(item=read_before, title="new")
        assert writer.get(f"{ITEMS}/p").json() | {"created_at": None, "updated_at": None} == {
            **item("p", title="new", categories=["a"]),
            "description": "",
            "metadata": {},
            "embedding": None,
            "is_active": False,
            "created_at": None,
            "updated_at": None,
        }


@pytest.mark.django_db(transaction=True)
def test_interactions_with_an_item_deleted_after_the_lookup_are_refused_not_a_500(world, writer, monkeypatch):
    from recommendations import services

    writer.post(ITEMS, {"items": [item("k"), item("kept")]})
    lookup = services._catalog_ids

    def deleted_right_after(tenant, external_ids):
        found = lookup(tenant, external_ids)
        Item.objects.filter(tenant=tenant, external_id="k").delete()  # a DELETE that commits meanwhile
        monkeypatch.setattr(services, "_catalog_ids", lookup)
        return found

    monkeypatch.setattr(services, "_catalog_ids", deleted_right_after)
    batch = [
        {"user_id": "u", "item_id": "kept", "type": "view"},
        {"user_id": "u", "item_id": "k", "type": "view"},
    ]
    error = assert_error(
        writer.post("/api/v1/interactions", {"interactions": batch}), 400, "VALIDATION_ERROR"
    )
    assert error["details"] == {"interactions": {"1": {"item_id": ["No item 'k' in the catalog."]}}}
    assert not Interaction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_batches_sharing_items_in_opposite_orders_both_go_through(world, make_key):
    if connection.vendor != "postgresql":
        pytest.skip("the race is PostgreSQL's (SQLite writes one transaction at a time)")
    _, secret = make_key(permissions=["read", "write"])
    ids = [f"i{n:03d}" for n in range(300)]

    def upsert(order):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secret)
        try:
            return client.post(ITEMS, {"items": [item(i) for i in order]}, format="json").status_code
        finally:
            connection.close()

    upsert(ids)
    # Each locks the rows it updates in its own order: in opposite orders they deadlocked (one a 503).
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=2) as pool:
            assert list(pool.map(upsert, [ids, ids[::-1]])) == [200, 200]


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_of_the_same_new_items_count_each_creation_once(world, make_key):
    if connection.vendor != "postgresql":
        pytest.skip("the race is PostgreSQL's (SQLite writes one transaction at a time)")
    _, secret = make_key(permissions=["read", "write"])
    barrier = threading.Barrier(4)

    def upsert(batch: int) -> dict:
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secret)
        try:
            barrier.wait()
            return client.post(ITEMS, {"items": [item(f"new-{n}") for n in range(50)]}, format="json").json()
        finally:
            connection.close()

    for _ in range(3):
        Item.objects.filter(tenant=world.tenant).delete()
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(upsert, range(4)))
        # Each new item was created by one batch and updated by the other three, whatever the timing.
        assert sum(answer["created"] for answer in answers) == 50, answers
        assert sum(answer["updated"] for answer in answers) == 150, answers


def test_a_body_of_many_made_up_fields_gets_a_short_answer(world, writer):
    body = {"user_id": "u", **{f"k{n}": 1 for n in range(5000)}}
    response = writer.post("/api/v1/recommendations", body, format="json")
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert list(error["details"]) == [f"k{n}" for n in range(10)]
    assert len(response.content) < 3000


def test_a_lone_surrogate_in_metadata_is_refused_with_the_items_index(world, writer):
    body = (
        '{"items": [{"id": "ok", "title": "OK"}, {"id": "bad", "title": "B", "metadata": {"k": "\\ud800"}}]}'
    )
    response = writer.generic("POST", ITEMS, body, content_type="application/json")
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "lone surrogate" in error["details"]["items"]["1"]["metadata"][0]
    assert not Item.objects.exists()
