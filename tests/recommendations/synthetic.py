"""A synthetic tenant with hidden tastes, for measuring recommendation quality.

Items fall in clusters; each user has a current cluster, mostly interacts within it (popular items of
the cluster more often), sometimes strays to globally popular items, and now and then moves on to
another cluster: tastes drift, so what a user did last says more than what they did first. Item
titles and categories say nothing about the clusters: the engine has to learn them from behaviour."""

from dataclasses import dataclass

import numpy as np


@dataclass
class Dataset:
    items: int
    users: np.ndarray  # per interaction, time-ordered within each user
    item_codes: np.ndarray
    types: list[str]
    times: np.ndarray


def generate(*, items: int = 2000, clusters: int = 40, users: int = 1500, seed: int = 7) -> Dataset:
    rng = np.random.default_rng(seed)
    cluster_of = rng.integers(0, clusters, size=items)
    members = [np.flatnonzero(cluster_of == c) for c in range(clusters)]
    appeal = rng.zipf(1.6, size=items).astype(float)  # some items are far more popular than others
    global_p = appeal / appeal.sum()
    cluster_p = [appeal[m] / appeal[m].sum() for m in members]
    cluster_size = np.array([len(m) for m in members], dtype=float)
    start = 1_750_000_000.0
    user_rows, item_rows, type_rows, time_rows = [], [], [], []
    for user in range(users):
        current = rng.choice(clusters, p=cluster_size / cluster_size.sum())
        moment = start + rng.uniform(0, 60 * 86400)
        for _ in range(int(rng.integers(8, 40))):
            if rng.random() < 0.08:
                current = rng.integers(0, clusters)  # the taste drifts
            if rng.random() < 0.8:
                item = int(rng.choice(members[current], p=cluster_p[current]))
            else:
                item = int(rng.choice(items, p=global_p))
            user_rows.append(user)
            item_rows.append(item)
            type_rows.append(rng.choice(["view", "view", "view", "click", "like", "add_to_cart", "purchase"]))
            moment += rng.exponential(2 * 86400)
            time_rows.append(moment)
    return Dataset(items, np.array(user_rows), np.array(item_rows), type_rows, np.array(time_rows))


def leave_last_out(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test): each user's last interaction is the test."""
    last = np.zeros(len(data.users), dtype=bool)
    last[:-1] = data.users[1:] != data.users[:-1]
    last[-1] = True
    return ~last, last
