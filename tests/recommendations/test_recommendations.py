import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from recommendations import engine
from recommendations.models import Interaction, Item
from recommendations.services import engine_train
from tenants.models import IdempotencyRecord
from tests.conftest import assert_error

URL = "/api/v1/recommendations"


@pytest.fixture
def shop(world, make_key):
    """Our tenant's catalog: shoes and hats; a few users who like shoes."""
    _, secret = make_key()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    items = [{"id": f"shoe-{n}", "title": f"Shoe {n}", "categories": ["shoes"]} for n in range(6)]
    items += [{"id": f"hat-{n}", "title": f"Hat {n}", "categories": ["hats"]} for n in range(6)]
    client.post("/api/v1/items", {"items": items})
    start = timezone.now() - timedelta(days=1)
    batch = []
    for user in range(8):
        for step, shoe in enumerate((0, 1, 2, 3)):
            batch.append(
                {
                    "user_id": f"fan-{user}",
                    "item_id": f"shoe-{(shoe + user) % 6}",
                    "type": "click",
                    "timestamp": (start + timedelta(minutes=10 * user + step)).isoformat(),
                }
            )
    batch += [{"user_id": "hatter", "item_id": f"hat-{n}", "type": "purchase"} for n in range(3)]
    client.post("/api/v1/interactions", {"interactions": batch})
    engine_train(tenant_id=str(world.tenant.id))
    return client


def ids(response):
    return [row["item_id"] for row in response.json()["recommendations"]]


class TestRecommendations:
    def test_a_shoe_fan_gets_shoes_first_and_never_what_they_saw(self, world, shop):
        shop.post("/api/v1/interactions", {"user_id": "new-fan", "item_id": "shoe-0", "type": "purchase"})
        response = shop.post(URL, {"user_id": "new-fan", "count": 4})
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"user_id", "recommendations", "strategy", "request_id"}
        assert body["request_id"] == response["X-Request-ID"]
        assert body["strategy"].startswith("personalized")
        assert all(item.startswith("shoe-") for item in ids(response))
        assert "shoe-0" not in ids(response)
        scores = [row["score"] for row in body["recommendations"]]
        assert scores == sorted(scores, reverse=True)
        assert all(row["title"].startswith("Shoe") for row in body["recommendations"])

    def test_exclude_seen_false_may_repeat_history(self, world, shop):
        seen = Interaction.objects.filter(user_id="fan-0").values_list("item__external_id", flat=True)
        body = shop.post(URL, {"user_id": "fan-0", "count": 12, "exclude_seen": False})
        assert set(seen) <= set(ids(body))
        assert not set(seen) & set(ids(shop.post(URL, {"user_id": "fan-0", "count": 12})))

    def test_an_end_users_id_may_hold_a_slash_but_not_control_characters(self, world, shop):
        user = "org/42"
        assert (
            shop.post(
                "/api/v1/interactions", {"user_id": user, "item_id": "hat-1", "type": "like"}
            ).status_code
            == 202
        )
        response = shop.post(URL, {"user_id": user, "count": 5})
        body = response.json()
        assert body["user_id"] == user and "hat-1" not in ids(response)  # its history was found
        assert body["strategy"].startswith("personalized")
        error = assert_error(shop.post(URL, {"user_id": "a\x01b"}), 400, "VALIDATION_ERROR")
        assert error["details"] == {"user_id": ["Must not contain control characters (U+0000 to U+001F)."]}

    def test_a_user_without_history_gets_popular_then_newest(self, world, shop):
        body = shop.post(URL, {"user_id": "stranger", "count": 12}).json()
        assert body["strategy"] == "popular+newest"
        assert len(body["recommendations"]) == 12  # every eligible item when there are that many
        assert len(set(ids_ := [row["item_id"] for row in body["recommendations"]])) == 12
        assert ids_[0].startswith("shoe-")  # the most popular first

    def test_filters_categories_and_exclusions_and_inactive_items(self, world, shop):
        shop.patch("/api/v1/items/hat-5", {"is_active": False})
        body = shop.post(
            URL,
            {
                "user_id": "fan-1",
                "count": 10,
                "filters": {"categories": ["hats"], "exclude_item_ids": ["hat-4"]},
            },
        )
        assert sorted(ids(body)) == ["hat-0", "hat-1", "hat-2", "hat-3"]
        everything = ids(shop.post(URL, {"user_id": "stranger", "count": 100}))
        assert "hat-5" not in everything and len(everything) == 11

    def test_it_fills_up_to_count_and_says_so(self, world, shop):
        body = shop.post(URL, {"user_id": "hatter", "count": 9}).json()
        assert len(body["recommendations"]) == 9
        assert "+" in body["strategy"]

    def test_another_tenants_items_never_appear(self, world, shop, make_key):
        _, secret = make_key(tenant=world.other_tenant)
        other = APIClient()
        other.credentials(HTTP_X_API_KEY=secret)
        other.post("/api/v1/items", {"items": [{"id": "secret-item", "title": "Globex secret"}]})
        other.post("/api/v1/interactions", {"user_id": "fan-0", "item_id": "secret-item", "type": "purchase"})
        assert "secret-item" not in ids(shop.post(URL, {"user_id": "fan-0", "count": 100}))
        assert ids(other.post(URL, {"user_id": "x", "count": 5})) == ["secret-item"]
        # Nor among the items similar to ours, though the same users touched both.
        shop.post("/api/v1/interactions", {"user_id": "fan-0", "item_id": "shoe-1", "type": "purchase"})
        similar = shop.get("/api/v1/items/shoe-1/similar", {"count": 100}).json()["similar"]
        assert similar and "secret-item" not in [row["item_id"] for row in similar]

    def test_new_interactions_count_at_once_without_retraining(self, world, shop):
        before = ids(shop.post(URL, {"user_id": "convert", "count": 3}))
        shop.post("/api/v1/interactions", {"user_id": "convert", "item_id": "hat-0", "type": "purchase"})
        after = ids(shop.post(URL, {"user_id": "convert", "count": 3}))
        assert after != before and "hat-0" not in after
        assert any(item.startswith("hat-") for item in after)

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"user_id": "u", "count": 0},
            {"user_id": "u", "count": 101},
            {"user_id": "u", "filters": {"categories": "x"}},
            {"user_id": "u", "exclude_seen": "maybe"},
            {"user_id": ["u"]},
        ],
    )
    def test_it_validates(self, world, shop, body):
        assert_error(shop.post(URL, body), 400, "VALIDATION_ERROR")

    def test_viewers_read_keys_and_write_keys_may_ask(self, world, shop, client_for, make_key):
        assert client_for(world.viewer).post(URL, {"user_id": "u"}).status_code == 200
        for permissions in (["read"], ["write"]):
            _, secret = make_key(permissions=permissions)
            caller = APIClient()
            caller.credentials(HTTP_X_API_KEY=secret)
            assert caller.post(URL, {"user_id": "u"}).status_code == 200

    def test_the_hot_path_costs_one_query(self, world, shop, django_assert_max_num_queries):
        shop.post(URL, {"user_id": "fan-2"})  # builds this process's index
        # The user's history is the one query; with Redis the key, limits and usage cost none.
        budget = 1 if connection.vendor == "postgresql" or engine_uses_shared_cache() else 2
        with django_assert_max_num_queries(budget):
            assert shop.post(URL, {"user_id": "fan-2"}).status_code == 200


def engine_uses_shared_cache() -> bool:
    from django.conf import settings

    return bool(settings.USAGE_BUFFER_REDIS_URL)


class TestSimilar:
    def test_similar_items_by_behaviour_and_for_a_new_item_by_content(self, world, shop):
        body = shop.get("/api/v1/items/shoe-1/similar", {"count": 3}).json()
        assert body["item_id"] == "shoe-1"
        assert len(body["similar"]) == 3
        assert all(row["item_id"].startswith("shoe-") for row in body["similar"])
        shop.post(
            "/api/v1/items", {"items": [{"id": "hat-new", "title": "Hat deluxe", "categories": ["hats"]}]}
        )
        fresh = shop.get("/api/v1/items/hat-new/similar", {"count": 3}).json()["similar"]
        assert fresh and all(row["item_id"].startswith("hat-") for row in fresh)

    def test_it_validates_and_404s(self, world, shop):
        assert_error(shop.get("/api/v1/items/nope/similar"), 404, "NOT_FOUND")
        assert_error(shop.get("/api/v1/items/shoe-1/similar", {"count": 0}), 400, "VALIDATION_ERROR")


class TestIndex:
    def test_the_memory_index_is_rebuilt_only_when_the_tenant_changed(self, world, shop):
        tenant_id = str(world.tenant.id)
        first = engine.index_for(tenant_id)
        shop.post("/api/v1/interactions", {"user_id": "u", "item_id": "hat-1", "type": "view"})
        assert engine.index_for(tenant_id) is first  # an interaction does not rebuild it
        shop.post("/api/v1/items", {"items": [{"id": "boot", "title": "Boot"}]})
        second = engine.index_for(tenant_id)
        assert second is not first and "boot" in second.position_of_id
        engine_train(tenant_id=tenant_id)
        assert engine.index_for(tenant_id) is not second


class TestIdempotency:
    def test_a_retry_replays_the_first_answer_and_does_nothing_twice(self, world, shop):
        headers = {"HTTP_IDEMPOTENCY_KEY": "batch-42"}
        body = {"interactions": [{"user_id": "u", "item_id": "hat-1", "type": "view"}]}
        first = shop.post("/api/v1/interactions", body, **headers)
        again = shop.post("/api/v1/interactions", body, **headers)
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
        assert Interaction.objects.filter(user_id="u").count() == 1

    def test_a_replayed_refusal_names_the_retrys_request_id(self, world, shop):
        body = {"interactions": [{"user_id": "u", "item_id": "not-in-the-catalog", "type": "view"}]}
        first = assert_error(
            shop.post("/api/v1/interactions", body, HTTP_IDEMPOTENCY_KEY="bad-1"), 400, "VALIDATION_ERROR"
        )
        again = shop.post("/api/v1/interactions", body, HTTP_IDEMPOTENCY_KEY="bad-1")
        replayed = assert_error(again, 400, "VALIDATION_ERROR")  # its request_id is the retry's own
        assert again["Idempotent-Replayed"] == "true"
        assert replayed["request_id"] != first["request_id"]
        assert {**replayed, "request_id": None} == {
            **first,
            "request_id": None,
            "timestamp": replayed["timestamp"],
        }

    def test_the_same_key_with_another_body_is_422(self, world, shop):
        shop.post("/api/v1/items", {"items": [{"id": "z", "title": "Z"}]}, HTTP_IDEMPOTENCY_KEY="k1")
        response = shop.post(
            "/api/v1/items", {"items": [{"id": "z", "title": "Other"}]}, HTTP_IDEMPOTENCY_KEY="k1"
        )
        assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
        assert Item.objects.get(external_id="z").title == "Z"

    def test_the_same_json_spelt_otherwise_is_the_same_body(self, world, shop):
        first = b'{"items": [{"id": "z", "title": "Z"}]}'
        spelt_otherwise = b'{ "items" : [ { "title":"Z",\n "id":"z" } ] }'
        post = {"content_type": "application/json", "HTTP_IDEMPOTENCY_KEY": "k2"}
        assert shop.post("/api/v1/items", first, **post).status_code == 200
        again = shop.post("/api/v1/items", spelt_otherwise, **post)
        assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"

    def test_a_body_the_serializer_refuses_is_refused_with_a_key_too(self, world, shop):
        body = '{"items": [{"id": "z", "title": "\\ud800"}]}'  # a lone surrogate, escaped
        for _ in range(2):
            response = shop.post(
                "/api/v1/items", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="s1"
            )
            assert_error(response, 400, "VALIDATION_ERROR")

    def test_a_login_retried_with_its_json_spelt_otherwise_gets_its_tokens(self, world, api):
        from tests.conftest import PASSWORD

        first = api.post(
            "/api/v1/auth/login",
            f'{{"email": "dev@acme.test", "password": "{PASSWORD}"}}',
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="in",
        )
        again = api.post(
            "/api/v1/auth/login",
            f'{{"password":"{PASSWORD}","email":"dev@acme.test"}}',
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="in",
        )
        assert again["Idempotent-Replayed"] == "true"
        assert again.json()["access_token"] == first.json()["access_token"]

    def test_a_retry_while_the_first_runs_is_409(self, world, shop):
        assert shop.post(URL, {"user_id": "u"}, HTTP_IDEMPOTENCY_KEY="busy").status_code == 200
        # As if that first request were still running: claimed, no answer yet.
        IdempotencyRecord.objects.filter(key="busy").update(
            status_code=None, response_body=None, created_at=timezone.now()
        )
        assert_error(shop.post(URL, {"user_id": "u"}, HTTP_IDEMPOTENCY_KEY="busy"), 409, "CONFLICT")

    def test_another_caller_of_the_tenant_with_the_same_key_is_422_not_a_replay(
        self, world, shop, make_key, client_for
    ):
        assert shop.post(URL, {"user_id": "u"}, HTTP_IDEMPOTENCY_KEY="shared").status_code == 200
        _, secret = make_key()
        colleague = APIClient()
        colleague.credentials(HTTP_X_API_KEY=secret)
        response = colleague.post(URL, {"user_id": "u"}, format="json", HTTP_IDEMPOTENCY_KEY="shared")
        assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
        admin, developer = client_for(world.admin), client_for(world.developer)
        assert admin.post("/api/v1/auth/logout-all", HTTP_IDEMPOTENCY_KEY="bye").status_code == 204
        response = developer.post("/api/v1/auth/logout-all", HTTP_IDEMPOTENCY_KEY="bye")
        assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
        assert developer.get("/api/v1/auth/me").status_code == 200  # nothing was replayed to it

    def test_keys_are_per_tenant_and_validated(self, world, shop, make_key):
        _, secret = make_key(tenant=world.other_tenant)
        other = APIClient()
        other.credentials(HTTP_X_API_KEY=secret)
        assert shop.post(URL, {"user_id": "u"}, HTTP_IDEMPOTENCY_KEY="same").status_code == 200
        assert other.post(URL, {"user_id": "v"}, HTTP_IDEMPOTENCY_KEY="same").status_code == 200
        assert_error(
            shop.post(URL, {"user_id": "u"}, HTTP_IDEMPOTENCY_KEY="x" * 256), 400, "VALIDATION_ERROR"
        )
        # Counted in characters: 200 'é' are 400 bytes, as a WSGI server hands them over (latin-1).
        accented = ("é" * 200).encode().decode("latin-1")
        assert shop.post(URL, {"user_id": "u"}, HTTP_IDEMPOTENCY_KEY=accented).status_code == 200
        assert IdempotencyRecord.objects.filter(key="é" * 200).exists()
        not_utf8 = "caf\xe9"  # the byte 0xE9 alone: read byte for byte, as before
        assert shop.post(URL, {"user_id": "u"}, HTTP_IDEMPOTENCY_KEY=not_utf8).status_code == 200
        assert IdempotencyRecord.objects.filter(key=not_utf8).exists()

    def test_a_replayed_key_creation_never_shows_the_secret_again(self, world, client_for):
        client = client_for(world.admin)
        first = client.post("/api/v1/api-keys", {"name": "ci"}, HTTP_IDEMPOTENCY_KEY="create-ci")
        again = client.post("/api/v1/api-keys", {"name": "ci"}, HTTP_IDEMPOTENCY_KEY="create-ci")
        assert first.json()["key"].startswith("rk_")
        assert again.json()["id"] == first.json()["id"] and again.json()["key"] is None
        assert first.json()["key"] not in str(IdempotencyRecord.objects.get(key="create-ci").response_body)

    @pytest.mark.django_db(transaction=True)
    def test_concurrent_retries_run_the_request_once(self, world, make_key, live_server):
        import requests

        _, secret = make_key()
        requests.post(
            live_server.url + "/api/v1/items",
            json={"items": [{"id": "a", "title": "A"}]},
            headers={"X-API-Key": secret},
            timeout=30,
        )
        body = {"interactions": [{"user_id": "racer", "item_id": "a", "type": "view"}]}
        statuses = []

        def send() -> None:
            answer = requests.post(
                live_server.url + "/api/v1/interactions",
                json=body,
                headers={"X-API-Key": secret, "Idempotency-Key": "race"},
                timeout=30,
            )
            statuses.append(answer.status_code)

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert Interaction.objects.filter(user_id="racer").count() == 1
        assert set(statuses) <= {202, 409} and 202 in statuses


def test_exclude_seen_holds_for_a_long_history(world, make_key):
    """The recent history feeds the profile, but everything the user ever saw stays excluded."""
    _, secret = make_key()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    client.post("/api/v1/items", {"items": [{"id": f"i{n}", "title": f"Item {n}"} for n in range(260)]})
    start = timezone.now() - timedelta(days=2)
    seen = [
        {
            "user_id": "binger",
            "item_id": f"i{n}",
            "type": "view",
            "timestamp": (start + timedelta(minutes=n)).isoformat(),
        }
        for n in range(250)
    ]
    client.post("/api/v1/interactions", {"interactions": seen})
    body = client.post(URL, {"user_id": "binger", "count": 100}).json()
    assert sorted(row["item_id"] for row in body["recommendations"]) == sorted(
        f"i{n}" for n in range(250, 260)
    )


def test_idempotency_records_expire_after_their_24_hours(world):
    from tenants.tasks import idempotency_records_expire

    now = timezone.now()
    IdempotencyRecord.objects.create(
        tenant=world.tenant, key="old", request_hash="h", expires_at=now - timedelta(seconds=1)
    )
    IdempotencyRecord.objects.create(
        tenant=world.tenant, key="fresh", request_hash="h", expires_at=now + timedelta(hours=1)
    )
    assert idempotency_records_expire.delay().get() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_a_claim_freed_between_insert_and_read_is_claimed_again(world, make_key, monkeypatch):
    from django.db import IntegrityError

    _, secret = make_key()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    create = IdempotencyRecord.objects.create
    calls = []

    def taken_then_freed(**fields):
        # The first insert meets another request's claim, which that request frees (it failed)
        # before this one reads it.
        calls.append(fields["key"])
        if len(calls) == 1:
            raise IntegrityError("duplicate key value violates unique constraint")
        return create(**fields)

    monkeypatch.setattr(IdempotencyRecord.objects, "create", taken_then_freed)
    body = {"items": [{"id": "a", "title": "A"}]}
    response = client.post("/api/v1/items", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 200, response.content
    assert calls == ["k1", "k1"]
    replay = client.post("/api/v1/items", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert replay["Idempotent-Replayed"] == "true" and replay.json() == response.json()


def test_the_weighted_sum_of_neighbour_rows_equals_scipys():
    import numpy as np
    from scipy import sparse

    rng = np.random.default_rng(7)
    matrix = sparse.random(300, 300, density=0.05, format="lil", dtype=np.float32, random_state=7)
    matrix[5] = 0  # a row with no neighbours at all
    matrix = matrix.tocsr()
    for size in (1, 3, 40, 300):
        rows = np.sort(rng.choice(300, size, replace=False))
        if size == 3:
            rows[0] = 5
        weights = rng.random(size).astype(np.float32)
        expected = np.asarray(matrix[rows].T @ weights, dtype=np.float32).ravel()
        got = engine._rows_weighted_sum(matrix, rows, weights)
        assert got.dtype == np.float32 and got.shape == (300,)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_enough_new_interactions_retrain_the_engine(
    world, make_key, settings, django_capture_on_commit_callbacks
):
    from recommendations.models import EngineState

    settings.ENGINE_RETRAIN_AFTER_INTERACTIONS = 5
    _, secret = make_key()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    client.post("/api/v1/items", {"items": [{"id": f"i{n}", "title": f"Item {n}"} for n in range(4)]})

    def record(count: int) -> int:
        batch = [{"user_id": f"u{n}", "item_id": f"i{n % 4}", "type": "click"} for n in range(count)]
        with django_capture_on_commit_callbacks(execute=True):  # the task is queued after commit
            assert client.post("/api/v1/interactions", {"interactions": batch}).status_code == 202
        state = EngineState.objects.filter(tenant=world.tenant).first()
        return state.model_version if state else 0

    assert record(3) == 1  # never trained: trained on its first (Celery runs eagerly in the tests)
    assert record(3) == 1  # 3 new since: below the threshold
    assert record(3) == 2  # 6 new: trained again
    assert record(4) == 2  # the count starts again after a training
    assert record(1) == 3


def test_the_hourly_job_retrains_only_tenants_with_newer_interactions(world, shop, make_key):
    from recommendations.models import EngineState
    from recommendations.services import engines_train_stale

    ours = EngineState.objects.get(tenant=world.tenant).model_version
    assert engines_train_stale() == 0  # the shop was trained after its last interaction
    shop.post("/api/v1/interactions", {"user_id": "late", "item_id": "hat-2", "type": "view"})
    _, secret = make_key(tenant=world.other_tenant)
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=secret)
    other.post("/api/v1/items", {"items": [{"id": "x", "title": "X"}]})
    other.post("/api/v1/interactions", {"user_id": "u", "item_id": "x", "type": "view"})
    assert engines_train_stale() == 2  # ours (one new interaction) and theirs (never trained)
    assert EngineState.objects.get(tenant=world.tenant).model_version == ours + 1
    assert EngineState.objects.get(tenant=world.other_tenant).model_version == 1
    assert engines_train_stale() == 0


@pytest.mark.redis
def test_interactions_are_recorded_while_the_shared_cache_is_down(world, make_key, private_redis, settings):
    from django.conf import settings as live

    _, secret = make_key()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    client.post("/api/v1/items", {"items": [{"id": "i1", "title": "Item"}]})
    settings.CACHES = {
        "default": {**live.CACHES["default"], "LOCATION": private_redis.url, "KEY_PREFIX": "down"}
    }
    private_redis.stop()  # the cache ignores its errors: its counter reads as nothing
    response = client.post("/api/v1/interactions", {"user_id": "u", "item_id": "i1", "type": "view"})
    assert response.status_code == 202
    assert Interaction.objects.filter(tenant=world.tenant, user_id="u").count() == 1


def test_the_idempotency_fingerprint_is_keyed_with_the_secret_key(world, settings):
    # A body may hold a password: its stored fingerprint must not be a plain digest anyone can redo.
    import hashlib
    import hmac
    import json

    from rest_framework.parsers import JSONParser
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from tenants.idempotency import _request_hash

    body = json.dumps({"email": "new@acme.test", "password": "Secret-passphrase-1"}).encode()
    django_request = APIRequestFactory().post("/api/v1/users", body, content_type="application/json")
    request = Request(django_request, parsers=[JSONParser()])
    request.user = world.admin
    prefix = f"POST /api/v1/users user:{world.admin.pk}\n".encode()
    canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    assert _request_hash(request) != hashlib.sha256(prefix + canonical).hexdigest()
    keyed = hmac.new(settings.SECRET_KEY.encode(), prefix + canonical, hashlib.sha256).hexdigest()
    assert _request_hash(request) == keyed


def test_an_interaction_recorded_while_training_runs_is_trained_on_later(world, shop, monkeypatch):
    from recommendations import services

    train = services.model_train

    def with_an_interaction_meanwhile(**arrays):
        shop.post("/api/v1/interactions", {"user_id": "meanwhile", "item_id": "hat-2", "type": "view"})
        return train(**arrays)

    monkeypatch.setattr(services, "model_train", with_an_interaction_meanwhile)
    services.engine_train(tenant_id=str(world.tenant.id))
    monkeypatch.undo()
    assert services.engines_train_stale() == 1  # newer than when that training began


def test_training_skips_an_interaction_with_an_item_written_after_the_list_was_read(world, shop, monkeypatch):
    from recommendations import services

    newest = Item.objects.filter(tenant=world.tenant).latest("id")
    Interaction.objects.create(
        tenant=world.tenant, user_id="n", item=newest, type="view", timestamp=timezone.now()
    )
    items = services.Item.objects

    class ReadBeforeTheNewestItem:
        def filter(self, **lookups: object) -> object:
            return items.filter(**lookups).exclude(pk=newest.pk)

    monkeypatch.setattr(services.Item, "objects", ReadBeforeTheNewestItem())
    state = services.engine_train(tenant_id=str(world.tenant.id))  # was: ValueError, no model
    assert state.model_version >= 1


def test_the_projections_kept_are_bounded_whatever_the_embedding_lengths():
    from recommendations import vectors

    vectors._projection.cache_clear()
    for length in range(10, 60):
        vectors.content_vector(title="", description="", categories=[], embedding=[1.0] * length)
    assert vectors._projection.cache_info().currsize <= 8


def test_a_tenant_never_trained_is_trained_on_its_first_interactions(
    world, make_key, django_capture_on_commit_callbacks
):
    from recommendations.services import interactions_record, items_upsert

    items_upsert(tenant=world.other_tenant, items=[{"id": f"p{n}", "title": f"P{n}"} for n in range(6)])
    bought = [{"user_id": f"buyer-{n}", "item_id": "p0", "type": "purchase"} for n in range(20)]
    with django_capture_on_commit_callbacks(execute=True):
        interactions_record(tenant=world.other_tenant, interactions=bought)
    _, secret = make_key(tenant=world.other_tenant)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    body = client.post(URL, {"user_id": "newcomer", "count": 6}).json()
    assert body["strategy"].startswith("popular")  # not "newest" only until the hourly training
    assert ids(client.post(URL, {"user_id": "newcomer", "count": 6}))[0] == "p0"


def test_when_no_item_qualifies_the_list_is_empty_and_says_none(world, shop, make_key):
    nothing = shop.post(URL, {"user_id": "fan-0", "filters": {"categories": ["gloves"]}}, format="json")
    assert nothing.status_code == 200
    assert (nothing.json()["recommendations"], nothing.json()["strategy"]) == ([], "none")
    _, secret = make_key(tenant=world.other_tenant)  # a tenant with no catalog at all
    empty = APIClient()
    empty.credentials(HTTP_X_API_KEY=secret)
    body = empty.post(URL, {"user_id": "anyone"}, format="json").json()
    assert (body["recommendations"], body["strategy"]) == ([], "none")
