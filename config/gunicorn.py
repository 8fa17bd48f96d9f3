"""gunicorn settings: `gunicorn -c config/gunicorn.py config.wsgi`.

Prometheus runs in multiprocess mode: each worker writes its samples under PROMETHEUS_MULTIPROC_DIR
and /metrics adds them up, so the figures are right whichever worker answers the scrape.
"""

import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

# In a container, behind the proxy.
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # nosec B104
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
# Threads let a worker overlap the waits on PostgreSQL and Redis, and keep connections alive.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
keepalive = 5
# A listening socket per worker: the kernel spreads new connections over the workers by a hash. On a
# shared socket the worker that wakes first takes them, and a client's (or a proxy's) few keep-alive
# connections could all land on one worker (seen in the benchmark: 8 of 8, half the throughput).
# The price: connections still queued on a worker's socket are reset when that worker exits (a
# reload, a crash, GUNICORN_MAX_REQUESTS), and a new worker's share of connections waits while it
# loads the project. GUNICORN_REUSE_PORT=false goes back to one shared socket.
reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "true").lower() in ("1", "true", "yes")
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
accesslog = None  # the app writes one JSON line per request itself
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# A directory of our own for metrics files.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/recommender-prometheus")  # nosec B108


def on_starting(server: Any) -> None:
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
