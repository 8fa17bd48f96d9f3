import os
import shutil
import sys
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("recommender")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _metrics_directory_clear() -> None:
    """A worker that serves its metrics starts its multiprocess directory afresh (its own, not the
    API's), before any metric is made (the project's modules load after this one), as gunicorn does
    for the API's. Only `celery worker` itself: a shell or `celery inspect` beside a running worker
    (same environment) must not delete the files its pool is writing."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if os.environ.get("CELERY_METRICS_PORT") and directory and "worker" in sys.argv[1:]:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


_metrics_directory_clear()


@setup_logging.connect
def _logging_as_configured(**kwargs: Any) -> None:
    """Celery leaves logging alone: the worker and beat log as LOGGING says (JSON lines with
    LOG_FORMAT=json, the seed's shape), as the API does, instead of Celery's own text lines."""


@worker_ready.connect
def _metrics_serve(**kwargs: Any) -> None:
    """With CELERY_METRICS_PORT, the worker serves Prometheus text there: the usage flushes, the
    rollups and billing run here, not in the API, so its /metrics cannot show them. With
    PROMETHEUS_MULTIPROC_DIR the pool's processes are added up, as the API's gunicorn workers are."""
    port = os.environ.get("CELERY_METRICS_PORT")
    if not port:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    start_http_server(int(port), addr=os.environ.get("CELERY_METRICS_ADDR", "0.0.0.0"), registry=registry)  # nosec B104
