import json
import logging
import os
import re
import runpy
import select
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection, connections
from django.http import Http404
from django.test import override_settings
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from accounts.models import User
from config.http import ContentNegotiation
from config.logging import ConsoleFormatter, JsonFormatter, RequestIdFilter
from tests.conftest import assert_error

ROOT = Path(__file__).resolve().parents[2]


class TestRequestId:
    def test_it_returns_a_new_uuid_when_none_is_sent(self, api, db):
        response = api.get("/health")
        assert uuid.UUID(response["X-Request-ID"])

    def test_it_echoes_a_sane_one(self, api, db):
        assert api.get("/health", HTTP_X_REQUEST_ID="abc-123.x_y:z")["X-Request-ID"] == "abc-123.x_y:z"

    @pytest.mark.parametrize("insane", ["a" * 200, "has space", "new\nline", "<script>", "trailing\n"])
    def test_it_replaces_an_insane_one(self, api, db, insane):
        response = api.get("/health", HTTP_X_REQUEST_ID=insane)
        assert uuid.UUID(response["X-Request-ID"])

    def test_the_error_body_carries_the_same_id(self, api, db):
        response = api.get("/nowhere", HTTP_X_REQUEST_ID="trace-me")
        assert assert_error(response, 404, "NOT_FOUND")["request_id"] == "trace-me"


class TestErrorEnvelope:
    @pytest.mark.parametrize(
        "path", ["/nowhere", "/api/v1/nothing-here", "/api/v1/auth/login/", "/static/missing.css"]
    )
    def test_unknown_paths(self, api, db, path):
        assert_error(api.get(path), 404, "NOT_FOUND")

    def test_wrong_method(self, api, db):
        assert_error(api.delete("/health"), 405, "METHOD_NOT_ALLOWED")
        assert_error(api.get("/api/v1/auth/login"), 405, "METHOD_NOT_ALLOWED")

    def test_malformed_json(self, api, db):
        response = api.post("/api/v1/auth/login", data="{not json", content_type="application/json")
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert "JSON" in error["message"]

    @pytest.mark.parametrize(
        "body", ["[" * 100_000 + "]" * 100_000, '{"email": ' * 50_000 + "1" + "}" * 50_000]
    )
    def test_json_nested_too_deeply_is_malformed_not_a_crash(self, api, db, body):
        response = api.post("/api/v1/auth/login", data=body, content_type="application/json")
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert "nested too deeply" in error["message"]

    def test_wrong_content_type(self, api, db):
        response = api.post(
            "/api/v1/auth/login", data="email=a", content_type="application/x-www-form-urlencoded"
        )
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")

    @override_settings(MAX_REQUEST_BODY_BYTES=1024)
    def test_body_over_the_limit(self, api, db):
        body = json.dumps({"email": "a@b.test", "password": "x" * 2000})
        error = assert_error(
            api.post("/api/v1/auth/login", data=body, content_type="application/json"),
            413,
            "PAYLOAD_TOO_LARGE",
        )
        assert error["details"] == {"limit_bytes": 1024}

    def test_bad_content_length(self, api, db):
        assert_error(
            api.generic("POST", "/api/v1/auth/login", "{}", CONTENT_LENGTH="abc"), 400, "VALIDATION_ERROR"
        )

    @override_settings(ROOT_URLCONF="tests.config.boom_urls")
    @pytest.mark.parametrize("path", ["/boom-api", "/boom-plain"])
    def test_an_unexpected_error_is_a_500_without_internals(self, db, path, caplog):
        from django.test import Client

        response = Client(raise_request_exception=False).get(path)
        error = assert_error(response, 500, "INTERNAL_ERROR")
        assert "hunter2" not in response.content.decode()
        assert "Traceback" not in response.content.decode()
        assert error["message"] == "An internal error occurred."
        assert any("hunter2" in (record.exc_text or str(record.exc_info)) for record in caplog.records)


class TestOperations:
    def test_health(self, api, db):
        assert api.get("/health").json() == {"status": "ok"}

    def test_ready(self, api, db):
        assert api.get("/ready").json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok"}}

    @override_settings(
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": "redis://127.0.0.1:1/0",
                "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
            }
        }
    )
    def test_ready_names_what_is_down(self, api, db):
        response = api.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "not_ready"
        assert body["checks"] == {"database": "ok", "cache": "unavailable"}
        assert body["error"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert body["error"]["details"] == {"unavailable": ["cache"]}

    def test_metrics_count_requests_by_route_pattern(self, api, world, client_for):
        from prometheus_client import REGISTRY

        route = {"endpoint": "/api/v1/users/{id}", "method": "GET"}

        def counted() -> tuple[float, float]:
            return (
                REGISTRY.get_sample_value("http_requests_total", {**route, "status_code": "200"}) or 0.0,
                REGISTRY.get_sample_value("http_request_duration_seconds_count", route) or 0.0,
            )

        before = counted()
        client_for(world.admin).get(f"/api/v1/users/{world.viewer.id}")
        client_for(world.admin).get(f"/api/v1/users/{world.developer.id}")
        assert counted() == (before[0] + 2, before[1] + 2)  # one pattern for both paths
        text = api.get("/metrics").content.decode()
        assert 'http_requests_total{endpoint="/api/v1/users/{id}",method="GET",status_code="200"}' in text

    def test_the_cache_and_the_database_are_counted_with_or_without_redis(self, api, db):
        from django.core.cache import cache
        from prometheus_client import REGISTRY

        def total(name: str) -> float:
            return sum(
                sample.value
                for metric in REGISTRY.collect()
                for sample in metric.samples
                if sample.name == name
            )

        gets, queries = total("django_cache_get_total"), total("django_db_execute_total")
        cache.get("metrics-probe")
        User.objects.filter(email="nobody@example.test").exists()
        assert total("django_cache_get_total") == gets + 1
        assert total("django_db_execute_total") >= queries + 1

    def test_the_schema_shows_both_forms_of_an_interaction_and_the_batch_limits(self, api, db):
        schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
        body = schema["paths"]["/api/v1/interactions"]["post"]["requestBody"]["content"]["application/json"]
        forms = schema["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]["oneOf"]
        assert [form["$ref"].rsplit("/", 1)[1] for form in forms] == [
            "InteractionInputRequest",
            "InteractionBatchRequest",
        ]
        for component, field in (("ItemBatchRequest", "items"), ("InteractionBatchRequest", "interactions")):
            listed = schema["components"]["schemas"][component]["properties"][field]
            assert (listed["minItems"], listed["maxItems"]) == (1, 1000)

    def test_schema_and_docs_are_served_without_outside_network(self, api, db):
        schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert schema.status_code == 200
        paths = schema.json()["paths"]
        assert "/api/v1/auth/login" in paths and "/api/admin/tenants/{id}" in paths
        for page in ("/docs", "/redoc"):
            html = api.get(page).content.decode()
            assert "/static/drf_spectacular_sidecar/" in html
            assert "cdn." not in html and "unpkg" not in html and "fonts.g" not in html
            assert not re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", html), page

    def test_the_schema_offers_idempotency_key_on_every_post_under_api_v1(self, api, db):
        paths = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
        posts = {
            path: ops["post"] for path, ops in paths.items() if path.startswith("/api/v1/") and "post" in ops
        }
        assert "/api/v1/auth/login" in posts and "/api/v1/auth/refresh" in posts
        for path, operation in posts.items():
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            assert "Idempotency-Key" in headers, path


class TestSecurityHeaders:
    def test_every_answer_has_them(self, api, db):
        response = api.get("/health")
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"

    def test_pages_run_only_their_own_scripts_unless_relaxed(self, api, world, settings):
        pages = ("/admin/login/", "/docs", "/redoc")
        for page in pages:
            policy = dict(
                directive.strip().split(" ", 1)
                for directive in api.get(page)["Content-Security-Policy"].split(";")
            )
            assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'", page
            assert policy["object-src"] == "'none'" and policy["default-src"] == "'self'", page
        # So the docs' own scripts come as files: no inline <script> without a src.
        for page in pages:
            html = api.get(page).content.decode()
            assert not re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html), page
        errors = api.get("/api/v1/items")  # an error is JSON too: nothing to load
        assert errors["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        settings.CSP_MODE = "relaxed"
        assert "script-src 'self' 'unsafe-inline'" in api.get("/docs")["Content-Security-Policy"]
        settings.CSP_MODE = "disabled"
        assert "Content-Security-Policy" not in api.get("/docs")
        assert "Content-Security-Policy" not in api.get("/health")

    @override_settings(CORS_ALLOWED_ORIGINS=["https://app.example.com"])
    def test_cors_allows_configured_origins_only(self, api, db):
        allowed = api.options(
            "/api/v1/auth/login",
            HTTP_ORIGIN="https://app.example.com",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        )
        assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
        refused = api.options(
            "/api/v1/auth/login",
            HTTP_ORIGIN="https://evil.example.net",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        )
        assert "Access-Control-Allow-Origin" not in refused


class TestLogging:
    def test_the_console_format_keeps_a_request_on_one_line(self, world, api, caplog):
        with caplog.at_level(logging.INFO, logger="access"):
            api.get("/nothing%0D%0A2026-11-23T00:00:00.000Z INFO fake")
        record = next(record for record in caplog.records if record.name == "access")
        line = ConsoleFormatter().format(record)
        assert "\n" not in line and "\r" not in line
        assert "/nothing\\r\\n2026-11-23" in line

    def test_one_json_line_per_request_with_its_context(self, world, client_for, caplog):
        client = client_for(world.admin)
        caplog.handler.addFilter(RequestIdFilter())  # as the configured handler has it
        with caplog.at_level(logging.INFO, logger="access"):
            client.get("/api/v1/users", HTTP_X_REQUEST_ID="log-me")
        records = [record for record in caplog.records if record.name == "access"]
        assert len(records) == 1
        line = json.loads(JsonFormatter(service="backend-api").format(records[0]))
        assert line["service"] == "backend-api"
        assert line["trace_id"] == "log-me"
        assert line["level"] == "INFO"
        assert line["timestamp"].endswith("Z")
        context = line["context"]
        assert context["tenant_id"] == str(world.tenant.id)
        assert context["user_id"] == str(world.admin.id)
        assert context["endpoint"] == "/api/v1/users"
        assert context["status_code"] == 200
        assert context["duration_ms"] >= 0


PRODUCTION_KEY = "Jx4vQ9-k2LwZr7bN_c8TmYp3sHd5Fg6AeU1oWqRtVyBnMiKlOaSdGhXz0Ec"


def _settings_subprocess(*args, **env):
    environment = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "DEBUG")}
    environment.update(DJANGO_SETTINGS_MODULE="config.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestProductionSettings:
    def test_it_refuses_the_development_secret_key(self):
        result = _settings_subprocess("check", DEBUG="false")
        assert result.returncode != 0
        assert "SECRET_KEY is the development default" in result.stderr

    @pytest.mark.parametrize(
        ("variables", "refusal"),
        [
            (
                {"SECRET_KEY": "change-me-to-a-long-random-string-of-at-least-fifty-characters"},
                "SECRET_KEY is a placeholder",
            ),
            ({"SECRET_KEY": PRODUCTION_KEY, "JWT_SIGNING_KEY": "x"}, "JWT_SIGNING_KEY must be at least 32"),
            (
                {"SECRET_KEY": PRODUCTION_KEY, "LOGIN_FAILURE_RATE_PER_IP": "20 a minute"},
                "A login failure rate is a count per period",
            ),
        ],
    )
    def test_it_refuses_placeholders_weak_keys_and_bad_rates(self, variables, refusal):
        result = _settings_subprocess("check", DEBUG="false", **variables)
        assert result.returncode != 0
        assert refusal in result.stderr

    def test_what_makes_a_key_unfit(self):
        from config.settings import DEV_SECRET_KEY, secret_problem

        assert secret_problem(DEV_SECRET_KEY, 50) == "is the development default"
        assert secret_problem("a" * 59, 50) == "is not random (too few different characters)"
        assert secret_problem("ChangeMe" + PRODUCTION_KEY, 50) == "is a placeholder"
        assert secret_problem(PRODUCTION_KEY[:40], 50) == "must be at least 50 characters long"
        assert secret_problem(PRODUCTION_KEY, 50) is None

    def test_check_deploy_reports_only_what_https_termination_explains(self):
        result = _settings_subprocess("check", "--deploy", DEBUG="false", SECRET_KEY=PRODUCTION_KEY)
        output = result.stdout + result.stderr
        assert "security.W008" in output  # SECURE_SSL_REDIRECT: the proxy in front redirects to HTTPS
        assert output.count("?: (") == 1, output


class TestGunicornWorkers:
    GUNICORN = Path(__file__).resolve().parents[2] / "config" / "gunicorn.py"

    @pytest.fixture(autouse=True)
    def _environment_restored(self, monkeypatch, tmp_path):
        # The config sets a default metrics directory in the environment, and reads a .env: keep
        # both out of this process.
        monkeypatch.setenv(
            "PROMETHEUS_MULTIPROC_DIR", os.environ.get("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        )
        monkeypatch.setattr("environ.Env.read_env", lambda *args, **kwargs: None)
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
        monkeypatch.delenv("RATE_LIMIT_REDIS_URL", raising=False)

    def workers(self) -> int:
        return runpy.run_path(str(self.GUNICORN))["workers"]

    def test_without_redis_one_worker_by_default_since_the_limiter_is_per_process(self, monkeypatch):
        monkeypatch.delenv("REDIS_URL", raising=False)
        assert self.workers() == 1
        monkeypatch.setenv("RATE_LIMIT_REDIS_URL", "redis://127.0.0.1:6379/0")  # the key cache is not
        assert self.workers() == 1
        monkeypatch.setenv("WEB_CONCURRENCY", "3")  # an explicit choice stands (and is warned about)
        assert self.workers() == 3

    def test_with_redis_a_worker_per_core(self, monkeypatch):
        monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
        assert self.workers() == os.cpu_count()
        monkeypatch.setenv("RATE_LIMIT_REDIS_URL", "")  # an in-process limiter after all
        assert self.workers() == 1


def test_a_csrf_failure_is_in_the_envelope(db):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "x", "password": "y"})
    assert_error(response, 403, "FORBIDDEN")


class TestContentNegotiation:
    RENDERER_LISTS = [
        [JSONRenderer()],
        [OpenApiYamlRenderer(), OpenApiJsonRenderer()],
        [OpenApiJsonRenderer(), OpenApiYamlRenderer()],
    ]
    ACCEPTS = [None, "*/*", "application/json", "application/yaml", "text/html", "application/*;q=0.5"]

    @pytest.mark.parametrize("accept", ACCEPTS)
    @pytest.mark.parametrize("query", ["", "format=json", "format=openapi"])
    def test_it_chooses_as_drf_does(self, accept, query):
        factory = APIRequestFactory()
        for renderers in self.RENDERER_LISTS:
            headers = {"HTTP_ACCEPT": accept} if accept else {}
            request = Request(factory.get(f"/anything?{query}", **headers))

            def choice(negotiation, renderers=renderers, request=request):
                try:
                    renderer, media_type = negotiation.select_renderer(request, renderers)
                except (NotAcceptable, Http404) as exc:
                    return exc.__class__
                held = request._request.__dict__.pop("negotiation_refused", None)  # raised after auth
                return held.__class__ if held is not None else (renderer, media_type)

            assert choice(ContentNegotiation()) == choice(DefaultContentNegotiation())

    def test_the_api_answers_json_to_any_client_and_406_to_one_that_wants_none(self, world, client_for):
        client = client_for(world.admin)
        for headers in ({}, {"HTTP_ACCEPT": "*/*"}, {"HTTP_ACCEPT": "application/json"}):
            response = client.get("/api/v1/auth/me", **headers)
            assert response.status_code == 200 and response["Content-Type"] == "application/json"
        assert_error(client.get("/api/v1/auth/me", HTTP_ACCEPT="text/html"), 406, "NOT_ACCEPTABLE")

    def test_a_refused_negotiation_comes_after_the_credential_and_is_counted(
        self, world, make_key, client_for
    ):
        _, secret = make_key()
        # An Accept no renderer serves is a 406; a format DRF does not know, a 404 (DRF's rule).
        for accept, query, status in (("application/xml", "", 406), ("*/*", "?format=xml", 404)):
            bogus = APIClient()
            bogus.credentials(HTTP_X_API_KEY="rk_bogus")
            assert_error(bogus.get(f"/api/v1/items{query}", HTTP_ACCEPT=accept), 401, "AUTHENTICATION_FAILED")
            key = APIClient()
            key.credentials(HTTP_X_API_KEY=secret)
            refused = key.get(f"/api/v1/items{query}", HTTP_ACCEPT=accept)
            assert refused.status_code == status and refused["Content-Type"] == "application/json"
            assert refused["X-RateLimit-Remaining"]
        usage = client_for(world.admin).get("/api/v1/usage").json()
        assert usage["totals"] == {"requests": 2, "errors": 2, "rate_limited": 0}


@pytest.mark.skipif("connection.vendor != 'postgresql'")
class TestDatabaseHealthCheck:
    """At each request's start a connection is checked (config.postgresql), without a round trip."""

    @pytest.fixture
    def spare(self, db):
        spare = connections.create_connection("default")
        spare.ensure_connection()
        yield spare
        spare.close()

    def test_a_healthy_connection_is_kept_without_a_query(self, spare):
        def no_query(*args, **kwargs):
            raise AssertionError("the check ran a query")

        kept = spare.connection
        kept.cursor = no_query
        kept.execute = no_query
        spare.close_if_unusable_or_obsolete()
        assert spare.connection is kept

    def test_one_the_server_closed_is_dropped_and_replaced(self, spare):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [spare.connection.info.backend_pid])
        select.select([spare.connection.fileno()], [], [], 10)  # until the server's goodbye arrives
        spare.close_if_unusable_or_obsolete()
        assert spare.connection is None
        with spare.cursor() as cursor:  # so even a first query inside a transaction finds a live one
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)

    def test_within_a_transaction_nothing_is_closed(self, spare):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [spare.connection.info.backend_pid])
        select.select([spare.connection.fileno()], [], [], 10)
        spare.in_atomic_block = True  # as Django's own check, it leaves an open transaction alone
        try:
            spare.close_if_unusable_or_obsolete()
            assert spare.connection is not None
        finally:
            spare.in_atomic_block = False


@pytest.mark.skipif("connection.vendor != 'postgresql'")
class TestPreparedStatements:
    def test_a_query_a_connection_repeats_is_prepared(self, world):
        from recommendations.engine import user_history

        for _ in range(6):
            assert user_history(str(world.tenant.id), "someone") == []
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [row[0] for row in cursor.fetchall()]
        assert any('FROM "interactions"' in statement for statement in prepared), prepared

    @pytest.mark.django_db(transaction=True)
    def test_one_a_migration_made_stale_runs_again(self):
        """After a column it returns changed type in another session (a deploy's migration)."""
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE prepared_probe (v varchar(10))")
        try:
            for _ in range(6):  # prepared on the sixth run
                with connection.cursor() as cursor:
                    cursor.execute("SELECT v FROM prepared_probe WHERE v = %s", ["x"])
            migration = connections.create_connection("default")
            with migration.cursor() as cursor:
                cursor.execute("ALTER TABLE prepared_probe ALTER COLUMN v TYPE varchar(20)")
            migration.close()
            for _ in range(2):
                with connection.cursor() as cursor:
                    cursor.execute("SELECT v FROM prepared_probe WHERE v = %s", ["x"])
                    assert cursor.fetchall() == []
        finally:
            with connection.cursor() as cursor:
                cursor.execute("DROP TABLE prepared_probe")

    @pytest.mark.parametrize(("switch", "prepared"), [("true", True), ("false", False)])
    def test_they_can_be_switched_off_for_a_pooler(self, switch, prepared):
        result = _settings_subprocess(
            "shell",
            "-c",
            "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'])",
            DEBUG="true",
            DB_PREPARED_STATEMENTS=switch,
        )
        assert result.returncode == 0, result.stderr
        assert ("'prepare_threshold': 5" in result.stdout) is prepared
        assert ("'server_side_binding': True" in result.stdout) is prepared


def test_a_query_string_of_too_many_fields_is_a_400_counted_for_the_tenant(world, api, make_key, client_for):
    query = "&".join(["a=1"] * 1001)
    assert_error(api.get(f"/health?{query}"), 400, "VALIDATION_ERROR")
    _, secret = make_key()
    key = APIClient()
    key.credentials(HTTP_X_API_KEY=secret)
    refused = key.get(f"/api/v1/items?{query}")
    assert "fields" in assert_error(refused, 400, "VALIDATION_ERROR")["message"]
    assert refused["X-RateLimit-Remaining"]
    assert client_for(world.admin).get("/api/v1/usage").json()["totals"]["errors"] == 1


def test_the_schema_names_the_headers_answers_carry(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert set(schema["components"]["headers"]) >= {
        "X-Request-ID",
        "RateLimit",
        "Retry-After",
        "Idempotent-Replayed",
    }
    items = schema["paths"]["/api/v1/items"]
    assert {"X-RateLimit-Remaining", "RateLimit-Policy", "X-Request-ID"} <= set(
        items["get"]["responses"]["200"]["headers"]
    )
    assert "Retry-After" in items["get"]["responses"]["429"]["headers"]
    assert "Idempotent-Replayed" in items["post"]["responses"]["200"]["headers"]
    login = schema["paths"]["/api/v1/auth/login"]["post"]["responses"]["200"]["headers"]
    assert "X-RateLimit-Limit" not in login and "Idempotent-Replayed" in login  # no tenant's credential yet
    staff = schema["paths"]["/api/admin/tenants"]["get"]["responses"]["200"]["headers"]
    assert set(staff) == {"X-Request-ID"}
