"""The load benchmark: `make bench`.

Starts, on this machine, PostgreSQL- and Redis-backed gunicorn with production settings (workers =
cores) and a Celery worker; seeds a tenant (10,000 items, 100,000 interactions); drives each scenario
with wrk from a separate process for a fixed duration at 8 and 32 connections, side by side with three
baselines served by the same gunicorn set-up without middleware (a bare Django view, a bare DRF view,
and that DRF view plus the two Redis round trips every API-key request makes: the limiter's script and
the usage event's push), a fourth, B', the same DRF view served by the application itself behind
its middleware, without authentication, and a fifth, D, B' plus the application's rate-limiter call;
checks that the usage rows equal the requests the server answered; writes bench/RESULTS.md and
bench/results.json. With --serve (`make bench-serve`) it starts the same stack and tenant and waits
for a load generator of one's own, then makes the same usage check.

Environment: BENCH_DURATION (seconds per run, default 10), BENCH_WARMUP (seconds of unmeasured load
before each scenario, default 2; BENCH_ITEM_WARMUP for GET item, default 30), BENCH_CONNECTIONS
("8,32"), BENCH_PG (default postgres://postgres@127.0.0.1:5432), BENCH_REDIS (default redis://127.0.0.1:6379/9).
"""

import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))
ITEM_WARMUP = int(os.environ.get("BENCH_ITEM_WARMUP", "30"))
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "8,32").split(",")]
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/9")
CORES = os.cpu_count() or 1
APP_PORT, BASE_PORT = 8701, 8702
SCENARIO_ROUTES = [
    ("/api/v1/items/{item_id}", "GET"),
    ("/api/v1/recommendations", "POST"),
    ("/api/v1/interactions", "POST"),
    ("/api/v1/items", "GET"),
]


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def run(command: list[str], env: dict | None = None, check: bool = True) -> str:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def wait_ready(port: int, path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port}")


def http_json(url: str, auth: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": auth})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def wrk(port: int, script: str, path: str, connections: int, env: dict, seconds: int = DURATION) -> dict:
    lua = (BENCH / "wrk" / script).read_text() + "\n" + (BENCH / "wrk" / "report.lua").read_text()
    script_path = BENCH / "out" / f"run-{script}"
    script_path.write_text(lua)
    threads = min(connections, 4)
    output = run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script_path),
            f"http://127.0.0.1:{port}{path}",
        ],
        env={**os.environ, **env},
    )
    figures = json.loads(re.search(r"WRK_JSON (\{.*\})", output).group(1))
    seconds = figures["duration_us"] / 1e6
    return {
        "requests": figures["requests"],
        "rps": round(figures["requests"] / seconds, 1),
        "p50_ms": round(figures["p50_us"] / 1000, 2),
        "p95_ms": round(figures["p95_us"] / 1000, 2),
        "p99_ms": round(figures["p99_us"] / 1000, 2),
        "errors": figures["errors"],
    }


def served_by_route(port: int) -> dict[tuple[str, str], int]:
    """What the server says it answered, per method and route (Prometheus, all workers summed)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    counts: dict[tuple[str, str], int] = {}
    pattern = r'^http_requests_total\{endpoint="([^"]+)",method="([^"]+)",status_code="\d+"\} ([0-9.e+]+)$'
    for endpoint, method, value in re.findall(pattern, text, re.M):
        if endpoint != "/metrics":  # reading the counters counts too
            counts[(endpoint, method)] = counts.get((endpoint, method), 0) + int(float(value))
    return counts


def usage_check(key: str) -> list[dict]:
    """Per scenario route: the requests the server answered against the usage rows the tenant sees."""
    # A load generator stops with requests still queued in the server: wait until it has answered them.
    served, settled = served_by_route(APP_PORT), False
    while not settled:
        time.sleep(1)
        latest = served_by_route(APP_PORT)
        settled, served = latest == served, latest
    today = datetime.now(UTC).date()
    usage = http_json(
        f"http://127.0.0.1:{APP_PORT}/api/v1/usage?start={today - timedelta(days=1)}"
        f"&end={today + timedelta(days=1)}",
        key,
    )
    metered = {(row["endpoint"], row["method"]): row["requests"] for row in usage["by_endpoint"]}
    return [
        {
            "endpoint": endpoint,
            "method": method,
            "served": served.get((endpoint, method), 0),
            "usage_rows": metered.get((endpoint, method), 0),
            "equal": served.get((endpoint, method), 0) == metered.get((endpoint, method), 0),
        }
        for endpoint, method in SCENARIO_ROUTES
    ]


def flush_redis() -> None:
    run([PYTHON, "-c", "import redis,sys; redis.Redis.from_url(sys.argv[1]).flushdb()", REDIS], check=False)


class Stack:
    """gunicorn (app and baselines) and a Celery worker with its beat, on a fresh database."""

    def __init__(self) -> None:
        self.database = f"recommender_bench_{int(time.time())}"
        self.processes: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": f"{PG}/{self.database}",
            "REDIS_URL": REDIS,
            "CELERY_BROKER_URL": REDIS,
            "ACCESS_TOKEN_EXPIRE_MINUTES": "120",
            "LOG_LEVEL": "WARNING",
            "WEB_CONCURRENCY": str(CORES),
            "PROMETHEUS_MULTIPROC_DIR": str(BENCH / "out" / "prometheus"),
            "SECURE_HSTS_SECONDS": "0",
            # Training is a background job: keep it from landing on the cores in the middle of a
            # scenario, so that each run measures the request path alone.
            "ENGINE_RETRAIN_AFTER_INTERACTIONS": str(10**9),
        }

    def start(self) -> None:
        for directory in ("prometheus", "prometheus-baseline"):
            (BENCH / "out" / directory).mkdir(parents=True, exist_ok=True)
        run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {self.database}"])
        flush_redis()
        run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env=self.env)
        run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"], env=self.env)
        logs = BENCH / "out"
        gunicorn = ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
        # The application's settings with baseline B' routed (bench.app_settings).
        self.spawn(
            gunicorn,
            {"PORT": str(APP_PORT), "DJANGO_SETTINGS_MODULE": "bench.app_settings"},
            logs / "app.log",
        )
        baseline = {
            "PORT": str(BASE_PORT),
            "DJANGO_SETTINGS_MODULE": "bench.baseline_settings",
            "PROMETHEUS_MULTIPROC_DIR": str(BENCH / "out" / "prometheus-baseline"),
        }
        self.spawn(gunicorn, baseline, logs / "baseline.log")
        self.spawn(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-B",
                "-c",
                "1",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(logs / "celerybeat-schedule"),
            ],
            {},
            logs / "worker.log",
        )
        wait_ready(APP_PORT, "/ready")
        wait_ready(BASE_PORT, "/baseline/django")

    def seed(self) -> dict:
        """The tenant of every scenario, with its API key and a user's JWT."""
        log("seeding the tenant (10,000 items, 100,000 interactions) and training its engine")
        return json.loads(run([PYTHON, "-m", "bench.seed"], env=self.env).strip().splitlines()[-1])

    def spawn(self, command: list[str], env: dict, log_file: Path) -> None:
        if command[0] == "gunicorn":
            command = [str(Path(PYTHON).parent / "gunicorn"), *command[1:]]
        self.processes.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env={**self.env, **env},
                stdout=log_file.open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def stop(self) -> None:
        self.stop_processes()
        flush_redis()  # the benchmark's own database: baseline C's pushes pile up there
        run(
            ["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"],
            check=False,
        )

    def stop_processes(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes = []


def main() -> None:
    shutil.rmtree(BENCH / "out", ignore_errors=True)
    (BENCH / "out").mkdir(parents=True)
    if "--serve" in sys.argv[1:]:
        serve()
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make bench` installs it (apt-get install wrk).")
    stack = Stack()
    try:
        log(f"starting gunicorn ({CORES} workers), the baselines and a Celery worker on {stack.database}")
        stack.start()
        seed = stack.seed()
        key, jwt = f"Bearer {seed['api_key']}", f"Bearer {seed['jwt']}"
        shared = {"BENCH_ITEMS": str(seed["items"]), "BENCH_USERS": str(seed["users"])}
        scenarios = [
            ("baseline A: bare Django view", BASE_PORT, "get.lua", "/baseline/django", {}),
            ("baseline B: DRF view, no auth", BASE_PORT, "get.lua", "/baseline/drf", {}),
            ("baseline C: B + limiter script + usage push", BASE_PORT, "get.lua", "/baseline/drf-redis", {}),
            ("baseline B': B behind the app's middleware", APP_PORT, "get.lua", "/api/v1/bench-baseline", {}),
            ("baseline D: B' + the app's limiter call", APP_PORT, "get.lua", "/api/v1/bench-limiter", {}),
            ("GET /api/v1/items/{id} (API key)", APP_PORT, "item.lua", "/", {"BENCH_AUTH": key}),
            ("POST /api/v1/recommendations (API key)", APP_PORT, "recommend.lua", "/", {"BENCH_AUTH": key}),
            (
                "POST /api/v1/interactions, 10 (API key)",
                APP_PORT,
                "interactions.lua",
                "/",
                {"BENCH_AUTH": key},
            ),
            ("GET /api/v1/items (JWT)", APP_PORT, "items_jwt.lua", "/", {"BENCH_AUTH": jwt}),
        ]
        # Unmeasured runs first, to warm every worker's caches (keys, engine index, items kept). The
        # items are kept one random read at a time, so that scenario warms until each worker holds
        # most of the catalog, as a server that has been up a while does.
        for _, port, script, path, env in scenarios:
            seconds = ITEM_WARMUP if script == "item.lua" else WARMUP
            wrk(port, script, path, CORES * 2, {**shared, **env}, seconds=seconds)
        results = []
        for connections in CONNECTIONS:
            for name, port, script, path, env in scenarios:
                log(f"{name} at {connections} connections for {DURATION}s")
                figures = wrk(port, script, path, connections, {**shared, **env})
                results.append({"scenario": name, "connections": connections, **figures})
        for connections in CONNECTIONS:
            rows = [row for row in results if row["connections"] == connections]
            base_a, base_b, base_c, base_b_stack = (rows[n]["rps"] for n in range(4))
            for row in rows:
                row["vs_baseline_a"] = round(row["rps"] / base_a, 3)
                row["vs_baseline_b"] = round(row["rps"] / base_b, 3)
                row["vs_baseline_c"] = round(row["rps"] / base_c, 3)
                row["vs_baseline_b_stack"] = round(row["rps"] / base_b_stack, 3)
        log("checking that the usage rows equal the requests the server answered")
        checks = usage_check(key)
        # Alone on the machine: the servers and the Celery worker (which would be flushing the load's
        # usage events meanwhile) are stopped first; PostgreSQL and Redis stay.
        stack.stop_processes()
        log("measuring the parts of the hot path in-process")
        micro = json.loads(
            run([PYTHON, "-m", "bench.micro", seed["tenant_id"], str(seed["users"])], env=stack.env)
            .strip()
            .splitlines()[-1]
        )
    finally:
        stack.stop()
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": run(["git", "rev-parse", "--short", "HEAD"], check=False).strip() or "unknown",
        "machine": {
            "cores": CORES,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "duration_seconds": DURATION,
        "warmup_seconds": WARMUP,
        "item_warmup_seconds": ITEM_WARMUP,
        "seed": {k: v for k, v in seed.items() if k not in ("api_key", "jwt")},
        "results": results,
        "usage_check": checks,
        "micro": micro,
    }
    (BENCH / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report)
    log("wrote bench/RESULTS.md and bench/results.json")
    if not all(check["equal"] for check in checks) or any(row["errors"] for row in results):
        sys.exit("usage rows differ from the requests served, or requests failed: see bench/RESULTS.md")


def _stop_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve() -> None:
    """`make bench-serve`: the same stack and tenant, left to a load generator of one's own choice.
    On Ctrl-C or SIGTERM (or after BENCH_SERVE_SECONDS) it compares the usage rows with the requests
    served, as `make bench` does, and stops everything."""
    signal.signal(signal.SIGTERM, _stop_on_term)
    limit = float(os.environ.get("BENCH_SERVE_SECONDS", "0")) or None
    stack = Stack()
    checks: list[dict] = []
    try:
        log(f"starting gunicorn ({CORES} workers), the baselines and a Celery worker on {stack.database}")
        stack.start()
        seed = stack.seed()
        key, jwt = f"Bearer {seed['api_key']}", f"Bearer {seed['jwt']}"
        app, base = f"http://127.0.0.1:{APP_PORT}", f"http://127.0.0.1:{BASE_PORT}"
        guide = {
            "app": app,
            "baselines": {
                "A": f"{base}/baseline/django",
                "B": f"{base}/baseline/drf",
                "C": f"{base}/baseline/drf-redis",
                "B'": f"{app}/api/v1/bench-baseline",
                "D": f"{app}/api/v1/bench-limiter",
            },
            "api_key_authorization": key,
            "jwt_authorization": jwt,
            "items": seed["items"],
            "users": seed["users"],
            "scenarios": {
                "item": f"GET {app}/api/v1/items/item-<0..{seed['items'] - 1}> with the API key",
                "recommendations": f'POST {app}/api/v1/recommendations {{"user_id": "user-<0..'
                f'{seed["users"] - 1}>", "count": 10}} with the API key',
                "interactions": f'POST {app}/api/v1/interactions {{"interactions": [10 x {{"user_id", '
                '"item_id", "type": "view"|"click"|"like"|"add_to_cart"|"purchase"}]} with the API key',
                "item_list": f"GET {app}/api/v1/items?limit=20 with the JWT",
            },
            "wrk_example": f'BENCH_AUTH="{key}" BENCH_ITEMS={seed["items"]} wrk -t4 -c8 -d10s '
            f"-s bench/wrk/item.lua {app}/",
        }
        (BENCH / "out" / "serve.json").write_text(json.dumps(guide, indent=2) + "\n")
        print(json.dumps(guide, indent=2), flush=True)
        log("serving (the above is also in bench/out/serve.json); Ctrl-C checks the usage rows and stops")
        try:
            started = time.monotonic()
            while limit is None or time.monotonic() - started < limit:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C would leave the stack running
        log("checking that the usage rows equal the requests the server answered")
        checks = usage_check(key)
    finally:
        stack.stop()
    for check in checks:
        log(
            f"{check['method']} {check['endpoint']}: served {check['served']}, usage rows "
            f"{check['usage_rows']}, {'equal' if check['equal'] else 'NOT EQUAL'}"
        )
    if not all(check["equal"] for check in checks):
        sys.exit("usage rows differ from the requests served")


def write_markdown(report: dict) -> None:
    notes_path = BENCH / "NOTES.md"
    lines = [
        "# Benchmark results",
        "",
        f"Measured {report['date']} at commit `{report['commit']}` by `make bench`, on "
        f"{report['machine']['cores']} cores and {report['machine']['memory_gib']} GiB "
        f"({report['machine']['platform']}, Python {report['machine']['python']}). gunicorn with "
        f"{report['machine']['cores']} workers and production settings on PostgreSQL and Redis, a Celery "
        f"worker, wrk on loopback for {report['duration_seconds']} s per run; PostgreSQL, Redis and wrk "
        "share the same cores. Before the runs, each scenario is driven unmeasured to warm the workers' "
        f"caches: {report.get('warmup_seconds', '?')} s each, {report.get('item_warmup_seconds', '?')} s "
        "for GET item (its workers keep the items they read, one random read at a time).",
        f"The tenant: {report['seed']['items']} items, {report['seed']['interactions']} interactions.",
        "",
        "Baselines A, B and C run without any middleware (bench/baseline_urls.py). Baseline B' is B's view "
        "served by the application itself under /api/v1/, behind the middleware, throttles and renderers "
        "an API request passes, without authentication; baseline D is B' plus the one Redis round trip of "
        "the application's rate limiter, for a tenant of no limit (bench/app_urls.py: the app runs with "
        "those two routes more, tried first).",
        "",
        "| scenario | conns | req/s | p50 ms | p95 ms | p99 ms | errors | vs A | vs B | vs C | vs B' |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        stack = row.get("vs_baseline_b_stack")
        lines.append(
            f"| {row['scenario']} | {row['connections']} | {row['rps']} | {row['p50_ms']} | "
            f"{row['p95_ms']} | "
            f"{row['p99_ms']} | {row['errors']} | {row['vs_baseline_a']:.0%} | {row['vs_baseline_b']:.0%} | "
            f"{row['vs_baseline_c']:.0%} | {'' if stack is None else format(stack, '.0%')} |"
        )
    lines += [
        "",
        "Usage rows against the requests the server answered (its own Prometheus counters):",
        "",
        "| route | served | usage rows | equal |",
        "|---|---:|---:|---|",
    ]
    for check in report["usage_check"]:
        lines.append(
            f"| {check['method']} {check['endpoint']} | {check['served']} | {check['usage_rows']} | "
            f"{'yes' if check['equal'] else 'NO'} |"
        )
    micro, seed = report["micro"], report["seed"]
    lines += [
        "",
        "Parts of the hot path, measured in-process against the same services:",
        "",
        f"- rate limiter (one Lua call, one Redis round trip): median {micro['limiter_median_us']} µs, "
        f"p95 {micro['limiter_p95_us']} µs; a bare Redis `PING` on the same connection: median "
        f"{micro.get('redis_ping_median_us', '?')} µs",
        f"- recording a usage event (one RPUSH): median {micro['usage_record_median_us']} µs",
        "- built-in engine, whole answer with the history query: median "
        f"{micro['engine_answer_median_ms']} ms; "
        f"scoring alone {micro['engine_scoring_median_ms']} ms",
        f"- one flush moved {micro['flush_events']} usage events into PostgreSQL at "
        f"{micro['flush_events_per_second']} events/s",
        f"- upserting 1,000 items: {seed['upsert_1000_items_seconds']} s; training the engine on "
        f"{seed['interactions']} interactions: {seed['train_seconds']} s",
        "",
    ]
    if notes_path.exists():
        lines += [notes_path.read_text()]
    (BENCH / "RESULTS.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
