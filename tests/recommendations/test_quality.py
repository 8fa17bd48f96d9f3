"""Recommendation quality on a synthetic tenant with hidden, drifting tastes (tests/.../synthetic.py):
each user's last interaction is held out, and the built-in engine must find it in its top 10 at
least twice as often as the popularity baseline (the most popular items the user has not seen)."""

from datetime import UTC, datetime

import numpy as np

from recommendations import engine
from recommendations.models import Interaction, Item
from recommendations.services import engine_train
from recommendations.vectors import content_vector, to_bytes
from tests.recommendations.synthetic import generate, leave_last_out


def test_the_builtin_engine_beats_popularity_by_at_least_twice(world, capsys):
    data = generate()
    train, test = leave_last_out(data)
    rng = np.random.default_rng(3)
    items = Item.objects.bulk_create(
        Item(
            tenant=world.tenant,
            external_id=f"i{n}",
            title=(title := f"Product {rng.integers(0, 10_000)}"),
            content_vector=to_bytes(
                content_vector(title=title, description="", categories=[], embedding=None)
            ),
        )
        for n in range(data.items)
    )
    pk_of = [item.pk for item in items]
    Interaction.objects.bulk_create(
        (
            Interaction(
                tenant=world.tenant,
                user_id=f"u{data.users[row]}",
                item_id=pk_of[data.item_codes[row]],
                type=data.types[row],
                timestamp=datetime.fromtimestamp(data.times[row], tz=UTC),
            )
            for row in np.flatnonzero(train)
        ),
        batch_size=5000,
    )
    engine_train(tenant_id=str(world.tenant.id))

    popularity = np.bincount(data.item_codes[train], minlength=data.items)
    by_popularity = np.argsort(-popularity, kind="stable")
    engine_hits = baseline_hits = 0
    users = np.unique(data.users)
    for user in users:
        target = f"i{data.item_codes[(data.users == user) & test][0]}"
        answer = engine.builtin_recommend(str(world.tenant.id), engine.Query(user_id=f"u{user}", count=10))
        engine_hits += target in {scored.item_id for scored in answer.items}
        seen = set(data.item_codes[(data.users == user) & train])
        baseline = [f"i{code}" for code in by_popularity if code not in seen][:10]
        baseline_hits += target in baseline
    engine_rate, baseline_rate = engine_hits / len(users), baseline_hits / len(users)
    with capsys.disabled():
        print(f"\nHR@10 built-in engine {engine_rate:.3f}, popularity baseline {baseline_rate:.3f}")
    assert baseline_rate > 0.02  # the baseline is a real one, not a straw man
    assert engine_rate >= 2 * baseline_rate
