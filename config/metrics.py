"""Prometheus metrics of the HTTP layer, in the seed's names (multiprocess-safe under gunicorn)."""

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

http_requests_total = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route pattern and status code.",
    ["method", "endpoint", "status_code"],
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route pattern.",
    ["method", "endpoint"],
    buckets=LATENCY_BUCKETS,
)
