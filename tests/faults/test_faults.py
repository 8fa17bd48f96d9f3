"""Faults against real services: a private PostgreSQL stopped and restarted, a private Redis stopped and
restarted under traffic, a gunicorn worker killed with SIGKILL. (A Celery worker killed mid-flush is in
tests/usage/test_worker.py; the ML engine slow, failing and down in tests/recommendations/test_remote.py.)"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from apikeys.services import api_key_create
from tests.conftest import IN_CI
from tests.live import ROOT, Gunicorn, PrivatePostgres, postgres_binaries
from tests.services import PrivateRedis

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def get(url: str, key: str, path: str = "/api/v1/usage/invoices") -> requests.Response:
    return requests.get(url + path, headers={"X-API-Key": key}, timeout=15)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path


def test_postgres_unreachable_then_back_without_a_restart(logs, tmp_path):
    if postgres_binaries() is None:
        if IN_CI:
            pytest.fail("PostgreSQL's initdb/pg_ctl are required under CI for the fault tests.")
        pytest.skip("PostgreSQL server binaries are not installed")
    database = PrivatePostgres().init()
    database.start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "true",
        "DATABASE_URL": database.url,
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300
    )
    make_key = (
        "from tenants.services import tenant_create; from apikeys.services import api_key_create;"
        "t, _ = tenant_create(name='F', slug='f');"
        "print(api_key_create(tenant=t, name='k', permissions=['read'])[1])"
    )
    key = (
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", make_key],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    server = Gunicorn(logs, DATABASE_URL=database.url).start()

    def burst() -> list[int]:
        """Concurrent requests, so that every thread of every worker serves some."""
        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(lambda _: get(server.url, key).status_code, range(64)))

    try:
        assert burst() == [200] * 64  # every thread now holds a database connection
        database.stop()
        ready = requests.get(server.url + "/ready", timeout=15)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "unavailable"
        for _ in range(3):
            down = get(server.url, key)
            assert down.status_code == 503
            body = down.json()
            assert body["error"]["code"] == "UPSTREAM_UNAVAILABLE"
            assert "Traceback" not in down.text and "psycopg" not in down.text
        database.start()
        # Recovered, same gunicorn, and no request fails on a connection that the restart closed:
        # each thread's connection is checked before its next query (config.postgresql).
        statuses = burst()
        assert statuses == [200] * 64, statuses
        assert requests.get(server.url + "/ready", timeout=15).status_code == 200
    finally:
        server.stop()
        database.remove()


def test_redis_stopped_and_restarted_under_traffic_loses_no_usage(world, logs, tmp_path):
    redis_server = PrivateRedis(tmp_path / "redis", persistent=True)
    if redis_server.binary is None:
        pytest.fail("redis-server is required for this test") if IN_CI else pytest.skip("no redis-server")
    (tmp_path / "redis").mkdir()
    redis_server.start()
    _, key = api_key_create(tenant=world.tenant, name="k", permissions=["read"])
    server = Gunicorn(
        logs, REDIS_URL=redis_server.url, RATE_LIMIT_REDIS_TIMEOUT="0.05", USAGE_BUFFER_REDIS_TIMEOUT="0.05"
    ).start()
    answered, stop = [], threading.Event()

    def traffic() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.get(
                    server.url + "/api/v1/usage/invoices", headers={"X-API-Key": key}, timeout=15
                )
                answered.append(response.status_code)

    try:
        workers = [threading.Thread(target=traffic) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        redis_server.stop()
        outage_started = len(answered)
        time.sleep(1.5)
        during_outage = answered[outage_started:]
        redis_server.start()  # its append-only file brings the buffered events back
        time.sleep(1.0)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        assert during_outage and set(during_outage) == {200}  # served, limits failing open
        assert set(answered) == {200}
        totals = get(server.url, key, "/api/v1/usage").json()["totals"]
        assert totals["requests"] == len(answered)  # every request counted once, none lost
    finally:
        stop.set()
        server.stop()
        redis_server.stop()


def test_a_gunicorn_worker_killed_mid_request_leaves_the_others_serving(world, logs):
    _, key = api_key_create(tenant=world.tenant, name="k", permissions=["read"])
    server = Gunicorn(logs, workers=2, LOG_LEVEL="INFO").start()
    try:
        victim = server.worker_pids()[0]
        answered: list[int] = []  # appends are atomic: a count the threads share

        def call(_: int) -> int | str:
            try:
                return get(server.url, key).status_code
            except requests.RequestException as exc:
                return exc.__class__.__name__
            finally:
                answered.append(1)

        with ThreadPoolExecutor(max_workers=8) as pool:
            running = pool.map(call, range(400))
            deadline = time.monotonic() + 30
            while len(answered) < 40 and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(victim, signal.SIGKILL)
            answered_before_the_kill = len(answered)
            outcomes = list(running)
        # The kill landed in the middle of the burst: some were answered before it, most after.
        assert 40 <= answered_before_the_kill < 200, answered_before_the_kill
        assert 200 in outcomes
        assert not [o for o in outcomes if isinstance(o, int) and o != 200]  # no 5xx from anyone
        failed = [o for o in outcomes if not isinstance(o, int)]
        # At most the requests inside the killed worker and those queued on its own listening socket
        # (reuse_port, config/gunicorn.py) until the kernel closed it: a caller may lose one of each.
        assert len(failed) <= 16
        after = [get(server.url, key).status_code for _ in range(40)]
        assert after == [200] * 40
        assert victim not in server.worker_pids() and len(server.worker_pids()) == 2  # replaced
        health = json.loads(requests.get(server.url + "/health", timeout=5).text)
        assert health == {"status": "ok"}
        # gunicorn's own account of it, in the application's JSON lines.
        told = [line for line in server.log.read_text().splitlines() if str(victim) in line]
        assert told and all(json.loads(line)["logger"] == "gunicorn.error" for line in told), told
        # Where it listens, which gunicorn's own start-up line leaves out with a socket per worker.
        port = server.url.rsplit(":", 1)[1]
        assert any(
            json.loads(line)["message"].startswith(f"Each worker listens at 0.0.0.0:{port}")
            for line in server.log.read_text().splitlines()
        )
    finally:
        server.stop()
