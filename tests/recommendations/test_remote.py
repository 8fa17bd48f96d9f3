"""Contract tests of the ML engine and data pipeline clients, against a real HTTP server on loopback."""

import math
import time

import pytest
from celery.exceptions import Retry
from rest_framework.test import APIClient

from config.exceptions import UpstreamUnavailable
from recommendations import remote
from recommendations.models import Interaction, Item
from recommendations.vectors import content_vector, to_bytes
from tests.conftest import assert_error
from tests.fake_services import FakeService, fake_service

URL = "/api/v1/recommendations"


@pytest.fixture
def ml_engine(settings):
    with fake_service() as service:
        settings.ML_ENGINE_URL = service.url
        settings.UPSTREAM_READ_TIMEOUT = 0.3
        settings.UPSTREAM_CONNECT_TIMEOUT = 0.3
        settings.UPSTREAM_RETRIES = 1
        settings.UPSTREAM_BREAKER_THRESHOLD = 3
        settings.UPSTREAM_BREAKER_COOLDOWN = 30
        remote.clients_reset()
        yield service
    remote.clients_reset()


@pytest.fixture
def tenant_client(world, make_key):
    _, secret = make_key()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    items = [
        {"id": f"i{n}", "title": f"Item {n}", "categories": ["even" if n % 2 == 0 else "odd"]}
        for n in range(10)
    ]
    items.append({"id": "gone", "title": "Gone", "is_active": False})
    client.post("/api/v1/items", {"items": items})
    client.post("/api/v1/interactions", {"user_id": "u", "item_id": "i9", "type": "view"})
    return client


def outcomes(outcome: str, service: str = "ml_engine") -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("upstream_calls_total", {"service": service, "outcome": outcome}) or 0


def recommend(client, **body):
    return client.post(URL, {"user_id": "u", "count": 3, **body}, HTTP_X_REQUEST_ID="trace-42")


class TestMlEngine:
    def test_it_answers_from_the_engine_and_passes_the_request_on(
        self, world, tenant_client, ml_engine: FakeService
    ):
        ml_engine.recommendations = [
            {"item_id": "i3", "score": 0.9},
            {"item_id": "i1", "score": 0.5},
            {"item_id": "i2", "score": 0.7},
        ]
        body = recommend(tenant_client).json()
        assert body["strategy"] == "remote"
        assert [(row["item_id"], row["score"], row["title"]) for row in body["recommendations"]] == [
            ("i3", 0.9, "Item 3"),
            ("i2", 0.7, "Item 2"),
            ("i1", 0.5, "Item 1"),
        ]
        call = ml_engine.received[-1]
        assert call["path"] == "/internal/ml/recommendations"
        assert call["headers"]["X-Request-ID"] == "trace-42"
        assert call["body"] == {
            "tenant_id": str(world.tenant.id),
            "user_id": "u",
            "count": 3,
            "filters": {"categories": [], "exclude_item_ids": []},
            "exclude_seen": True,
        }

    def test_what_it_may_not_show_is_dropped_and_the_rest_filled(
        self, world, tenant_client, ml_engine, make_key
    ):
        _, secret = make_key(tenant=world.other_tenant)
        other = APIClient()
        other.credentials(HTTP_X_API_KEY=secret)
        other.post("/api/v1/items", {"items": [{"id": "foreign", "title": "Other tenant"}]})
        ml_engine.recommendations = [
            {"item_id": "foreign", "score": 9},  # another tenant's item
            {"item_id": "gone", "score": 8},  # inactive
            {"item_id": "i9", "score": 7},  # already seen
            {"item_id": "i4", "score": float("inf")},  # not a finite score (sent as Infinity)
            {"item_id": "i5", "score": "high"},
            {"item_id": 6, "score": 1},
            "junk",
            {"item_id": "i1", "score": 0.4},
            {"item_id": "i1", "score": 0.3},  # a duplicate
        ]
        body = recommend(tenant_client, filters={"exclude_item_ids": ["i3"]}).json()
        shown = [row["item_id"] for row in body["recommendations"]]
        assert shown[0] == "i1" and len(shown) == 3 and len(set(shown)) == 3
        assert not {"foreign", "gone", "i9", "i3"} & set(shown)
        assert [row["score"] for row in body["recommendations"]][0] == 0.4
        assert body["strategy"] == "remote+newest"

    @pytest.mark.parametrize("scores", [(-0.2, -0.9), (0.0, -3.5), (0.0, 0.0), (2.0, 0.5), (-1e14, -1e15)])
    def test_filled_items_score_below_the_engines_own_whatever_their_sign(
        self, world, tenant_client, ml_engine, scores
    ):
        ml_engine.recommendations = [
            {"item_id": "i1", "score": scores[0]},
            {"item_id": "i2", "score": scores[1]},
        ]
        body = recommend(tenant_client, count=6).json()
        shown = [(row["item_id"], row["score"]) for row in body["recommendations"]]
        assert [item for item, _ in shown[:2]] == ["i1", "i2"] and len(shown) == 6
        assert body["strategy"] == "remote+newest"
        filled = [score for _, score in shown[2:]]
        assert max(filled) < min(scores)
        assert filled == sorted(filled, reverse=True) and len(set(filled)) == len(filled)

    def test_filled_items_under_the_lowest_finite_score_stay_finite(self, world, tenant_client, ml_engine):
        ml_engine.recommendations = [{"item_id": "i1", "score": -1.7976931348623157e308}]
        response = recommend(tenant_client, count=4)
        assert response.status_code == 200, response.content
        assert all(math.isfinite(row["score"]) for row in response.json()["recommendations"])

    @pytest.mark.parametrize("mode", ["error", "malformed", "bad_request"])
    def test_a_failing_engine_falls_back_to_the_builtin_one(self, world, tenant_client, ml_engine, mode):
        ml_engine.mode = mode
        response = recommend(tenant_client)
        assert response.status_code == 200
        assert response.json()["strategy"].startswith("fallback:")
        assert len(response.json()["recommendations"]) == 3

    def test_a_slow_engine_times_out_quickly(self, world, tenant_client, ml_engine):
        ml_engine.delay = 1.0
        timeouts = outcomes("timeout")
        response = recommend(tenant_client)
        assert response.json()["strategy"].startswith("fallback:")
        assert (
            len(ml_engine.received) == 1 and outcomes("timeout") == timeouts + 1
        )  # a timeout is not retried

    @pytest.mark.parametrize("mode", ["malformed", "nested"])
    def test_nonsense_is_counted_as_such_and_not_asked_again(self, world, tenant_client, ml_engine, mode):
        ml_engine.mode = mode
        before = outcomes("malformed")
        assert recommend(tenant_client).json()["strategy"].startswith("fallback:")
        assert len(ml_engine.received) == 1
        assert outcomes("malformed") - before == 1

    def test_an_answer_in_the_seeds_shape_is_used(self, world, tenant_client, ml_engine):
        ml_engine.recommendations_as_list = True  # the list itself, as the seed's client returned it
        ml_engine.recommendations = [{"item_id": "i4", "score": 0.8}, {"item_id": "i6", "score": 0.6}]
        body = recommend(tenant_client).json()
        assert body["strategy"].startswith("remote")
        assert [row["item_id"] for row in body["recommendations"][:2]] == ["i4", "i6"]

    @pytest.mark.parametrize("path", ["recommendations", "embeddings"])
    def test_an_answer_of_another_shape_counts_against_the_breaker(
        self, world, tenant_client, ml_engine, path
    ):
        from recommendations.services import items_embed

        ml_engine.mode = "misshapen"
        ml_engine.recommendations = [{"item_id": "i4", "score": 0.8}]
        ml_engine.embeddings = [{"item_id": "i4", "embedding": [1.0, 0.0]}]
        Item.objects.filter(tenant=world.tenant, external_id="i4").update(embedding=None)
        client = {"recommendations": "ml_engine", "embeddings": "ml_embeddings"}[path]
        ok, malformed = outcomes("ok", client), outcomes("malformed", client)
        for _ in range(4):  # one more than the breaker's threshold (3)
            if path == "recommendations":
                assert recommend(tenant_client).json()["strategy"].startswith("fallback:")
            else:
                with pytest.raises(UpstreamUnavailable):
                    items_embed(tenant_id=str(world.tenant.id), item_ids=["i4"])
        assert outcomes("ok", client) == ok and outcomes("malformed", client) - malformed == 3
        assert len(ml_engine.received) == 3  # open after three: the fourth was not sent
        assert remote.service_client(client).breaker.state == "open"

    def test_refusals_are_not_retried_and_leave_the_breaker_closed(self, world, tenant_client, ml_engine):
        ml_engine.mode = "bad_request"
        for _ in range(4):  # more than the breaker's threshold (3)
            assert recommend(tenant_client).json()["strategy"].startswith("fallback:")
        assert len(ml_engine.received) == 4  # each asked once: a 4xx is not retried
        assert remote.service_client("ml_engine").breaker.state == "closed"  # the engine is up

    def test_tiny_scores_keep_their_order_down_to_the_filled_items(self, world, tenant_client, ml_engine):
        ml_engine.recommendations = [{"item_id": "i1", "score": 9e-7}, {"item_id": "i2", "score": 3e-7}]
        scores = [row["score"] for row in recommend(tenant_client, count=4).json()["recommendations"]]
        assert scores[:2] == [9e-7, 3e-7]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4

    def test_its_best_scores_are_kept_whatever_order_it_lists_them_in(self, world, tenant_client, ml_engine):
        ml_engine.recommendations = [
            {"item_id": "i1", "score": 0.1},
            {"item_id": "i2", "score": 0.2},
            {"item_id": "i3", "score": 0.9},
        ]
        rows = recommend(tenant_client, count=2).json()["recommendations"]
        assert [(row["item_id"], row["score"]) for row in rows] == [("i3", 0.9), ("i2", 0.2)]

    def test_an_engine_with_nothing_to_say_does_not_name_the_list(self, world, tenant_client, ml_engine):
        ml_engine.recommendations = []
        body = recommend(tenant_client).json()
        assert body["strategy"] in ("popular", "newest", "popular+newest")
        assert len(body["recommendations"]) == 3

    def test_a_score_too_large_for_a_float_is_dropped_not_a_500(self, world, tenant_client, ml_engine):
        ml_engine.recommendations = [{"item_id": "i1", "score": 10**400}, {"item_id": "i2", "score": 0.5}]
        response = recommend(tenant_client)
        assert response.status_code == 200, response.content
        rows = response.json()["recommendations"]
        assert rows[0] == {"item_id": "i2", "score": 0.5, "title": "Item 2"}
        assert response.json()["strategy"].startswith("remote")

    def test_an_answer_trickled_past_the_deadline_is_a_timeout(self, world, tenant_client, ml_engine):
        ml_engine.mode = "trickle"  # a byte every 0.1 s: each read is quick, the whole answer is not
        ml_engine.recommendations = [{"item_id": "i1", "score": 1.0}]
        before = outcomes("timeout")
        started = time.monotonic()
        assert recommend(tenant_client).json()["strategy"].startswith("fallback:")
        assert time.monotonic() - started < 1.5  # the deadline is 0.6 s; the answer takes over 3 s
        assert outcomes("timeout") - before == 1

    def test_server_errors_are_retried_once(self, world, tenant_client, ml_engine):
        ml_engine.mode = "error"
        recommend(tenant_client)
        assert len(ml_engine.received) == 2

    def test_a_down_engine_falls_back(self, world, tenant_client, settings):
        settings.ML_ENGINE_URL = "http://127.0.0.1:9"  # nothing listens there
        remote.clients_reset()
        try:
            assert recommend(tenant_client).json()["strategy"].startswith("fallback:")
        finally:
            remote.clients_reset()

    def test_the_breaker_opens_after_failures_and_closes_after_a_good_trial(
        self, world, tenant_client, ml_engine
    ):
        ml_engine.mode = "error"
        for _ in range(3):
            recommend(tenant_client)
        client = remote.service_client("ml_engine")
        assert client.breaker.state == "open"
        calls = len(ml_engine.received)
        assert recommend(tenant_client).json()["strategy"].startswith("fallback:")
        assert len(ml_engine.received) == calls  # not even tried while open
        client.breaker.opened_at -= 31  # the cooldown passes
        assert client.breaker.state == "half-open"
        ml_engine.mode = "ok"
        ml_engine.recommendations = [{"item_id": "i1", "score": 1.0}]
        assert recommend(tenant_client).json()["strategy"] == "remote+newest"
        assert client.breaker.state == "closed"

    def test_an_open_circuit_is_logged_once_not_on_every_request(
        self, world, tenant_client, ml_engine, caplog
    ):
        ml_engine.mode = "error"
        with caplog.at_level("WARNING"):
            for _ in range(10):  # 3 failures open it (the threshold), 7 requests find it open
                assert recommend(tenant_client).json()["strategy"].startswith("fallback:")
        messages = [record.getMessage() for record in caplog.records]
        assert sum("circuit open" in message for message in messages) == 1
        assert sum("ML engine unavailable" in message for message in messages) == 3

    def test_embeddings_for_items_without_one_come_from_the_engine(
        self, world, ml_engine, settings, django_capture_on_commit_callbacks
    ):
        from recommendations.services import items_embed, items_upsert

        ml_engine.embeddings = [
            {"item_id": "e1", "embedding": [1.0, 0.0, 0.5]},
            {"item_id": "e2", "embedding": ["bad"]},
            {"item_id": "e3", "embedding": [1e39, 1.0]},  # beyond 32-bit floats: NaN in the engine
        ]
        from recommendations.vectors import content_vector, to_bytes

        with django_capture_on_commit_callbacks(execute=True):  # the embedding task runs after commit
            items_upsert(
                tenant=world.tenant,
                items=[
                    {"id": "e1", "title": "One"},
                    {"id": "e2", "title": "Two"},
                    {"id": "e3", "title": "3"},
                ],
            )
        assert ml_engine.received[-1]["path"] == "/internal/ml/embeddings"
        assert [item["id"] for item in ml_engine.received[-1]["body"]["items"]] == ["e1", "e2", "e3"]
        from_text = to_bytes(content_vector(title="One", description="", categories=[], embedding=None))
        from_engine = to_bytes(
            content_vector(title="", description="", categories=[], embedding=[1.0, 0.0, 0.5])
        )
        assert bytes(Item.objects.get(external_id="e1").content_vector) == from_engine != from_text
        # The malformed embeddings of e2 and e3 are refused: they keep their own content vectors.
        assert items_embed(tenant_id=str(world.tenant.id), item_ids=["e2", "e3"]) == 0
        assert bytes(Item.objects.get(external_id="e3").content_vector) == to_bytes(
            content_vector(title="3", description="", categories=[], embedding=None)
        )

    def test_embeddings_have_a_longer_timeout_and_a_breaker_of_their_own(
        self, world, ml_engine, settings, tenant_client
    ):
        from recommendations.services import items_embed, items_upsert

        settings.UPSTREAM_EMBEDDINGS_READ_TIMEOUT = 0.8
        settings.CELERY_TASK_ALWAYS_EAGER = False  # a worker's task: no request waits for it
        items_upsert(tenant=world.tenant, items=[{"id": f"s{n}", "title": f"Slow {n}"} for n in range(3)])
        ml_engine.embeddings = [{"item_id": "s0", "embedding": [1.0, 0.0]}]
        ml_engine.embeddings_delay = 0.45  # past the 0.3 s of a recommendation
        assert items_embed(tenant_id=str(world.tenant.id), item_ids=["s0"]) == 1
        ml_engine.embeddings_delay = 1.0  # past its own too, more times than the breaker's threshold
        for _ in range(4):
            with pytest.raises(UpstreamUnavailable):
                items_embed(tenant_id=str(world.tenant.id), item_ids=["s1"])
        assert remote.service_client("ml_embeddings").breaker.state == "open"
        remote.clients_reset()
        settings.CELERY_TASK_ALWAYS_EAGER = True  # in-process: the request waits, so its own timeout
        assert remote.service_client("ml_embeddings").timeout == (0.3, 0.3)
        ml_engine.recommendations = [{"item_id": "i1", "score": 0.9}]
        assert recommend(tenant_client).json()["strategy"].startswith("remote")

    def test_an_item_whose_text_was_written_while_the_engine_embedded_it_keeps_it(self, world, ml_engine):
        from recommendations.services import item_update, items_embed, items_upsert

        items_upsert(
            tenant=world.tenant, items=[{"id": "w1", "title": "Old text"}, {"id": "w2", "title": "Two"}]
        )
        ml_engine.embeddings = [
            {"item_id": "w1", "embedding": [1.0, 0.0]},
            {"item_id": "w2", "embedding": [0.0, 1.0]},
        ]
        client = remote.service_client("ml_embeddings")
        post = client.post

        def meanwhile(path, payload, accept=None):
            answer = post(path, payload, accept)
            # PATCHes meanwhile: a new text (the engine is asked again), and metadata (the answer holds)
            item_update(item=Item.objects.get(external_id="w1"), title="New text")
            item_update(item=Item.objects.get(external_id="w2"), metadata={"price": 3})
            return answer

        client.post = meanwhile
        assert items_embed(tenant_id=str(world.tenant.id), item_ids=["w1", "w2"]) == 1
        first, second = Item.objects.get(external_id="w1"), Item.objects.get(external_id="w2")
        assert first.title == "New text"
        assert bytes(first.content_vector) == to_bytes(
            content_vector(title="New text", description="", categories=[], embedding=None)
        )
        assert bytes(second.content_vector) == to_bytes(
            content_vector(title="", description="", categories=[], embedding=[0.0, 1.0])
        )

    def test_embeddings_in_the_seeds_shape_and_after_a_text_change(
        self, world, ml_engine, django_capture_on_commit_callbacks
    ):
        from recommendations.services import item_update, items_upsert
        from recommendations.vectors import content_vector, to_bytes

        ml_engine.embeddings_as_list = True  # the answer is the list itself
        ml_engine.embeddings = [{"item_id": "e1", "embedding": [1.0, 0.0, 0.5]}]
        with django_capture_on_commit_callbacks(execute=True):
            items_upsert(tenant=world.tenant, items=[{"id": "e1", "title": "One"}])
        from_engine = to_bytes(
            content_vector(title="", description="", categories=[], embedding=[1.0, 0.0, 0.5])
        )
        assert bytes(Item.objects.get(external_id="e1").content_vector) == from_engine
        calls = len(ml_engine.received)
        ml_engine.embeddings = [{"id": "e1", "embedding": [0.0, 1.0, 0.0]}]
        with django_capture_on_commit_callbacks(execute=True):
            item_update(item=Item.objects.get(external_id="e1"), description="Now with a description")
        assert len(ml_engine.received) == calls + 1  # the text changed: the engine is asked again
        assert ml_engine.received[-1]["body"]["items"][0]["description"] == "Now with a description"
        again = to_bytes(content_vector(title="", description="", categories=[], embedding=[0.0, 1.0, 0.0]))
        assert bytes(Item.objects.get(external_id="e1").content_vector) == again


class TestDataPipeline:
    def test_accepted_writes_are_forwarded_after_commit(
        self, world, settings, django_capture_on_commit_callbacks
    ):
        from recommendations.services import interactions_record, items_upsert

        with fake_service() as pipeline:
            settings.DATA_PIPELINE_URL = pipeline.url
            remote.clients_reset()
            with django_capture_on_commit_callbacks(execute=True):
                items_upsert(tenant=world.tenant, items=[{"id": "a", "title": "A"}])
            assert [call["path"] for call in pipeline.received] == ["/internal/pipeline/items"]
            with django_capture_on_commit_callbacks(execute=True):
                interactions_record(
                    tenant=world.tenant, interactions=[{"user_id": "u", "item_id": "a", "type": "view"}]
                )
            paths = [call["path"] for call in pipeline.received]
            assert paths == ["/internal/pipeline/items", "/internal/pipeline/interactions"]
            sent = pipeline.received[1]["body"]
            assert sent["tenant_id"] == str(world.tenant.id) and sent["interactions"][0]["item_id"] == "a"
        remote.clients_reset()

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.parametrize("upstream", ["DATA_PIPELINE_URL", "ML_ENGINE_URL"])
    def test_a_follow_up_that_fails_in_process_leaves_the_write_and_its_answer(
        self, world, make_key, settings, upstream
    ):
        from prometheus_client import REGISTRY

        def failed() -> float:
            return sum(
                REGISTRY.get_sample_value("write_follow_ups_failed_total", {"task": task}) or 0
                for task in ("recommendations.tasks.pipeline_forward", "recommendations.tasks.items_embed")
            )

        failed_before = failed()
        # Without a broker the follow-ups run inside the request, after the commit.
        assert settings.CELERY_TASK_ALWAYS_EAGER
        settings.UPSTREAM_RETRIES = 0
        setattr(settings, upstream, "http://127.0.0.1:9")  # nothing listens there
        remote.clients_reset()
        _, secret = make_key()
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secret)
        try:
            for _ in range(2):  # the retry is a replay, not a second copy
                created = client.post(
                    "/api/v1/items", {"items": [{"id": "new", "title": "New"}]}, HTTP_IDEMPOTENCY_KEY="i"
                )
                assert created.status_code == 200, created.content
                accepted = client.post(
                    "/api/v1/interactions",
                    {"user_id": "u", "item_id": "new", "type": "view"},
                    HTTP_IDEMPOTENCY_KEY="j",
                )
                assert accepted.status_code == 202, accepted.content
        finally:
            remote.clients_reset()
        assert Item.objects.filter(tenant=world.tenant, external_id="new").count() == 1
        assert Interaction.objects.filter(tenant=world.tenant, user_id="u").count() == 1
        # Counted (and logged) once each, the replays doing nothing again: the items' and the
        # interactions' copies to the pipeline, or the items' embeddings from the engine.
        assert failed() - failed_before == {"DATA_PIPELINE_URL": 2, "ML_ENGINE_URL": 1}[upstream]

    def test_a_pipeline_outage_is_retried_not_lost(self, world, settings):
        from recommendations.tasks import pipeline_forward

        with fake_service() as pipeline:
            settings.DATA_PIPELINE_URL = pipeline.url
            settings.UPSTREAM_RETRIES = 0
            remote.clients_reset()
            pipeline.mode = "error"
            with pytest.raises(
                Retry
            ):  # a worker schedules it again, with backoff, until the pipeline takes it
                pipeline_forward.apply(args=(str(world.tenant.id), "items", [{"id": "a"}]), throw=True)
            assert pipeline_forward.autoretry_for == (remote.UpstreamError,)
            assert pipeline_forward.max_retries >= 10
            pipeline.mode = "ok"
            pipeline_forward.apply(args=(str(world.tenant.id), "items", [{"id": "a"}]), throw=True)
            assert pipeline.received[-1]["body"] == {
                "tenant_id": str(world.tenant.id),
                "items": [{"id": "a"}],
            }
        remote.clients_reset()


@pytest.mark.parametrize("mode", ["empty", "bad_request"])
def test_a_pipeline_answer_that_is_empty_or_a_refusal_is_not_sent_again(world, settings, mode):
    from recommendations.tasks import pipeline_forward

    with fake_service() as pipeline:
        settings.DATA_PIPELINE_URL = pipeline.url
        remote.clients_reset()
        pipeline.mode = mode  # 204 without a body (taken), or 422 (refused: sending again will not help)
        pipeline_forward.apply(args=(str(world.tenant.id), "items", [{"id": "a"}]), throw=True)
        assert len(pipeline.received) == 1
        assert remote.service_client("data_pipeline").breaker.failures == 0
    remote.clients_reset()


@pytest.mark.parametrize("mode", ["busy", "error"])
def test_a_busy_or_failing_pipeline_is_tried_again_later(world, settings, mode):
    from recommendations.tasks import pipeline_forward

    with fake_service() as pipeline:
        settings.DATA_PIPELINE_URL = pipeline.url
        settings.UPSTREAM_RETRIES = 0
        remote.clients_reset()
        pipeline.mode = mode  # 429 or 500: the copy is not refused, only not taken yet
        with pytest.raises(Retry):
            pipeline_forward.apply(args=(str(world.tenant.id), "items", [{"id": "a"}]), throw=True)
        assert remote.service_client("data_pipeline").breaker.failures == 1
    remote.clients_reset()


def test_without_any_engine_answer_it_is_503(world, tenant_client, ml_engine, monkeypatch):
    from django.db import OperationalError

    from recommendations import services

    ml_engine.mode = "error"

    def database_gone(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services.engine, "builtin_recommend", database_gone)
    error = assert_error(recommend(tenant_client), 503, "UPSTREAM_UNAVAILABLE")
    assert "connection refused" not in error["message"]
