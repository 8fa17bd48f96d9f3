"""Real servers for fault and load tests: gunicorn with production settings, and a private PostgreSQL
(initdb/pg_ctl on its own port and data directory, never the machine's shared one)."""

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[1]


def database_url_of_tests() -> str:
    """The URL of the database the tests run on (the transactional tests commit to it)."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


class Gunicorn:
    """gunicorn serving the project with production settings (DEBUG off) on a free port."""

    def __init__(self, log_dir: Path, workers: int = 2, **env: str) -> None:
        self.port = free_port()
        self.log = log_dir / f"gunicorn-{self.port}.log"
        metrics = log_dir / f"prometheus-{self.port}"
        metrics.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            # The tests' own key, so that the JWTs they mint are valid on this server too.
            "SECRET_KEY": settings.SECRET_KEY,
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": database_url_of_tests(),
            "REDIS_URL": settings.TEST_REDIS_URL,
            "CELERY_TASK_ALWAYS_EAGER": "true",
            "LOG_LEVEL": "WARNING",
            "WEB_CONCURRENCY": str(workers),
            "PORT": str(self.port),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            "SECURE_HSTS_SECONDS": "0",
            **env,
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Gunicorn":
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self.process = subprocess.Popen(
            [gunicorn, "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not start:\n" + self.log.read_text()[-3000:])

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def postgres_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, in a temporary directory, on a free port."""

    def __init__(self) -> None:
        self.bin = postgres_binaries()
        self.port = free_port()
        # Not under pytest's own temporary directory: the postgres user must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="recommender-pg-"))
        self.data = self.root / "pgdata"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_postgres, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> "PrivatePostgres":
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        # The server's output goes to a file: a pipe would keep pg_ctl's caller waiting for it to close.
        log = str(self.root / "postgres.log")
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            log,
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_postgres,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
