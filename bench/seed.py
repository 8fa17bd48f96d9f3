"""Seeds the benchmark tenant: 10,000 items, 100,000 interactions, a trained engine, an API key
and a user's JWT. Prints them as one JSON line. `python -m bench.seed` with the server's environment."""

import json
import os
import sys
import time
from datetime import UTC, datetime


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()

    from accounts.models import User
    from accounts.services import session_start
    from apikeys.services import api_key_create
    from recommendations.models import Interaction, Item
    from recommendations.services import engine_train, items_upsert
    from tenants.services import tenant_create
    from tests.recommendations.synthetic import generate
    from usage.services import rate_limits_set

    items = int(os.environ.get("BENCH_ITEMS", "10000"))
    interactions = int(os.environ.get("BENCH_INTERACTIONS", "100000"))
    tenant, admin = tenant_create(
        name="Benchmark",
        slug=f"bench-{int(time.time())}",
        plan="enterprise",
        admin_user={"email": f"bench-{int(time.time())}@example.com", "password": "Bench-password-123"},
    )
    # High enough never to refuse: the limiter still runs its script on every request.
    rate_limits_set(tenant=tenant, requests_per_minute=10**9, requests_per_hour=10**9, requests_per_day=10**9)
    # Users have 8 to 39 interactions each (23.5 on average): enough users for the count asked, the
    # last one's history cut where the count is reached.
    data = generate(items=items, clusters=100, users=interactions * 10 // 220 + 10, seed=5)
    rows = min(interactions, len(data.users))
    users = int(data.users[rows - 1]) + 1
    catalog = [
        {
            "id": f"item-{n}",
            "title": f"Product {n}",
            "description": f"A product of family {n % 97}",
            "categories": [f"c{n % 20}"],
        }
        for n in range(items)
    ]
    started = time.perf_counter()
    for offset in range(0, items, 1000):
        items_upsert(tenant=tenant, items=catalog[offset : offset + 1000])
    upsert_seconds = (time.perf_counter() - started) / (items / 1000)
    pk_of = dict(Item.objects.filter(tenant=tenant).values_list("external_id", "id"))
    Interaction.objects.bulk_create(
        (
            Interaction(
                tenant=tenant,
                user_id=f"user-{data.users[row]}",
                item_id=pk_of[f"item-{data.item_codes[row]}"],
                type=data.types[row],
                timestamp=datetime.fromtimestamp(min(data.times[row], time.time()), tz=UTC),
            )
            for row in range(rows)
        ),
        batch_size=5000,
    )
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum would do after such a load
        cursor.execute("ANALYZE items; ANALYZE interactions")
    started = time.perf_counter()
    engine_train(tenant_id=str(tenant.id))
    train_seconds = time.perf_counter() - started
    user = User.objects.get(pk=admin.pk)
    _, pair = session_start(user=user, ip="127.0.0.1", user_agent="bench")
    _, secret = api_key_create(tenant=tenant, name="bench", permissions=["read", "write"], created_by=user)
    print(
        json.dumps(
            {
                "tenant_id": str(tenant.id),
                "api_key": secret,
                "jwt": pair.access_token,
                "items": items,
                "users": users,
                "interactions": int(Interaction.objects.filter(tenant=tenant).count()),
                "upsert_1000_items_seconds": round(upsert_seconds, 3),
                "train_seconds": round(train_seconds, 2),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
