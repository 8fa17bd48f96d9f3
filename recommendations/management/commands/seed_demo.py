import argparse
import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.models import User
from apikeys.services import api_key_create
from recommendations.services import engine_train, interactions_record, items_upsert
from tenants.models import Tenant
from tenants.services import tenant_create

CATALOG = {
    "running": ["Trail shoe", "Road shoe", "Running socks", "Hydration vest", "Running cap", "Split shorts"],
    "cycling": ["Road helmet", "Bike lights", "Cycling gloves", "Saddle bag", "Bib shorts", "Chain oil"],
    "hiking": ["Hiking boots", "Trekking poles", "Daypack", "Rain shell", "Map case", "Wool socks"],
    "camping": ["Two-person tent", "Sleeping bag", "Camp stove", "Headlamp", "Water filter", "Camp chair"],
    "climbing": ["Climbing shoes", "Chalk bag", "Harness", "Belay device", "Rope 60 m", "Quickdraws"],
    "swimming": ["Goggles", "Swim cap", "Jammer", "Pull buoy", "Kickboard", "Fins"],
}
DEMO_ADMIN = "demo-admin@example.com"
# Demo data.
DEMO_PASSWORD = "demo-password-change-me"  # nosec B105


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class Command(BaseCommand):
    help = "Creates a demo tenant with a catalog, interactions and an API key (printed), ready to recommend."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--users", type=_positive, default=200, help="end users with interactions (default 200)"
        )
        parser.add_argument("--seed", type=int, default=42, help="random seed of the data (default 42)")
        parser.add_argument(
            "--port", type=_positive, default=8000, help="the port of the example (default 8000)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            # Its admin's password is published here: never on a server that others can reach.
            raise CommandError("seed_demo is for local development: it runs with DEBUG on only.")
        # Demo data, not security.
        rng = random.Random(options["seed"])  # nosec B311
        tenant = Tenant.objects.filter(slug="demo").first()
        if tenant is None:
            tenant, _ = tenant_create(
                name="Demo Outdoor Shop",
                slug="demo",
                plan=Tenant.Plan.PRO,
                admin_user={"email": DEMO_ADMIN, "password": DEMO_PASSWORD},
            )
        items: list[dict] = []
        for category, names in CATALOG.items():
            for name in names:
                for variant in range(1, 6):
                    items.append(
                        {
                            "id": f"{category}-{name.lower().replace(' ', '-')}-{variant}",
                            "title": f"{name} {variant}",
                            "description": f"{name} for {category}, model {variant}.",
                            "categories": [category],
                            "metadata": {"price_cents": rng.randint(5, 300) * 100},
                        }
                    )
        items_upsert(tenant=tenant, items=items)
        by_category = {
            category: [item["id"] for item in items if item["categories"] == [category]]
            for category in CATALOG
        }
        start = timezone.now() - timedelta(days=30)
        interactions = []
        for user in range(options["users"]):
            taste = rng.choice(list(CATALOG))
            moment = start + timedelta(hours=rng.randint(0, 240))
            for _ in range(rng.randint(5, 25)):
                if rng.random() < 0.1:
                    taste = rng.choice(list(CATALOG))
                pool = by_category[taste] if rng.random() < 0.85 else [item["id"] for item in items]
                weights = [1 / (rank + 1) for rank in range(len(pool))]
                interactions.append(
                    {
                        "user_id": f"user-{user}",
                        "item_id": rng.choices(pool, weights)[0],
                        "type": rng.choice(["view", "view", "click", "like", "add_to_cart", "purchase"]),
                        "timestamp": moment,
                    }
                )
                moment += timedelta(hours=rng.randint(1, 30))
        for offset in range(0, len(interactions), 1000):
            interactions_record(tenant=tenant, interactions=interactions[offset : offset + 1000])
        engine_train(tenant_id=str(tenant.id))
        admin = User.objects.filter(tenant=tenant, role=User.Role.ADMIN).first()
        _, secret = api_key_create(
            tenant=tenant, name="demo", permissions=["read", "write"], created_by=admin
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo tenant '{tenant.slug}': {len(items)} items, {len(interactions)} interactions, "
                "engine trained.\n"
                f"Tenant admin: {DEMO_ADMIN} / {DEMO_PASSWORD}\n"
                f"API key (shown once): {secret}\n\n"
                "Try:\n"
                f"  curl -s http://127.0.0.1:{options['port']}/api/v1/recommendations \\\n"
                f"    -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' \\\n"
                '    -d \'{"user_id": "user-1", "count": 5}\''
            )
        )
