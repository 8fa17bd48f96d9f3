"""Everything that writes the catalog and interactions, trains the engine, and answers with it."""

import heapq
import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from functools import cache as memoized
from typing import Any, NamedTuple

import numpy as np
from celery import Task
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Collate
from django.utils import timezone
from prometheus_client import Counter
from rest_framework import exceptions

from config.exceptions import UpstreamUnavailable
from recommendations import engine, tasks, vectors
from recommendations.engine import Answer, Query, Scored
from recommendations.models import EngineState, Interaction, Item
from recommendations.remote import CircuitOpen, UpstreamError, UpstreamRejected, service_client
from recommendations.training import interaction_weight, model_train
from tenants.models import Tenant
from usage.ratelimit import Marks, mark_stands, tenant_marks_renew

logger = logging.getLogger(__name__)

follow_ups_failed_total = Counter(
    "write_follow_ups_failed_total",
    "Follow-ups of committed writes (pipeline copy, embeddings, training) that could not be queued.",
    ["task"],
)

# An engine answer longer than this is read no further (a hostile or broken engine costs us little).
MAX_REMOTE_ANSWERS = 1000
ITEM_FIELDS = ("title", "description", "categories", "metadata", "embedding", "is_active")


class ItemRow(NamedTuple):
    """The columns of an item that API.md shows, read without building a model instance."""

    external_id: str
    title: str
    description: str
    categories: list[str]
    metadata: dict
    embedding: list[float] | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


@memoized
def _item_read_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in ItemRow._fields)  # the fields are named as the columns
    # Table and column names are the model's; the values are parameters.
    return (
        f"SELECT {columns} FROM {quote(Item._meta.db_table)} "  # nosec B608
        f"WHERE {quote('tenant_id')} = %s AND {quote('external_id')} = %s"
    )


def _json(value: Any) -> Any:
    """JSON as the backends hand it over raw: text (Django's PostgreSQL set-up, SQLite), or parsed."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _moment(value: datetime | str) -> datetime:
    """SQLite hands datetimes over as naive UTC (text, or datetimes through Django's converters)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _KeptItems:
    """The items this process read lately, as their columns' raw values, each under the tenant's catalog
    mark it was read under and when. Bounded by the size of those values (ITEM_CACHE_MB), so that a
    catalog of large embeddings cannot fill the memory; the least recently read go first."""

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple[str, str], tuple[str, float, tuple, int]] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str], mark: str) -> tuple | None:
        with self.lock:
            kept = self.entries.get(key)
            if kept is None or not mark_stands(kept[0], kept[1], mark):
                return None
            self.entries.move_to_end(key)
            return kept[2]

    def put(self, key: tuple[str, str], mark: str, raw: tuple) -> None:
        budget = settings.ITEM_CACHE_MB * 2**20
        # The values' own sizes (a non-ASCII text takes up to 4 bytes a character), and about what
        # the entry, its key and the dictionary's slot take.
        size = 400 + sum(sys.getsizeof(value) for value in raw)
        if size > budget / 4:
            return
        with self.lock:
            previous = self.entries.pop(key, None)
            if previous is not None:
                self.size -= previous[3]
            self.entries[key] = (mark, time.monotonic(), raw, size)
            self.size += size
            while self.size > budget:
                self.size -= self.entries.popitem(last=False)[1][3]


_items_kept = _KeptItems()


def item_read(*, tenant_id: str, item_id: str, catalog_mark: str | None = None) -> ItemRow | None:
    """One item of the tenant by its own id. Given the tenant's current catalog mark, from this
    process's memory if it read the item under the same mark; else in one query."""
    key = (str(tenant_id), item_id)
    raw = _items_kept.get(key, catalog_mark) if catalog_mark is not None else None
    if raw is None:
        raw = _item_select(tenant_id, item_id)
        if raw is None:
            return None
        if catalog_mark is not None:
            _items_kept.put(key, catalog_mark, raw)
    external_id, title, description, categories, metadata, embedding, is_active, created, updated = raw
    return ItemRow(
        external_id=external_id,
        title=title,
        description=description,
        categories=_json(categories),
        metadata=_json(metadata),
        embedding=_json(embedding),
        is_active=bool(is_active),
        created_at=_moment(created),
        updated_at=_moment(updated),
    )


def _item_select(tenant_id: str, item_id: str) -> tuple | None:
    """The item's columns as the database hands them over (JSON as text), in one query that skips
    the ORM's query compiler (it costs a third of `Item.objects.get`)."""
    with connection.cursor() as cursor:
        cursor.execute(_item_read_sql(), [Tenant.id_for_sql(tenant_id), item_id])
        return cursor.fetchone()


def _content(values: dict) -> bytes:
    return vectors.to_bytes(
        vectors.content_vector(
            title=values.get("title", ""),
            description=values.get("description", ""),
            categories=values.get("categories") or [],
            embedding=values.get("embedding"),
        )
    )


# What an item's content vector is made of: a change to any rebuilds it, and asks the ML engine for a
# new embedding when the item has none of its own.
CONTENT_FIELDS = frozenset({"title", "description", "categories", "embedding"})


def _after_write(tenant_id: str, kind: str, records: list[dict]) -> None:
    """Inside the writing transaction: engines learn of catalog changes; once it has committed, the
    pipeline gets a copy and the ML engine is asked for missing embeddings."""
    if kind == "items":
        engine.catalog_changed(tenant_id)

    def run() -> None:
        if kind == "items":
            unembedded = [
                record["id"]
                for record in records
                if record.get("embedding") is None and CONTENT_FIELDS & record.keys()
            ]
            if settings.ML_ENGINE_URL and unembedded:
                _follow_up(tasks.items_embed, tenant_id, unembedded)
        if settings.DATA_PIPELINE_URL:
            _follow_up(tasks.pipeline_forward, tenant_id, kind, records)

    transaction.on_commit(run)


def _follow_up(task: Task, tenant_id: str, *args: object) -> None:
    """Queues the follow-up of a write that has committed. Its failure (the broker down, or, where
    tasks run in-process, the task's own) is logged: the write stands, and its answer is not a 500
    that a retry would turn into a second copy."""
    try:
        task.delay(tenant_id, *args)
    except Exception:
        follow_ups_failed_total.labels(task.name).inc()
        logger.error("Could not queue %s for tenant %s", task.name, tenant_id, exc_info=True)


def items_upsert(*, tenant: Tenant, items: list[dict]) -> tuple[int, int]:
    """Creates or replaces items by the tenant's own id, all or none. Returns (created, updated)."""
    ids = [item["id"] for item in items]
    with transaction.atomic():
        # SQLite writes one transaction at a time: what is there now is what the upsert finds.
        found = (
            None
            if connection.vendor == "postgresql"
            else Item.objects.filter(tenant=tenant, external_id__in=ids).count()
        )
        # In one order whatever the caller's: two batches that share ids lock their rows in the same
        # order, and one waits for the other instead of deadlocking.
        rows = [
            Item(
                tenant=tenant,
                external_id=item["id"],
                title=item["title"],
                description=item.get("description", ""),
                categories=item.get("categories", []),
                metadata=item.get("metadata", {}),
                embedding=item.get("embedding"),
                is_active=item.get("is_active", True),
                content_vector=_content(item),
            )
            for item in sorted(items, key=lambda item: item["id"])
        ]
        Item.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["tenant", "external_id"],
            update_fields=[*ITEM_FIELDS, "content_vector", "updated_at"],
        )
        created = _inserted_here(tenant, ids) if found is None else len(ids) - found
        _after_write(str(tenant.id), "items", items)
    return created, len(ids) - created


def _inserted_here(tenant: Tenant, ids: list[str]) -> int:
    """How many of the rows this transaction's upsert wrote it inserted (PostgreSQL). Counted before
    the upsert, rows a concurrent batch inserted meanwhile were missed, and both batches said they had
    created them. A row ON CONFLICT updated carries the upsert's lock (xmax); an inserted one none."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM items WHERE tenant_id = %s AND external_id = ANY(%s) AND xmax = 0",
            [tenant.id, ids],
        )
        return cursor.fetchone()[0]


def _item_lock(item: Item, *, for_delete: bool = False) -> Item:
    """Inside a transaction: the item's row as it is now, held until the end. An item deleted since
    it was read is not found, rather than written back. A concurrent DELETE or PATCH waits; for a
    DELETE, so do interactions being stored for it, whose foreign key check needs the row."""
    stored = Item.objects.select_for_update(no_key=not for_delete).filter(pk=item.pk).first()
    if stored is None:
        raise exceptions.NotFound("Not found.")
    return stored


def item_update(*, item: Item, **fields: object) -> Item:
    """Writes the fields given, and only those: a concurrent change of the others stays."""
    with transaction.atomic():
        stored = _item_lock(item)
        for name, value in fields.items():
            setattr(stored, name, value)
        changed = list(fields)
        if CONTENT_FIELDS & fields.keys():
            stored.content_vector = _content(
                {
                    "title": stored.title,
                    "description": stored.description,
                    "categories": stored.categories,
                    "embedding": stored.embedding,
                }
            )
            changed.append("content_vector")
        stored.save(update_fields=[*changed, "updated_at"])
        _after_write(str(stored.tenant_id), "items", [{"id": stored.external_id, **fields}])
    return stored


def item_delete(*, item: Item) -> None:
    """Deletes the item and the interactions with it."""
    with transaction.atomic():
        # Held before the interactions are collected: one stored meanwhile is either among them or
        # refused when its transaction commits (the row gone), never left pointing at nothing.
        _item_lock(item, for_delete=True).delete()
        _after_write(str(item.tenant_id), "items", [{"id": item.external_id, "deleted": True}])


def _not_in_catalog(interactions: list[dict], known: set[str]) -> None:
    unknown = {
        str(index): {"item_id": [f"No item '{interaction['item_id']}' in the catalog."]}
        for index, interaction in enumerate(interactions)
        if interaction["item_id"] not in known
    }
    if unknown:
        raise exceptions.ValidationError({"interactions": unknown})


def _catalog_ids(tenant: Tenant, external_ids: set[str]) -> dict[str, int]:
    return dict(
        Item.objects.filter(tenant=tenant, external_id__in=external_ids).values_list("external_id", "id")
    )


def interactions_record(*, tenant: Tenant, interactions: list[dict]) -> int:
    """Stores interactions with items of the tenant's catalog; any unknown item refuses the batch."""
    wanted = {interaction["item_id"] for interaction in interactions}
    known = _catalog_ids(tenant, wanted)
    _not_in_catalog(interactions, set(known))
    now = timezone.now()
    rows = [
        Interaction(
            tenant=tenant,
            user_id=interaction["user_id"],
            item_id=known[interaction["item_id"]],
            type=interaction["type"],
            value=interaction.get("value"),
            timestamp=interaction.get("timestamp") or now,
        )
        for interaction in interactions
    ]
    try:
        with transaction.atomic():
            Interaction.objects.bulk_create(rows)
            records = [
                {**interaction, "timestamp": (interaction.get("timestamp") or now).isoformat()}
                for interaction in interactions
            ]
            _after_write(str(tenant.id), "interactions", records)
    except IntegrityError:
        # An item deleted after it was looked up: the batch is refused as if it had been gone before.
        _not_in_catalog(interactions, set(_catalog_ids(tenant, wanted)))
        raise
    training_maybe_schedule(tenant_id=str(tenant.id), new=len(rows))
    return len(rows)


# Tenants this process has seen trained once: they follow the threshold below, not the first rule.
_trained_once: set[str] = set()


def _never_trained(tenant_id: str) -> bool:
    if tenant_id in _trained_once:
        return False
    if EngineState.objects.filter(tenant_id=tenant_id, trained_at__isnull=False).exists():
        _trained_once.add(tenant_id)
        return False
    return True


def training_maybe_schedule(*, tenant_id: str, new: int) -> None:
    """Counts new interactions; past the threshold, queues a training (once: a cache lock). A tenant
    never trained is trained on its first interactions: until then its lists could not be filled
    with its popular items."""
    key = f"engine-new-interactions:{tenant_id}"
    try:
        pending = cache.incr(key, new)  # one round trip once the counter exists
    except ValueError:
        if cache.add(key, new, None):
            pending = new
        else:  # another process created it meanwhile
            pending = cache.incr(key, new)
    if pending is None:
        # The cache is down (it ignores its errors): not counted; the hourly job trains anyway.
        return
    due = pending >= settings.ENGINE_RETRAIN_AFTER_INTERACTIONS or _never_trained(tenant_id)
    if due and cache.add(f"engine-training:{tenant_id}", 1, 600):
        cache.delete(key)
        transaction.on_commit(lambda: _follow_up(tasks.engine_train, tenant_id))


def engine_train(*, tenant_id: str) -> EngineState:
    """Learns the tenant's collaborative model from all its interactions and publishes it."""
    # When it began: interactions committed while it runs are newer than the model (the hourly job
    # looks for those), though some of them may be in it.
    started = timezone.now()
    rows = Interaction.objects.filter(tenant_id=tenant_id).values_list(
        "user_id", "item_id", "type", "value", "timestamp"
    )
    users: dict[str, int] = {}
    item_pks = np.array(
        sorted(Item.objects.filter(tenant_id=tenant_id).values_list("id", flat=True)), dtype=np.int64
    )
    known = set(item_pks.tolist())
    user_codes, item_codes, weights, times = [], [], [], []
    for user_id, item_pk, kind, value, moment in rows.iterator(chunk_size=5000):
        if item_pk not in known:
            continue  # an item written after its list was read: the next training has both
        user_codes.append(users.setdefault(user_id, len(users)))
        item_codes.append(item_pk)
        weights.append(interaction_weight(kind, value))
        times.append(moment.timestamp())
    codes = np.searchsorted(item_pks, np.array(item_codes, dtype=np.int64))
    model = model_train(
        item_pks=item_pks,
        users=np.array(user_codes, dtype=np.int64),
        items=codes,
        weights=np.array(weights, dtype=np.float32),
        times=np.array(times, dtype=np.float64),
    )
    with transaction.atomic():
        state, _ = EngineState.objects.select_for_update().get_or_create(tenant_id=tenant_id)
        state.model = model.to_bytes()
        state.model_version += 1
        state.trained_at = started
        state.interactions_at_training = len(item_codes)
        state.save()
    cache.delete_many(
        [engine.version_key(tenant_id), f"engine-training:{tenant_id}", f"engine-trained-on:{tenant_id}"]
    )
    tenant_marks_renew(tenant_id, model=True)
    return state


def engines_train_stale() -> int:
    """Beat: trains every tenant with interactions newer than its model."""
    count = 0
    for tenant_id in Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("id", flat=True):
        trained_at = (
            EngineState.objects.filter(tenant_id=tenant_id).values_list("trained_at", flat=True).first()
        )
        newer = Interaction.objects.filter(tenant_id=tenant_id)
        if trained_at is not None:
            newer = newer.filter(created_at__gt=trained_at)
        if newer.exists():
            engine_train(tenant_id=str(tenant_id))
            count += 1
    return count


def _listed(body: Any, name: str) -> list | None:
    """The list an engine's answer holds: `{name: [...]}`, or the list itself (the seed's client
    returned the answer as a list)."""
    listed = body.get(name) if isinstance(body, dict) else body
    return listed if isinstance(listed, list) else None


def _remote_recommend(tenant_id: str, query: Query, marks: Marks | None) -> Answer:
    """Asks the ML engine; keeps only what it may show (known, active, filtered, unseen) and fills up."""
    client = service_client("ml_engine")
    if client is None:
        raise UpstreamError("ml_engine: not configured")
    body = client.post(
        "/internal/ml/recommendations",
        {
            "tenant_id": tenant_id,
            "user_id": query.user_id,
            "count": query.count,
            "filters": {
                "categories": list(query.categories),
                "exclude_item_ids": list(query.exclude_item_ids),
            },
            "exclude_seen": query.exclude_seen,
        },
        accept=lambda body: _listed(body, "recommendations") is not None,
    )
    answers = _listed(body, "recommendations") or []
    index = engine.index_for(tenant_id, marks)
    seen = None
    if query.exclude_seen:
        seen = engine.seen_mask(
            index, tenant_id, query.user_id, engine.user_history(tenant_id, query.user_id)
        )
    mask = engine.eligible_mask(index, query, seen)
    scores: dict[int, float] = {}
    for answer in answers[:MAX_REMOTE_ANSWERS]:
        if not isinstance(answer, dict) or not isinstance(answer.get("item_id"), str):
            continue
        if not engine.is_finite_number(answer.get("score")):
            continue
        position = index.position_of_id.get(answer["item_id"])
        if position is None or not mask[position] or position in scores:
            continue
        scores[position] = float(answer["score"])
    # Its best, whatever order it listed them in.
    scores = dict(heapq.nlargest(query.count, scores.items(), key=lambda pair: pair[1]))
    if not scores and answers:
        raise UpstreamError("ml_engine: none of its recommendations can be shown")
    # An engine that had nothing to say does not name the list: it is all fillers.
    return engine.ranked_answer(index, mask, scores, query.count, "remote" if scores else None)


def recommendations_get(*, tenant: Tenant, query: Query, marks: Marks | None = None) -> Answer:
    """The remote engine when configured, else (or when it fails) the built-in one. `marks`: the
    tenant's change marks, when the request's rate-limit round trip read them."""
    tenant_id = str(tenant.id)
    if settings.ML_ENGINE_URL:
        try:
            return _remote_recommend(tenant_id, query, marks)
        except UpstreamError as exc:
            if not isinstance(exc, CircuitOpen):  # that one was logged once, when the circuit opened
                logger.warning("ML engine unavailable, answering from the built-in engine: %s", exc)
            fallback = engine.builtin_recommend(tenant_id, query, marks)
            return Answer(fallback.items, f"fallback:{fallback.strategy}")
    return engine.builtin_recommend(tenant_id, query, marks)


def similar_items_get(
    *, tenant: Tenant, item_id: str, count: int, marks: Marks | None = None
) -> list[Scored]:
    similar = engine.builtin_similar(str(tenant.id), item_id, count, marks)
    if similar is None:
        raise exceptions.NotFound(f"No item '{item_id}' in the catalog.")
    return similar


def items_embed(*, tenant_id: str, item_ids: list[str]) -> int:
    """Asks the ML engine for the embeddings of items that came without one, and stores them."""
    client = service_client("ml_embeddings")
    if client is None:
        return 0
    items = list(Item.objects.filter(tenant_id=tenant_id, external_id__in=item_ids, embedding__isnull=True))
    if not items:
        return 0
    payload = [
        {"id": i.external_id, "title": i.title, "description": i.description, "categories": i.categories}
        for i in items
    ]
    try:
        body = client.post(
            "/internal/ml/embeddings",
            {"tenant_id": tenant_id, "items": payload},
            accept=lambda body: _listed(body, "embeddings") is not None,
        )
    except UpstreamRejected:
        return 0  # the engine refused these items (logged, counted): asking again will not help
    except UpstreamError as exc:
        raise UpstreamUnavailable("The ML engine could not compute embeddings.") from exc
    by_id = {item.external_id: item for item in items}
    updated: list[Item] = []
    # Each entry names its item by item_id or id.
    for entry in _listed(body, "embeddings") or []:
        item = by_id.get(str(entry.get("item_id", entry.get("id")))) if isinstance(entry, dict) else None
        vector = entry.get("embedding") if item else None
        if (
            item is not None
            and isinstance(vector, list)
            and 0 < len(vector) <= 4096
            and all(engine.is_finite_number(value) and abs(value) <= vectors.FLOAT32_MAX for value in vector)
        ):
            item.content_vector = vectors.to_bytes(
                vectors.content_vector(title="", description="", categories=[], embedding=vector)
            )
            updated.append(item)
    with transaction.atomic():
        # An item whose content was written while the engine worked (an embedding of the caller's own,
        # a new text, which asks the engine again) keeps what was written: the engine's answer is for
        # the item as it was sent. Other changes (metadata, is_active) leave the answer good.
        current = {
            pk: content
            for pk, *content in Item.objects.select_for_update()
            # The upserts' order (theirs is Python's, code points): one waits for the other, no deadlock.
            .order_by(Collate("external_id", "C") if connection.vendor == "postgresql" else "external_id")
            .filter(pk__in=[item.pk for item in updated], embedding__isnull=True)
            .values_list("pk", "title", "description", "categories")
        }
        updated = [
            item
            for item in updated
            if current.get(item.pk) == [item.title, item.description, item.categories]
        ]
        Item.objects.bulk_update(updated, ["content_vector"])
        if updated:
            engine.catalog_changed(tenant_id)
    return len(updated)
