"""Profiles a hot route in-process: the whole Django stack (middleware, DRF, authentication, the
limiter's and the usage event's Redis calls, the query) without gunicorn or the network in front.

With the environment of a stack that `python -m bench.seed` seeded (its JSON line saved to a file):

    python -m bench.profile seed.json item 2000
    python -m bench.profile seed.json recommend 1000

prints the wall and CPU time per request, then pyinstrument's call tree of the same requests.
"""

import json
import os
import sys
import time
from collections.abc import Callable


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.test import Client
    from pyinstrument import Profiler

    seed = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
    route = sys.argv[2] if len(sys.argv) > 2 else "item"
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {seed['api_key']}")
    routes: dict[str, Callable[[int], object]] = {
        "item": lambda n: client.get(f"/api/v1/items/item-{n % seed['items']}"),
        "recommend": lambda n: client.post(
            "/api/v1/recommendations",
            {"user_id": f"user-{n % seed['users']}", "count": 10},
            content_type="application/json",
        ),
    }
    call = routes[route]

    def run() -> None:
        for n in range(count):
            response = call(n)
            assert response.status_code == 200, response.content  # type: ignore[attr-defined]

    run()  # warm: keys remembered, engine index built, connections open
    started, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{route}: {wall / count * 1000:.3f} ms wall, {cpu / count * 1000:.3f} ms CPU per request")
    profiler = Profiler(interval=0.0005)
    with profiler:
        run()
    print(profiler.output_text(unicode=True, color=False))


if __name__ == "__main__":
    main()
