"""The collaborative part of the built-in engine, learned from a tenant's interactions.

Two signals make the item-to-item neighbours, both kept sparse (top-K per item):
- co-occurrence: cosine similarity of items over users (what the same people engage with);
- transitions: how often item j comes right after item i in a user's time-ordered history (what
  people do next), which carries the order that co-occurrence throws away.
Popularity is counted with a half-life, so that it is recent popularity."""

import io
from dataclasses import dataclass

import numpy as np
from scipy import sparse

TYPE_WEIGHTS = {"view": 1.0, "click": 2.0, "like": 3.0, "add_to_cart": 4.0, "purchase": 5.0, "rating": 3.0}
NEIGHBOURS_PER_ITEM = 100
POPULARITY_HALF_LIFE_SECONDS = 7 * 86400
TRANSITION_WEIGHT = 1.0
COOCCURRENCE_SHRINKAGE = 3.0


def interaction_weight(kind: str, value: float | None) -> float:
    """How much an interaction says about a taste. A rating says it by its value (1-5 scale)."""
    if kind == "rating" and value is not None:
        return float(max(0.25, min(value, 5.0) - 1.0))
    return TYPE_WEIGHTS.get(kind, 1.0)


@dataclass
class CollaborativeModel:
    item_pks: np.ndarray  # int64: the Item primary key of each row/column
    neighbours: sparse.csr_matrix  # float32, items x items, top-K per row, no diagonal
    popularity: np.ndarray  # float32 in [0, 1]
    interaction_counts: np.ndarray  # int32: interactions per item

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            item_pks=self.item_pks,
            indptr=self.neighbours.indptr,
            indices=self.neighbours.indices,
            data=self.neighbours.data,
            popularity=self.popularity,
            interaction_counts=self.interaction_counts,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CollaborativeModel":
        archive = np.load(io.BytesIO(raw))
        size = len(archive["item_pks"])
        neighbours = sparse.csr_matrix(
            (archive["data"], archive["indices"], archive["indptr"]), shape=(size, size), dtype=np.float32
        )
        return cls(archive["item_pks"], neighbours, archive["popularity"], archive["interaction_counts"])


def _top_k_rows(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    matrix = matrix.tocsr()
    matrix.sort_indices()
    indptr, indices, data = [0], [], []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        row_indices, row_data = matrix.indices[start:end], matrix.data[start:end]
        if end - start > k:
            keep = np.argpartition(-row_data, k)[:k]
            row_indices, row_data = row_indices[keep], row_data[keep]
        indices.append(row_indices)
        data.append(row_data)
        indptr.append(indptr[-1] + len(row_indices))
    return sparse.csr_matrix(
        (
            np.concatenate(data).astype(np.float32) if data else np.zeros(0, np.float32),
            np.concatenate(indices) if indices else np.zeros(0, np.int32),
            np.asarray(indptr),
        ),
        shape=matrix.shape,
    )


def model_train(
    *,
    item_pks: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    times: np.ndarray,
) -> CollaborativeModel:
    """`users` and `items` are integer codes (items index `item_pks`), one entry per interaction."""
    size = len(item_pks)
    if len(items) == 0:
        return CollaborativeModel(
            item_pks,
            sparse.csr_matrix((size, size), dtype=np.float32),
            np.zeros(size, np.float32),
            np.zeros(size, np.int32),
        )
    newest = float(times.max())
    decay = np.power(0.5, (newest - times) / POPULARITY_HALF_LIFE_SECONDS)
    popularity = np.bincount(items, weights=weights * decay, minlength=size).astype(np.float32)
    if popularity.max() > 0:
        popularity /= popularity.max()
    counts = np.bincount(items, minlength=size).astype(np.int32)

    user_count = int(users.max()) + 1
    engagement = sparse.csr_matrix((weights, (users, items)), shape=(user_count, size), dtype=np.float32)
    engagement.data = np.log1p(engagement.data)
    norms = np.sqrt(np.asarray(engagement.multiply(engagement).sum(axis=0)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    normalised = engagement @ sparse.diags(scale.astype(np.float32))
    cosine = (normalised.T @ normalised).tocsr()
    # Shrink similarities resting on few shared users: n / (n + λ).
    seen = engagement.copy()
    seen.data[:] = 1.0
    together = (seen.T @ seen).tocsr()
    shrink = together.copy()
    shrink.data = shrink.data / (shrink.data + COOCCURRENCE_SHRINKAGE)
    cosine = cosine.multiply(shrink).tocsr()

    order = np.lexsort((times, users))
    ordered_users, ordered_items = users[order], items[order]
    follows = (ordered_users[1:] == ordered_users[:-1]) & (ordered_items[1:] != ordered_items[:-1])
    transitions = sparse.csr_matrix(
        (np.ones(int(follows.sum()), np.float32), (ordered_items[:-1][follows], ordered_items[1:][follows])),
        shape=(size, size),
    )
    row_sums = np.asarray(transitions.sum(axis=1)).ravel()
    transitions = (
        sparse.diags(np.divide(1.0, row_sums, out=np.zeros_like(row_sums), where=row_sums > 0)) @ transitions
    )

    combined = (cosine + TRANSITION_WEIGHT * transitions).tocsr()
    combined.setdiag(0)
    combined.eliminate_zeros()
    return CollaborativeModel(item_pks, _top_k_rows(combined, NEIGHBOURS_PER_ITEM), popularity, counts)
