"""Usage with a real Celery worker process: exact counts under concurrent load, a worker killed with
SIGKILL in the middle of a flush losing and doubling nothing, and the worker's own metrics."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from celery import Celery
from django.conf import settings
from django.test import Client

from apikeys.services import api_key_create
from tests.live import database_url_of_tests
from tests.usage.factories import event
from usage import events
from usage.models import UsageLog

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


class Worker:
    """`celery worker` in its own process, on a queue of this test only."""

    def __init__(self, broker: str, queue: str, batch_size: int, log: Path) -> None:
        self.broker, self.queue, self.log = broker, queue, log
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "true",
            "DATABASE_URL": database_url_of_tests(),
            "REDIS_URL": settings.USAGE_BUFFER_REDIS_URL,
            "USAGE_BUFFER_REDIS_URL": settings.USAGE_BUFFER_REDIS_URL,
            "CELERY_BROKER_URL": broker,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "USAGE_INFLIGHT_TIMEOUT_SECONDS": "1",
            "USAGE_FLUSH_BATCH_SIZE": str(batch_size),
            "LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen | None = None
        self.app = Celery(broker=broker, set_as_current=False)  # shared tasks elsewhere stay on ours

    def start(self) -> None:
        self.log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-P",
                "solo",
                "-Q",
                self.queue,
                # A name of its own each start: a killed worker's exclusive control queue outlives it
                # on RabbitMQ for a while, and another with the same name could not start meanwhile.
                "-n",
                f"{uuid.uuid4().hex[:12]}@%h",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "WARNING",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )

    def flush(self) -> None:
        self.app.send_task("usage.tasks.usage_flush", queue=self.queue)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process is not None:
            self.log_file.close()
        self.app.close()


@pytest.fixture
def worker(world):
    broker = os.environ.get("CELERY_BROKER_URL") or settings.TEST_REDIS_URL
    if broker.startswith("memory"):
        broker = settings.TEST_REDIS_URL
    events.buffer_client.cache_clear()
    started = []

    def make(batch_size: int = 2000) -> Worker:
        log = Path(tempfile.mkstemp(prefix="usage-worker-", suffix=".log")[1])
        worker = Worker(broker, f"usage-test-{uuid.uuid4().hex[:8]}", batch_size, log)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()
        worker.log.unlink(missing_ok=True)
    events.buffer_client.cache_clear()


def _wait_for(condition, timeout: float = 60.0, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def test_a_worker_killed_mid_flush_loses_and_doubles_nothing(world, worker):
    total = 40_000
    buffer = events.buffer_client()
    pipe = buffer.pipeline(transaction=False)
    for number in range(total):
        event = {
            "event_id": str(uuid.uuid4()),
            "request_id": f"r{number}",
            "tenant_id": str(world.tenant.id),
            "api_key_id": None,
            "user_id": None,
            "endpoint": "/api/v1/probe",
            "method": "GET",
            "status_code": 200,
            "outcome": "ok",
            "latency_ms": 1.0,
            "request_size_bytes": 0,
            "response_size_bytes": 2,
            "timestamp": "2026-11-22T10:00:00+00:00",
        }
        pipe.rpush(events.BUFFER_KEY, json.dumps(event))
        if number % 5000 == 4999:
            pipe.execute()
    pipe.execute()

    first = worker(batch_size=250)
    first.start()
    asked = [0.0]

    def first_rows_stored() -> bool:
        assert first.process.poll() is None, f"the worker exited:\n{first.log.read_text()[-3000:]}"
        if time.monotonic() - asked[0] > 5:  # asks again in case the worker was not listening yet
            first.flush()
            asked[0] = time.monotonic()
        return UsageLog.objects.count() > 0

    assert _wait_for(first_rows_stored, timeout=120), first.log.read_text()[-3000:]
    first.kill()
    stored_when_killed = UsageLog.objects.count()
    assert 0 < stored_when_killed < total, "the kill did not land in the middle of the flush"

    second = worker()
    second.start()

    def all_stored() -> bool:
        second.flush()
        return UsageLog.objects.count() == total and buffer.zcard(events.INFLIGHT_INDEX_KEY) == 0

    assert _wait_for(all_stored, every=0.5), f"{UsageLog.objects.count()} of {total} stored"
    assert UsageLog.objects.values("event_id").distinct().count() == total
    assert buffer.llen(events.BUFFER_KEY) == 0


def test_counts_are_exact_after_concurrent_load_from_several_tenants(world, worker, live_server):
    flusher = worker()
    flusher.start()
    tenants = [world.tenant, world.other_tenant]
    secrets = {
        tenant.slug: api_key_create(tenant=tenant, name="load", permissions=["read"])[1] for tenant in tenants
    }
    plan = [("acme", "/api/v1/api-keys")] * 60 + [("acme", "/api/v1/usage/invoices")] * 90
    plan += [("globex", "/api/v1/usage/invoices")] * 120 + [("globex", "/nowhere")] * 5

    def call(job: tuple[str, str]) -> int:
        slug, path = job
        return requests.get(
            live_server.url + path, headers={"X-API-Key": secrets[slug]}, timeout=30
        ).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(call, plan))
    assert statuses.count(403) == 60 and statuses.count(200) == 210
    flusher.flush()  # the worker empties the buffer, the usage read stores whatever is left

    def totals(slug: str) -> dict:
        answer = requests.get(
            live_server.url + "/api/v1/usage", headers={"X-API-Key": secrets[slug]}, timeout=30
        )
        return answer.json()["totals"]

    assert totals("acme") == {"requests": 150, "errors": 60, "rate_limited": 0}
    assert totals("globex") == {"requests": 125, "errors": 5, "rate_limited": 0}
    assert UsageLog.objects.values("event_id").distinct().count() == UsageLog.objects.count()


def test_the_worker_serves_the_metrics_of_its_flushes(world, worker, tmp_path):
    # The flushes run in the worker, not in the API: its own /metrics is where they show.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    flusher = worker()
    flusher.env.update(
        CELERY_METRICS_PORT=str(port),
        CELERY_METRICS_ADDR="127.0.0.1",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "worker-metrics"),
    )
    flusher.start()
    for _ in range(3):
        events.usage_event_record(event(world.tenant))

    def flushed() -> float:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except requests.ConnectionError:
            return -1
        match = re.search(r"^usage_events_flushed_total (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0

    def api_metric(name: str) -> float:
        text = Client().get("/metrics").content.decode()
        return float(re.search(rf"^{name} (\S+)$", text, re.MULTILINE).group(1))

    # The API's own /metrics reads the buffer as it is, whichever process empties it.
    stored_before = api_metric("usage_events_stored_total")
    assert api_metric("usage_buffer_pending_events") == 3
    assert _wait_for(lambda: flushed() >= 0, every=0.2), "the worker serves no metrics"
    flusher.flush()
    assert _wait_for(lambda: flushed() == 3, every=0.2), f"flushed {flushed()}"
    assert UsageLog.objects.filter(tenant=world.tenant).count() == 3
    assert api_metric("usage_events_stored_total") - stored_before == 3
    assert api_metric("usage_buffer_pending_events") == 0


def test_the_worker_logs_json_lines(world, worker):
    usage_worker = worker()
    usage_worker.env.update(LOG_FORMAT="json", LOG_LEVEL="INFO")
    usage_worker.start()
    usage_worker.flush()
    assert _wait_for(lambda: b"usage_flush" in usage_worker.log.read_bytes())
    usage_worker.stop()
    # The task's log lines (not the start-up banner, printed before logging is set up).
    lines = [line for line in usage_worker.log.read_text().splitlines() if "usage_flush" in line]
    assert lines
    for line in lines:
        assert json.loads(line)["level"] == "INFO", line
