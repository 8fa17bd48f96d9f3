"""gunicorn settings: `gunicorn -c config/gunicorn.py config.wsgi`.

Prometheus runs in multiprocess mode: each worker writes its samples under PROMETHEUS_MULTIPROC_DIR
and /metrics adds them up, so the figures are right whichever worker answers the scrape.
"""

import logging
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import environ
from gunicorn import glogging

# The settings' own .env, so that what they see decides here too.
environ.Env.read_env(Path(__file__).resolve().parent.parent / ".env", overwrite=False)

# In a container, behind the proxy.
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # nosec B104
# Without Redis the rate limiter and the key cache live in each process: only one process keeps
# them exact (a revoked key refused at once, N requests a minute and not N per process). The cache
# is Redis through REDIS_URL; the limiter too, unless RATE_LIMIT_REDIS_URL names another or none.
SHARED_STATE = bool(os.environ.get("REDIS_URL")) and bool(
    os.environ.get("RATE_LIMIT_REDIS_URL", os.environ.get("REDIS_URL"))
)
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() if SHARED_STATE else 1))
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
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


class AppFormatLogger(glogging.Logger):
    """gunicorn's own lines (start, a worker that timed out or died) in the application's format. Not
    through logconfig_dict: with it set, gunicorn builds an access line for every request, then drops it."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        from config.logging import ConsoleFormatter, JsonFormatter

        json_lines = os.environ.get("LOG_FORMAT", "json") == "json"
        formatter = JsonFormatter(service="backend-api") if json_lines else ConsoleFormatter()
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter)


logger_class = AppFormatLogger
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# A directory of our own for metrics files.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/recommender-prometheus")  # nosec B108


def on_starting(server: Any) -> None:
    if server.cfg.workers > 1 and not SHARED_STATE:
        logging.getLogger("gunicorn.error").warning(
            "%d workers without Redis: rate limits and key revocations are exact only within each "
            "worker; set REDIS_URL, or WEB_CONCURRENCY=1",
            server.cfg.workers,
        )
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def when_ready(server: Any) -> None:
    if server.cfg.reuse_port:
        # gunicorn's own "Listening at" line names no address then: the workers open their sockets.
        server.log.info(
            "Each worker listens at %s (a socket of its own: reuse_port)", ", ".join(server.cfg.bind)
        )


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
