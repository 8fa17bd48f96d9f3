"""One process of the multi-process burst test: `python -m tests.usage.burst URL TENANT ATTEMPTS`.
It connects, waits for a line on stdin (the start signal), takes ATTEMPTS requests' worth of tokens
from the tenant's buckets (limits 50/50/50) and prints how many were allowed."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    from usage.limits import Limits
    from usage.ratelimit import RedisLimiter

    url, tenant_id, attempts = sys.argv[1], sys.argv[2], int(sys.argv[3])
    limiter = RedisLimiter(url, timeout=2.0)
    limiter.client.ping()
    limits = Limits(requests_per_minute=50, requests_per_hour=50, requests_per_day=50)
    print("ready", flush=True)
    sys.stdin.readline()
    print(sum(limiter.take(tenant_id, limits).allowed for _ in range(attempts)), flush=True)


if __name__ == "__main__":
    main()
