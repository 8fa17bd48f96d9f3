"""The built-in engine: a per-process memory index of each tenant's catalog and model, and the scoring.

The index is rebuilt only when the tenant's versions change (an item written, a model trained);
recommending reads the user's recent history (one query) and scores with numpy, never retraining."""

import math
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import cache as memoized

import numpy as np
from django.core.cache import cache
from django.db import connection
from django.db.models import F
from scipy import sparse

from config.transactions import now_and_after_commit
from recommendations import vectors
from recommendations.models import EngineState, Interaction, Item
from recommendations.training import CollaborativeModel, interaction_weight
from tenants.models import Tenant
from usage.ratelimit import Marks, mark_stands, tenant_marks_renew

HISTORY_LENGTH = 200
# Weight of an interaction relative to the one after it: tastes drift, the last few count most.
RECENCY_DECAY = 0.5
WARM_INTERACTIONS = 3  # below this an item leans on its content vector
CONTENT_WEIGHT_COLD = 0.25
CONTENT_WEIGHT_WARM = 0.0
# How far below an engine's zero or negative lowest score each filled item comes, rank after rank.
FILL_STEP = 0.01
# Personal scores are multiplied by (floor + popularity) ** exponent: among the items that fit a
# taste, the ones many people pick are the likelier next pick.
POPULARITY_FLOOR = 0.05
POPULARITY_EXPONENT = 0.5
MAX_INDEXED_TENANTS = 256
# Changes drop the cached version at once; the TTL only bounds a drop lost to a cache outage.
VERSION_TTL_SECONDS = 60


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float
    title: str


@dataclass(frozen=True)
class Answer:
    items: list[Scored]
    strategy: str


@dataclass(frozen=True)
class Query:
    user_id: str
    count: int = 10
    categories: tuple[str, ...] = ()
    exclude_item_ids: tuple[str, ...] = ()
    exclude_seen: bool = True


@dataclass(frozen=True)
class Derived:
    """What scoring needs of a model, computed when the index is built rather than on every request."""

    popularity_boost: np.ndarray
    popular_first: np.ndarray
    # The items whose content vector counts (a zero weight skips the item's row of the product).
    content_rows: np.ndarray
    content_weights: np.ndarray
    content_matrix: np.ndarray


@dataclass
class TenantIndex:
    version: tuple[int, int]
    pks: np.ndarray
    external_ids: list[str]
    titles: list[str]
    categories: list[tuple[str, ...]]
    active: np.ndarray
    newest_first: np.ndarray
    content: np.ndarray
    neighbours: sparse.csr_matrix
    popularity: np.ndarray
    warm: np.ndarray
    position_of_pk: dict[int, int]
    position_of_id: dict[str, int]
    derived: Derived
    _category_masks: dict[str, np.ndarray] = field(default_factory=dict)
    # The tenant's change marks this index was last confirmed under, and when (monotonic seconds).
    marks: Marks | None = None
    marked_at: float = 0.0

    @property
    def size(self) -> int:
        return len(self.pks)

    def category_mask(self, wanted: tuple[str, ...]) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        for category in wanted:
            if category not in self._category_masks:
                self._category_masks[category] = np.fromiter(
                    (category in own for own in self.categories), dtype=bool, count=self.size
                )
            mask |= self._category_masks[category]
        return mask


def version_key(tenant_id: str) -> str:
    return f"engine-version:{tenant_id}"


def engine_version(tenant_id: str, *, fresh: bool = False) -> tuple[int, int]:
    """(catalog version, model version) from the shared cache, else from the database. `fresh`: from
    the database, and not cached (read while a change may be uncommitted, it could be the old one)."""
    version = None if fresh else cache.get(version_key(tenant_id))
    if version is None:
        state = (
            EngineState.objects.filter(tenant_id=tenant_id)
            .values_list("catalog_version", "model_version")
            .first()
        )
        version = tuple(state) if state else (0, 0)
        if not fresh:
            cache.set(version_key(tenant_id), version, VERSION_TTL_SECONDS)
    return version


def catalog_changed(tenant_id: str) -> None:
    """Within the writing transaction: every process rebuilds this tenant's index on its next request.
    The cached version is dropped now and again after commit, so that no process can cache the old
    version in between."""
    _, created = EngineState.objects.get_or_create(tenant_id=tenant_id, defaults={"catalog_version": 1})
    if not created:
        EngineState.objects.filter(tenant_id=tenant_id).update(catalog_version=F("catalog_version") + 1)
    now_and_after_commit(lambda: cache.delete(version_key(tenant_id)))
    tenant_marks_renew(tenant_id, catalog=True)


def _catalog(tenant_id: str, version: tuple[int, int]) -> TenantIndex:
    """The catalog part of the index, without a model (neighbours, popularity) yet."""
    rows = list(
        Item.objects.filter(tenant_id=tenant_id)
        .order_by("id")
        .values_list("id", "external_id", "title", "categories", "is_active", "created_at", "content_vector")
    )
    size = len(rows)
    content = np.zeros((size, vectors.DIMENSION), dtype=np.float32)
    for position, row in enumerate(rows):
        content[position] = vectors.from_bytes(row[6])
    created = np.array([row[5].timestamp() for row in rows], dtype=np.float64)
    return TenantIndex(
        version=version,
        pks=np.fromiter((row[0] for row in rows), dtype=np.int64, count=size),
        external_ids=[row[1] for row in rows],
        titles=[row[2] for row in rows],
        categories=[tuple(row[3] or ()) for row in rows],
        active=np.fromiter((row[4] for row in rows), dtype=bool, count=size),
        newest_first=np.argsort(-created, kind="stable"),
        content=content,
        neighbours=sparse.csr_matrix((size, size), dtype=np.float32),
        popularity=np.zeros(size, dtype=np.float32),
        warm=np.zeros(size, dtype=bool),
        position_of_pk={row[0]: position for position, row in enumerate(rows)},
        position_of_id={row[1]: position for position, row in enumerate(rows)},
        derived=_derived(content, np.zeros(size, dtype=np.float32), np.zeros(size, dtype=bool)),
    )


def _derived(content: np.ndarray, popularity: np.ndarray, warm: np.ndarray) -> Derived:
    popular = np.flatnonzero(popularity > 0)
    weights = np.where(warm, CONTENT_WEIGHT_WARM, CONTENT_WEIGHT_COLD)
    rows = np.flatnonzero(weights > 0)
    return Derived(
        popularity_boost=np.power(POPULARITY_FLOOR + popularity, POPULARITY_EXPONENT).astype(np.float32),
        popular_first=popular[np.argsort(-popularity[popular], kind="stable")],
        content_rows=rows,
        content_weights=weights[rows],
        # Without a model every row counts: the catalog's own matrix, not a copy of it.
        content_matrix=content if len(rows) == len(content) else content[rows],
    )


def _with_model(index: TenantIndex, tenant_id: str, version: tuple[int, int]) -> TenantIndex:
    """The index with the tenant's current model mapped onto its catalog."""
    size = index.size
    neighbours = sparse.csr_matrix((size, size), dtype=np.float32)
    popularity = np.zeros(size, dtype=np.float32)
    counts = np.zeros(size, dtype=np.int32)
    raw_model = EngineState.objects.filter(tenant_id=tenant_id).values_list("model", flat=True).first()
    if raw_model and size:
        model = CollaborativeModel.from_bytes(bytes(raw_model))
        # Model rows are the items at training time: map them onto today's catalog.
        where = np.minimum(np.searchsorted(index.pks, model.item_pks), size - 1)
        known = index.pks[where] == model.item_pks
        mapping = np.where(known, where, -1)
        coo = model.neighbours.tocoo()
        keep = (mapping[coo.row] >= 0) & (mapping[coo.col] >= 0)
        neighbours = sparse.csr_matrix(
            (coo.data[keep], (mapping[coo.row[keep]], mapping[coo.col[keep]])),
            shape=(size, size),
            dtype=np.float32,
        )
        popularity[mapping[known]] = model.popularity[known]
        counts[mapping[known]] = model.interaction_counts[known]
    warm = counts >= WARM_INTERACTIONS
    return replace(
        index,
        version=version,
        neighbours=neighbours,
        popularity=popularity,
        warm=warm,
        derived=_derived(index.content, popularity, warm),
        _category_masks=index._category_masks,
        marks=None,
    )


def index_build(tenant_id: str, version: tuple[int, int], previous: TenantIndex | None = None) -> TenantIndex:
    """A new index; when only the model changed, the catalog part of `previous` is kept."""
    if previous is not None and previous.version[0] == version[0]:
        return _with_model(previous, tenant_id, version)
    return _with_model(_catalog(tenant_id, version), tenant_id, version)


_indexes: OrderedDict[str, TenantIndex] = OrderedDict()
_indexes_lock = threading.Lock()
_build_locks: dict[str, threading.Lock] = {}


def index_for(tenant_id: str, marks: Marks | None = None) -> TenantIndex:
    """The tenant's index, rebuilt when its versions changed. Given the tenant's change marks (read in
    the request's rate-limit round trip), an index confirmed under the same marks is current as it is."""
    with _indexes_lock:
        index = _indexes.get(tenant_id)
        if marks is not None and index is not None and mark_stands(index.marks, index.marked_at, marks):
            _indexes.move_to_end(tenant_id)
            return index
    # With marks that changed, the shared cache may still hold the old version for a moment: the
    # database does not.
    version = engine_version(tenant_id, fresh=marks is not None)
    with _indexes_lock:
        index = _indexes.get(tenant_id)
        if index is not None and index.version == version:
            _indexes.move_to_end(tenant_id)
            return _confirmed(index, marks)
        build_lock = _build_locks.setdefault(tenant_id, threading.Lock())
    # One thread of the process builds; the others wait for its result instead of building too.
    with build_lock:
        with _indexes_lock:
            index = _indexes.get(tenant_id)
        if index is not None and index.version == version:
            return _confirmed(index, marks)
        index = index_build(tenant_id, version, previous=index)
        with _indexes_lock:
            _indexes[tenant_id] = index
            _indexes.move_to_end(tenant_id)
            while len(_indexes) > MAX_INDEXED_TENANTS:
                evicted, _ = _indexes.popitem(last=False)
                _build_locks.pop(evicted, None)
    return _confirmed(index, marks)


def _confirmed(index: TenantIndex, marks: Marks | None) -> TenantIndex:
    """Records that the index is current under these marks: they were read before its versions were."""
    if marks is not None:
        index.marks, index.marked_at = marks, time.monotonic()
    return index


@memoized
def _history_sql() -> str:
    quote = connection.ops.quote_name
    # Names are the model's; the values are parameters. The (tenant, user, -timestamp) index serves it.
    return (
        f"SELECT {quote('item_id')}, {quote('type')}, {quote('value')} "  # nosec B608
        f"FROM {quote(Interaction._meta.db_table)} WHERE {quote('tenant_id')} = %s "
        f"AND {quote('user_id')} = %s ORDER BY {quote('timestamp')} DESC LIMIT {HISTORY_LENGTH}"
    )


def user_history(tenant_id: str, user_id: str) -> list[tuple[int, str, float | None]]:
    """The user's most recent interactions, newest first: (item pk, type, value). One query written
    out rather than compiled by the ORM on every recommendation."""
    with connection.cursor() as cursor:
        cursor.execute(_history_sql(), [Tenant.id_for_sql(tenant_id), user_id])
        return cursor.fetchall()


def seen_mask(index: TenantIndex, tenant_id: str, user_id: str, history: list[tuple]) -> np.ndarray:
    """Every item the user ever interacted with. The recent history usually holds them all; only
    when it was cut at HISTORY_LENGTH is the whole set asked for (a second, indexed query)."""
    seen = np.zeros(index.size, dtype=bool)
    pks = {row[0] for row in history}
    if len(history) >= HISTORY_LENGTH:
        pks = set(
            Interaction.objects.filter(tenant_id=tenant_id, user_id=user_id)
            .values_list("item_id", flat=True)
            .distinct()
        )
    for pk in pks:
        position = index.position_of_pk.get(pk)
        if position is not None:
            seen[position] = True
    return seen


def _profile(index: TenantIndex, history: list[tuple]) -> np.ndarray:
    """Weights of the items in the user's history: by interaction type, and by recency (rank)."""
    weights = np.zeros(index.size, dtype=np.float32)
    for rank, (pk, kind, value) in enumerate(history):
        position = index.position_of_pk.get(pk)
        if position is not None:
            weights[position] += interaction_weight(kind, value) * RECENCY_DECAY**rank
    return weights


def eligible_mask(index: TenantIndex, query: Query, seen: np.ndarray | None) -> np.ndarray:
    mask = index.active.copy()
    if query.categories:
        mask &= index.category_mask(query.categories)
    for item_id in query.exclude_item_ids:
        position = index.position_of_id.get(item_id)
        if position is not None:
            mask[position] = False
    if query.exclude_seen and seen is not None:
        mask &= ~seen
    return mask


def _rows_weighted_sum(matrix: sparse.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`matrix[rows].T @ weights`, read straight from the CSR arrays: scipy's row selection builds a
    new matrix first, which cost four times as much for a user's few dozen rows."""
    starts, lengths = matrix.indptr[rows], np.diff(matrix.indptr)[rows]
    # Positions of every stored entry of the chosen rows, row after row.
    entries = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    return np.bincount(
        matrix.indices[entries],
        weights=matrix.data[entries] * np.repeat(weights, lengths),
        minlength=matrix.shape[1],
    ).astype(np.float32)


def _personal_scores(index: TenantIndex, profile: np.ndarray) -> np.ndarray:
    touched = np.flatnonzero(profile)
    if len(touched) == 0:
        return np.zeros(index.size, dtype=np.float32)
    if index.neighbours.nnz:
        collaborative = _rows_weighted_sum(index.neighbours, touched, profile[touched])
    else:
        collaborative = np.zeros(index.size, dtype=np.float32)
    top = collaborative.max()
    if top > 0:
        collaborative = collaborative / top
    taste = profile[touched] @ index.content[touched]
    norm = float(np.linalg.norm(taste))
    derived = index.derived
    scores = collaborative.astype(np.float64)
    if norm > 0 and len(derived.content_rows):
        similarity = derived.content_matrix @ (taste / norm)
        scores[derived.content_rows] += np.clip(similarity, 0, None) * derived.content_weights
    return scores * derived.popularity_boost


def _take(order: np.ndarray, mask: np.ndarray, limit: int) -> list[int]:
    chosen = order[mask[order]][:limit]
    return [int(position) for position in chosen]


def rank_fill(
    index: TenantIndex, mask: np.ndarray, chosen: list[int], count: int
) -> tuple[list[int], list[str]]:
    """Fills up to `count` with popular, then newest eligible items; says which it used."""
    used = []
    remaining = mask.copy()
    remaining[chosen] = False
    if len(chosen) < count:
        popular = _take(index.derived.popular_first, remaining, count - len(chosen))
        if popular:
            chosen += popular
            remaining[popular] = False
            used.append("popular")
    if len(chosen) < count:
        newest = _take(index.newest_first, remaining, count - len(chosen))
        if newest:
            chosen += newest
            used.append("newest")
    return chosen, used


def _scored(index: TenantIndex, positions: list[int], scores: dict[int, float]) -> list[Scored]:
    return [
        Scored(
            # Significant digits, not decimals: an engine's tiny scores must not all round to 0.
            item_id=index.external_ids[p],
            score=float(f"{float(scores.get(p, 0.0)):.9g}"),
            title=index.titles[p],
        )
        for p in positions
    ]


def _fill_scores(index: TenantIndex, positions: list[int], below: float | None) -> dict[int, float]:
    """Scores for filled items that stay below the engine's own (`below`, its lowest; None when it
    gave none), falling with their rank, so that higher is still better down the whole list."""
    if below is not None and below <= 0:
        # Under an engine's zero or negative scores (the ML engine's are any real numbers).
        step = max(FILL_STEP, abs(below) * 1e-6)  # still a step where 0.01 would be lost in rounding
        # Never past the lowest finite number: an infinite score is not JSON.
        return {p: max(below - step * (rank + 1), -sys.float_info.max) for rank, p in enumerate(positions)}
    ceiling = below * 0.5 if below is not None else 0.01
    return {
        p: ceiling * (0.5 + 0.5 * float(index.popularity[p])) / (rank + 1) for rank, p in enumerate(positions)
    }


def builtin_recommend(tenant_id: str, query: Query, marks: Marks | None = None) -> Answer:
    index = index_for(tenant_id, marks)
    history = user_history(tenant_id, query.user_id)
    profile = _profile(index, history)
    seen = seen_mask(index, tenant_id, query.user_id, history) if query.exclude_seen else None
    mask = eligible_mask(index, query, seen)
    scores = _personal_scores(index, profile)
    candidates = np.flatnonzero(mask & (scores > 0))
    if len(candidates) > query.count:
        top = np.argpartition(-scores[candidates], query.count - 1)[: query.count]
        candidates = candidates[top]
    own = {int(position): float(scores[position]) for position in candidates}
    return ranked_answer(index, mask, own, query.count, "personalized" if own else None)


def ranked_answer(
    index: TenantIndex, mask: np.ndarray, own: dict[int, float], count: int, label: str | None
) -> Answer:
    """An engine's own scores, best first, filled up to `count` with popular then newest items; the
    strategy names the engine (`label`) and every filler used."""
    chosen = sorted(own, key=lambda position: -own[position])
    chosen, used = rank_fill(index, mask, chosen, count)
    lowest = min(own.values()) if own else None
    filled = _fill_scores(index, [p for p in chosen if p not in own], lowest)
    strategy = "+".join(([label] if label else []) + used) or "none"
    return Answer(_scored(index, chosen, {**own, **filled}), strategy)


def builtin_similar(
    tenant_id: str, item_id: str, count: int, marks: Marks | None = None
) -> list[Scored] | None:
    """Nearest neighbours of an item: learned neighbours when it has them, its content otherwise."""
    index = index_for(tenant_id, marks)
    position = index.position_of_id.get(item_id)
    if position is None:
        return None
    content = np.clip(index.content @ index.content[position], 0, None)
    collaborative = (
        index.neighbours[position].toarray().ravel() if index.neighbours.nnz else np.zeros(index.size)
    )
    top = collaborative.max()
    if top > 0:
        collaborative = collaborative / top
    weight = CONTENT_WEIGHT_WARM if index.warm[position] and top > 0 else 1.0
    scores = collaborative + weight * content
    mask = index.active.copy()
    mask[position] = False
    candidates = np.flatnonzero(mask & (scores > 0))
    candidates = candidates[np.argsort(-scores[candidates], kind="stable")][:count]
    return _scored(index, [int(p) for p in candidates], {int(p): float(scores[p]) for p in candidates})


def is_finite_number(value: object) -> bool:
    """A JSON number that is a finite float: not a bool, not an integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
