"""HTTP clients of the services beside us: the external ML engine and the data pipeline.

Both reuse connections, time out quickly, retry a bounded number of times, pass the request id on,
and stop calling a service that keeps failing (a circuit breaker) so that a dead dependency costs
our callers nothing but the fallback."""

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from django.conf import settings
from prometheus_client import Counter, Histogram

from config.logging import request_id_var

logger = logging.getLogger(__name__)

upstream_calls_total = Counter(
    "upstream_calls_total",
    "Calls to the ML engine and the data pipeline, by outcome.",
    ["service", "outcome"],
)
upstream_call_seconds = Histogram(
    "upstream_call_seconds",
    "Time of calls to the ML engine and the data pipeline.",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class UpstreamError(Exception):
    """The service did not give a usable answer (down, slow, failing, breaker open, or nonsense)."""


class CircuitOpen(UpstreamError):
    """Not even tried: the service failed too often lately (logged once, when its breaker opened)."""


class UpstreamRejected(UpstreamError):
    """The service answered that our request itself is wrong (REJECTED): it is up, and asking again
    will not help, so this neither counts against its breaker nor is retried."""


# The answers that refuse the request for what it is. Any other 4xx (a 429 or 408: busy; a 401 or
# 403: our credentials) may pass: a failure, retried later by the tasks that can wait.
REJECTED = frozenset({400, 404, 405, 409, 410, 413, 415, 422})


# An answer larger than this is nonsense, whatever it says.
MAX_ANSWER_BYTES = 16 * 2**20


class CircuitBreaker:
    """Opens after `threshold` failures in a row; after `cooldown` seconds lets one trial call through."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self.lock = threading.Lock()

    @property
    def state(self) -> str:
        with self.lock:
            if self.opened_at is None:
                return "closed"
            return "half-open" if time.monotonic() - self.opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        with self.lock:
            if self.opened_at is None:
                return True
            if time.monotonic() - self.opened_at >= self.cooldown:
                self.opened_at = time.monotonic()  # one trial per cooldown
                return True
            return False

    def record(self, success: bool) -> None:
        with self.lock:
            if success:
                self.failures, self.opened_at = 0, None
                return
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = time.monotonic()


@dataclass
class ServiceClient:
    name: str
    base_url: str
    timeout: tuple[float, float]
    retries: int
    breaker: CircuitBreaker

    def __post_init__(self) -> None:
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def post(self, path: str, payload: dict, accept: Callable[[Any], bool] | None = None) -> Any:
        """POSTs JSON and returns the decoded JSON answer (None for an empty one), or raises
        UpstreamError. A connection error or a 5xx is retried after a short pause; a timeout, a 4xx
        or nonsense is not (UpstreamRejected for the 4xx that refuse the request itself). An answer
        `accept` refuses is nonsense too: it counts against the breaker as a failed call does."""
        if not self.breaker.allow():
            upstream_calls_total.labels(self.name, "breaker_open").inc()
            raise CircuitOpen(f"{self.name}: circuit open")
        headers = {"X-Request-ID": request_id_var.get() or "", "Accept": "application/json"}
        last_error = "no attempt"
        for attempt in range(self.retries + 1):
            started = time.perf_counter()
            try:
                status, content = self._exchange(path, payload, headers)
                upstream_call_seconds.labels(self.name).observe(time.perf_counter() - started)
                if status < 400:
                    body = json.loads(content) if content.strip() else None
                    if accept is not None and not accept(body):
                        raise ValueError("an answer of another shape")
                    upstream_calls_total.labels(self.name, "ok").inc()
                    self.breaker.record(True)
                    return body
            except requests.Timeout:
                upstream_call_seconds.labels(self.name).observe(time.perf_counter() - started)
                upstream_calls_total.labels(self.name, "timeout").inc()
                last_error = "timeout"
                break  # a slow service is not made faster by waiting twice
            except requests.RequestException as exc:
                upstream_calls_total.labels(self.name, "unreachable").inc()
                last_error = exc.__class__.__name__
            except (ValueError, RecursionError):  # not JSON, too large, nested past the decoder, or unfit
                upstream_calls_total.labels(self.name, "malformed").inc()
                last_error = "malformed answer"
                break
            else:
                last_error = f"status {status}"
                if status in REJECTED:
                    upstream_calls_total.labels(self.name, "client_error").inc()
                    self.breaker.record(True)  # it answered: it is up
                    logger.warning("%s refused the call to %s: status %s", self.name, path, status)
                    raise UpstreamRejected(f"{self.name}: status {status}")
                if status < 500:
                    upstream_calls_total.labels(self.name, "client_error").inc()
                    break  # busy or not letting us in: not at once again
                upstream_calls_total.labels(self.name, "server_error").inc()
            if attempt < self.retries:
                time.sleep(0.05 * (attempt + 1))
        was_open = self.breaker.opened_at is not None
        self.breaker.record(False)
        logger.warning("%s call to %s failed: %s", self.name, path, last_error)
        if not was_open and self.breaker.opened_at is not None:
            logger.warning(
                "%s failed %d times in a row: no calls for %.0f s (circuit open)",
                self.name,
                self.breaker.failures,
                self.breaker.cooldown,
            )
        raise UpstreamError(f"{self.name}: {last_error}")

    def _exchange(self, path: str, payload: dict, headers: dict[str, str]) -> tuple[int, bytes]:
        """The status and body of one POST. requests' read timeout bounds each read only, so a service
        that trickles its answer is cut off once the connect and read timeouts have passed in all; an
        answer over MAX_ANSWER_BYTES is cut off too (ValueError)."""
        deadline = time.monotonic() + sum(self.timeout)
        with self.session.post(
            self.base_url.rstrip("/") + path, json=payload, headers=headers, timeout=self.timeout, stream=True
        ) as response:
            body = bytearray()
            while chunk := _read_some(response.raw):
                body += chunk
                if time.monotonic() > deadline:
                    raise requests.Timeout("the answer did not complete in time")
                if len(body) > MAX_ANSWER_BYTES:
                    raise ValueError("the answer is too large")
            return response.status_code, bytes(body)


def _read_some(raw: urllib3.HTTPResponse) -> bytes:
    """What has arrived of the body (b"" at its end), as requests' own errors. Not iter_content: its
    reads wait for a whole chunk, however slowly it comes."""
    try:
        return raw.read1(64 * 1024, decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.Timeout(str(exc)) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise requests.ConnectionError(str(exc)) from exc


_clients: dict[str, ServiceClient] = {}
_clients_lock = threading.Lock()


def service_client(name: str) -> ServiceClient | None:
    """The client of `ml_engine`, `ml_embeddings` (the same engine, for the background work of
    embedding a catalog: a longer read timeout, and a breaker of its own, so that a slow batch does
    not turn requests for recommendations away) or `data_pipeline`; None when its URL is not set."""
    url = settings.DATA_PIPELINE_URL if name == "data_pipeline" else settings.ML_ENGINE_URL
    if not url:
        return None
    # Tasks run in-process (no broker) make a request wait for them: there, the read timeout of a call
    # made in a request.
    in_background = not settings.CELERY_TASK_ALWAYS_EAGER
    read_timeout = (
        settings.UPSTREAM_EMBEDDINGS_READ_TIMEOUT
        if name == "ml_embeddings" and in_background
        else settings.UPSTREAM_READ_TIMEOUT
    )
    with _clients_lock:
        client = _clients.get(name)
        timeout = (settings.UPSTREAM_CONNECT_TIMEOUT, read_timeout)
        if client is None or client.base_url != url or client.timeout != timeout:
            client = ServiceClient(
                name=name,
                base_url=url,
                timeout=timeout,
                retries=settings.UPSTREAM_RETRIES,
                breaker=CircuitBreaker(
                    settings.UPSTREAM_BREAKER_THRESHOLD, settings.UPSTREAM_BREAKER_COOLDOWN
                ),
            )
            _clients[name] = client
    return client


def clients_reset() -> None:
    with _clients_lock:
        _clients.clear()
