"""The tenant's change marks: read in the rate limiter's round trip, they tell a server process whether
what it keeps of a tenant's catalog (items it read, its engine index) and model is still current."""

import time

import pytest
import redis
from rest_framework.test import APIClient

from recommendations import engine
from recommendations.services import engine_train
from tests.conftest import assert_error
from usage import ratelimit

pytestmark = pytest.mark.redis

ITEMS = "/api/v1/items"


def key_client(make_key, tenant=None):
    _, secret = make_key(tenant=tenant)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    return client


@pytest.fixture
def writer(world, make_key):
    client = key_client(make_key)
    client.post(ITEMS, {"items": [{"id": "sku-1", "title": "Red shoe", "metadata": {"size": 42}}]})
    return client


def marks_of(tenant) -> ratelimit.Marks:
    decision = ratelimit.rate_limit_take(tenant_id=str(tenant.id), plan="free", limits=None)
    assert decision is not None and decision.marks is not None
    return decision.marks


class TestTheLimiterHandsOutTheMarks:
    def test_they_are_created_once_and_renewed_one_at_a_time(self, world):
        first = marks_of(world.tenant)
        assert first.catalog and first.model
        assert marks_of(world.tenant) == first
        ratelimit.tenant_marks_renew(str(world.tenant.id), catalog=True)
        second = marks_of(world.tenant)
        assert second.catalog != first.catalog and second.model == first.model
        ratelimit.tenant_marks_renew(str(world.tenant.id), model=True)
        third = marks_of(world.tenant)
        assert third.catalog == second.catalog and third.model != second.model
        assert marks_of(world.other_tenant) != third

    def test_a_hash_that_expired_gets_marks_never_seen_before(self, world):
        first = marks_of(world.tenant)
        ratelimit.limiter().client.delete(ratelimit.bucket_key(str(world.tenant.id)))
        second = marks_of(world.tenant)
        assert second.catalog not in (first.catalog, first.model)
        assert second.model not in (first.catalog, first.model)

    def test_every_request_with_a_tenants_credential_carries_them(self, world, writer):
        response = writer.get(f"{ITEMS}/sku-1")
        assert response.status_code == 200
        assert response.wsgi_request.tenant_marks == marks_of(world.tenant)

    def test_catalog_writes_and_training_renew_theirs(self, world, writer):
        before = marks_of(world.tenant)
        writer.patch(f"{ITEMS}/sku-1", {"title": "Blue shoe"})
        after_write = marks_of(world.tenant)
        assert after_write.catalog != before.catalog and after_write.model == before.model
        writer.post("/api/v1/interactions", {"user_id": "u", "item_id": "sku-1", "type": "view"})
        assert marks_of(world.tenant) == after_write  # an interaction changes neither
        engine_train(tenant_id=str(world.tenant.id))
        after_training = marks_of(world.tenant)
        assert after_training.catalog == after_write.catalog and after_training.model != after_write.model


class TestItemsKept:
    def test_an_item_read_again_costs_no_query(self, world, writer, django_assert_num_queries):
        first = writer.get(f"{ITEMS}/sku-1")
        with django_assert_num_queries(0):
            again = writer.get(f"{ITEMS}/sku-1")
        assert again.status_code == 200 and again.json() == first.json()
        assert again.json()["metadata"] == {"size": 42}

    def test_a_change_is_seen_on_the_next_read(self, world, writer):
        assert writer.get(f"{ITEMS}/sku-1").json()["title"] == "Red shoe"
        writer.patch(f"{ITEMS}/sku-1", {"title": "Blue shoe"})
        assert writer.get(f"{ITEMS}/sku-1").json()["title"] == "Blue shoe"
        writer.post(ITEMS, {"items": [{"id": "sku-1", "title": "Green shoe"}]})
        assert writer.get(f"{ITEMS}/sku-1").json()["title"] == "Green shoe"
        writer.delete(f"{ITEMS}/sku-1")
        assert_error(writer.get(f"{ITEMS}/sku-1"), 404, "NOT_FOUND")

    def test_a_change_made_by_another_process_is_seen_once_its_mark_is_renewed(self, world, writer):
        from recommendations.models import Item

        assert writer.get(f"{ITEMS}/sku-1").json()["title"] == "Red shoe"
        # Another process commits its change, then renews the mark (engine.catalog_changed).
        Item.objects.filter(tenant=world.tenant, external_id="sku-1").update(title="Changed elsewhere")
        ratelimit.tenant_marks_renew(str(world.tenant.id), catalog=True)
        assert writer.get(f"{ITEMS}/sku-1").json()["title"] == "Changed elsewhere"

    def test_a_kept_item_is_trusted_for_a_bounded_time_only(self, world, writer, monkeypatch):
        from recommendations.models import Item

        writer.get(f"{ITEMS}/sku-1")
        # A change whose mark could not be renewed (Redis down at that moment) ...
        Item.objects.filter(tenant=world.tenant, external_id="sku-1").update(title="Unannounced")
        assert writer.get(f"{ITEMS}/sku-1").json()["title"] == "Red shoe"
        # ... is seen once the time a mark is trusted has passed.
        monkeypatch.setattr(ratelimit, "MARKS_TRUST_SECONDS", 0.0)
        assert writer.get(f"{ITEMS}/sku-1").json()["title"] == "Unannounced"

    def test_tenants_never_see_each_others_items(self, world, writer, make_key):
        other = key_client(make_key, tenant=world.other_tenant)
        other.post(ITEMS, {"items": [{"id": "sku-1", "title": "Globex secret"}]})
        for _ in range(2):
            assert writer.get(f"{ITEMS}/sku-1").json()["title"] == "Red shoe"
            assert other.get(f"{ITEMS}/sku-1").json()["title"] == "Globex secret"
        writer.delete(f"{ITEMS}/sku-1")
        assert_error(writer.get(f"{ITEMS}/sku-1"), 404, "NOT_FOUND")
        assert other.get(f"{ITEMS}/sku-1").json()["title"] == "Globex secret"

    def test_none_are_kept_when_switched_off(self, world, writer, settings, django_assert_num_queries):
        settings.ITEM_CACHE_MB = 0
        writer.get(f"{ITEMS}/sku-1")
        with django_assert_num_queries(1):
            assert writer.get(f"{ITEMS}/sku-1").status_code == 200

    def test_what_is_kept_is_bounded_by_its_size(self, world, writer, settings, django_assert_num_queries):
        # Each of these items takes about 1.6 KB as kept: the budget holds some, not all seven.
        settings.ITEM_CACHE_MB = 8 / 1024
        items = [{"id": f"big-{n}", "title": f"Item {n}", "description": "x" * 800} for n in range(7)]
        huge = {"id": "huge", "title": "Huge", "embedding": [0.123456789] * 1000}
        writer.post(ITEMS, {"items": [*items, huge]})
        for item in items:
            writer.get(f"{ITEMS}/{item['id']}")
        with django_assert_num_queries(0):  # the last read is kept
            assert writer.get(f"{ITEMS}/big-6").json()["description"] == "x" * 800
        with django_assert_num_queries(1):  # the first was dropped to make room
            assert writer.get(f"{ITEMS}/big-0").status_code == 200
        for _ in range(2):  # more than a quarter of the budget on its own: never kept
            with django_assert_num_queries(1):
                assert writer.get(f"{ITEMS}/huge").json()["embedding"] == [0.123456789] * 1000


class TestTheEngineIndex:
    def test_recommending_reads_no_version_while_the_marks_stand(self, world, writer, monkeypatch):
        reads = []
        real = engine.engine_version

        def counted(tenant_id, **options):
            reads.append(options)
            return real(tenant_id, **options)

        monkeypatch.setattr(engine, "engine_version", counted)
        url = "/api/v1/recommendations"
        assert writer.post(url, {"user_id": "u"}).status_code == 200
        built = engine.index_for(str(world.tenant.id))
        reads.clear()
        for _ in range(3):
            assert writer.post(url, {"user_id": "u"}).status_code == 200
        assert reads == []
        writer.post(ITEMS, {"items": [{"id": "sku-2", "title": "Boot"}]})
        answer = writer.post(url, {"user_id": "u", "count": 5}).json()
        assert reads == [{"fresh": True}]  # the database's version, not a cached one
        assert "sku-2" in [row["item_id"] for row in answer["recommendations"]]
        assert engine.index_for(str(world.tenant.id)) is not built

    def test_a_model_trained_elsewhere_is_used_on_the_next_request(self, world, writer):
        url = "/api/v1/recommendations"
        writer.post(url, {"user_id": "u"})
        before = engine._indexes[str(world.tenant.id)]
        engine_train(tenant_id=str(world.tenant.id))
        writer.post(url, {"user_id": "u"})
        after = engine._indexes[str(world.tenant.id)]
        assert after is not before and after.version[1] == before.version[1] + 1


def test_without_redis_nothing_is_marked(world, make_key, settings):
    settings.RATE_LIMIT_REDIS_URL = ""
    ratelimit.limiter.cache_clear()
    try:
        decision = ratelimit.rate_limit_take(tenant_id=str(world.tenant.id), plan="free", limits=None)
        assert decision is not None and decision.marks is None
        ratelimit.tenant_marks_renew(str(world.tenant.id), catalog=True)  # nothing to renew: no error
    finally:
        ratelimit.limiter.cache_clear()


def test_a_mark_that_cannot_be_renewed_does_not_fail_the_write(world, writer, private_redis, settings):
    settings.RATE_LIMIT_REDIS_URL = private_redis.url
    settings.RATE_LIMIT_REDIS_TIMEOUT = 0.2
    ratelimit.limiter.cache_clear()
    try:
        private_redis.stop()
        with pytest.raises(redis.RedisError):
            ratelimit.limiter().client.ping()
        response = writer.patch(f"{ITEMS}/sku-1", {"title": "Written while Redis was down"})
        assert response.status_code == 200
    finally:
        ratelimit.limiter.cache_clear()


def test_a_write_renews_its_mark_again_once_committed(world, writer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        writer.patch(f"{ITEMS}/sku-1", {"title": "Blue shoe"})
        during = marks_of(world.tenant)  # renewed at once, before the commit ...
    for callback in callbacks:
        callback()
    after = marks_of(world.tenant)  # ... and again after it: what was read in between is dropped
    assert after.catalog != during.catalog and after.model == during.model


def test_after_a_failed_renewal_writes_do_not_wait_for_redis_while_holding_their_locks(
    world, writer, private_redis, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.RATE_LIMIT_REDIS_URL = private_redis.url
    settings.RATE_LIMIT_REDIS_TIMEOUT = 0.2
    ratelimit.limiter.cache_clear()
    try:
        private_redis.stop()
        tenant_id = str(world.tenant.id)
        ratelimit.tenant_marks_renew(tenant_id, catalog=True)  # fails: Redis is down
        assert ratelimit._open_until > time.monotonic()
        calls = []
        real = ratelimit._fields_renew
        monkeypatch.setattr(ratelimit, "_fields_renew", lambda *args: calls.append(args) or real(*args))
        with django_capture_on_commit_callbacks(execute=False) as committed:
            ratelimit.tenant_marks_renew(tenant_id, catalog=True)
        assert calls == []  # skipped inside the write's transaction while the limiter backs off
        for callback in committed:
            callback()
        assert len(calls) == 1  # tried once committed, when no lock is held
    finally:
        ratelimit.limiter.cache_clear()


def test_a_write_made_while_the_limiter_backs_off_is_seen_on_the_next_read(
    world, writer, django_capture_on_commit_callbacks
):
    assert writer.get(f"{ITEMS}/sku-1").json()["title"] == "Red shoe"
    ratelimit._open_until = time.monotonic() + 60  # one Redis timeout a moment ago; Redis answers now
    with django_capture_on_commit_callbacks(execute=True):
        assert writer.patch(f"{ITEMS}/sku-1", {"title": "Blue shoe"}).status_code == 200
    ratelimit._open_until = 0.0
    assert writer.get(f"{ITEMS}/sku-1").json()["title"] == "Blue shoe"
