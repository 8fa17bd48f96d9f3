"""Everything that writes API keys, and the cached view of a key that authentication reads."""

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from apikeys.models import KEY_PREFIX, VISIBLE_PREFIX_LENGTH, ApiKey, key_digest
from config.exceptions import Conflict
from config.formats import iso_z
from config.transactions import now_and_after_commit
from tenants.audit import audit_record, snapshot
from tenants.models import Tenant
from usage.limits import Limits, tenant_rate_limits
from usage.ratelimit import tenant_generation, tenant_generations_bump

# Explicit invalidation keeps the cache right; the TTL only bounds what a lost invalidation
# (the cache unreachable at that moment) could leave behind.
CACHE_TTL_SECONDS = 60


@dataclass(frozen=True)
class CachedKey:
    """What a request needs to know about its key, held in the shared cache by digest."""

    id: str
    key_hash: str
    permissions: tuple[str, ...]
    status: str
    expires_at: datetime | None
    revokes_at: datetime | None
    tenant_id: str
    tenant_name: str
    tenant_slug: str
    tenant_plan: str
    tenant_status: str
    limits: Limits

    def is_usable(self, at: datetime) -> bool:
        return (
            self.status == ApiKey.Status.ACTIVE
            and (self.expires_at is None or self.expires_at > at)
            and (self.revokes_at is None or self.revokes_at > at)
        )

    @cached_property
    def tenant(self) -> Tenant:
        """An unsaved Tenant built from the cache, so the hot path needs no query; built once per
        entry, as the entry is remembered across requests (read it, never change it)."""
        return Tenant(
            id=self.tenant_id,
            name=self.tenant_name,
            slug=self.tenant_slug,
            plan=self.tenant_plan,
            status=self.tenant_status,
        )


UNKNOWN_KEY = "unknown"


def cache_key(digest: str) -> str:
    return f"apikey:{digest}"


def api_key_lookup(*, digest: str) -> CachedKey | None:
    """The key with this digest, from the shared cache, else from the database (then cached).
    An unknown digest is cached too: key rows are never deleted and a new key's digest has never
    been asked for, so the answer cannot change, and guessing keys costs no query."""
    entry = cache.get(cache_key(digest))
    if entry is not None:
        return None if entry == UNKNOWN_KEY else entry
    row = ApiKey.objects.select_related("tenant", "tenant__rate_limit").filter(key_hash=digest).first()
    if row is None:
        cache.set(cache_key(digest), UNKNOWN_KEY, CACHE_TTL_SECONDS)
        return None
    entry = CachedKey(
        id=str(row.id),
        key_hash=row.key_hash,
        permissions=tuple(row.permissions),
        status=row.status,
        expires_at=row.expires_at,
        revokes_at=row.revokes_at,
        tenant_id=str(row.tenant_id),
        tenant_name=row.tenant.name,
        tenant_slug=row.tenant.slug,
        tenant_plan=row.tenant.plan,
        tenant_status=row.tenant.status,
        limits=tenant_rate_limits(row.tenant),
    )
    cache.set(cache_key(digest), entry, CACHE_TTL_SECONDS)
    return entry


# Per process, with Redis: the keys used recently, each with its tenant's credentials generation at
# the time it was read. The rate-limit script confirms that generation in the round trip every request
# makes anyway, so a remembered key costs no lookup and is never used after an invalidation; the TTL
# bounds what a lost invalidation (Redis unreachable at that moment) could leave behind.
_remembered: dict[str, tuple[CachedKey, str, float]] = {}
REMEMBERED_MAX = 10_000


def api_key_resolve(*, digest: str) -> tuple[CachedKey | None, str | None]:
    """The key with this digest and the generation to confirm it with (None: nothing to confirm)."""
    remembered = _remembered.get(digest)
    if remembered is not None and remembered[2] > time.monotonic():
        return remembered[0], remembered[1]
    return api_key_refresh(digest=digest)


def api_key_refresh(*, digest: str) -> tuple[CachedKey | None, str | None]:
    """Reads the key afresh and remembers it under its tenant's current generation."""
    _remembered.pop(digest, None)
    entry = api_key_lookup(digest=digest)
    if entry is None:
        return None, None
    generation = tenant_generation(entry.tenant_id)
    if generation is None:
        return entry, None
    # Read again now that the generation is known: a change that landed in between has replaced
    # the generation too, so what is remembered is never older than the generation it is kept under.
    entry = api_key_lookup(digest=digest)
    if entry is None:
        return None, None
    if entry.status != ApiKey.Status.ACTIVE or entry.tenant_status != Tenant.Status.ACTIVE:
        # Only keys that may be admitted are remembered: a refusal is always read afresh, so that
        # undoing it (reactivating the tenant) is seen at once too.
        return entry, None
    if len(_remembered) >= REMEMBERED_MAX:
        _remembered.clear()
    _remembered[digest] = (entry, generation, time.monotonic() + CACHE_TTL_SECONDS)
    return entry, generation


def api_keys_cache_invalidate(*, tenant: Tenant | None = None, keys: list[ApiKey] | None = None) -> None:
    """Drops cached keys from the shared cache and renews their tenants' credentials generation, so
    every server process sees the change on its next request. Inside a transaction this is done again
    once it has committed: a process that read the old row in between forgets it then."""
    now_and_after_commit(lambda: _invalidate(tenant, keys))


def _invalidate(tenant: Tenant | None, keys: list[ApiKey] | None) -> None:
    hashes = [key.key_hash for key in keys or []]
    tenant_ids = {str(key.tenant_id) for key in keys or []}
    if tenant is not None:
        hashes += list(ApiKey.objects.filter(tenant=tenant).values_list("key_hash", flat=True))
        tenant_ids.add(str(tenant.id))
    if hashes:
        cache.delete_many([cache_key(digest) for digest in hashes])
    tenant_generations_bump(tenant_ids)


def api_key_expiry_problem(expires_at: datetime | None) -> str | None:
    """Why a new key may not have this expiry (the API's and the console's rule), or None."""
    if expires_at is not None and expires_at <= timezone.now():
        return "Must be in the future."
    return None


KEY_FIELDS = ("name", "prefix", "permissions", "status", "expires_at", "revokes_at")


def _audit(actor: User | None, api_key: ApiKey, action: str, source: str, before: dict | None = None) -> None:
    audit_record(
        actor=actor,
        action=action,
        obj=api_key,
        source=source,
        tenant=api_key.tenant,
        before=before,
        after=snapshot(api_key, KEY_FIELDS),
    )


def _new_secret() -> tuple[str, str, str]:
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 bits of randomness
    return key, key_digest(key), key[:VISIBLE_PREFIX_LENGTH]


CANCELLED_TENANT_KEY = "The tenant is cancelled: it can have no new API keys."


def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    permissions: list[str],
    expires_at: datetime | None = None,
    created_by: User | None = None,
    rotated_from: ApiKey | None = None,
    source: str = "api",
) -> tuple[ApiKey, str]:
    """Creates a key and returns it with its secret: the only time the secret exists."""
    if tenant.status == Tenant.Status.CANCELLED:
        raise Conflict(CANCELLED_TENANT_KEY)
    key, digest, prefix = _new_secret()
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        key_hash=digest,
        prefix=prefix,
        permissions=sorted(set(permissions)),
        expires_at=expires_at,
        created_by=created_by,
        rotated_from=rotated_from,
    )
    _audit(created_by, api_key, "api_key.rotate_new" if rotated_from else "api_key.create", source)
    return api_key, key


def api_key_update(
    *,
    api_key: ApiKey,
    actor: User | None,
    name: str | None = None,
    permissions: list[str] | None = None,
    source: str = "api",
) -> ApiKey:
    now = timezone.now()
    if not api_key.is_usable(now):
        # A 200 would read as if the new permissions were in force.
        raise Conflict(f"The key is {api_key.effective_status(now)}; only an active key can be changed.")
    before = snapshot(api_key, KEY_FIELDS)
    changed = []
    if name is not None and name != api_key.name:
        api_key.name = name
        changed.append("name")
    if permissions is not None and sorted(set(permissions)) != api_key.permissions:
        api_key.permissions = sorted(set(permissions))
        changed.append("permissions")
    if changed:
        with transaction.atomic():
            api_key.save(update_fields=changed)
            api_keys_cache_invalidate(keys=[api_key])
            _audit(actor, api_key, "api_key.update", source, before)
    return api_key


def api_key_revoke(*, api_key: ApiKey, actor: User | None, source: str = "api") -> ApiKey:
    """Revokes at once; the row stays for usage history. Revoking twice changes nothing."""
    if api_key.status == ApiKey.Status.REVOKED:
        return api_key
    before = snapshot(api_key, KEY_FIELDS)
    api_key.status = ApiKey.Status.REVOKED
    api_key.revoked_at = timezone.now()
    with transaction.atomic():
        api_key.save(update_fields=["status", "revoked_at"])
        api_keys_cache_invalidate(keys=[api_key])
        _audit(actor, api_key, "api_key.revoke", source, before)
    return api_key


def api_key_rotate(
    *, api_key: ApiKey, actor: User | None, grace_seconds: int = 0, source: str = "api"
) -> tuple[ApiKey, str]:
    """A new key with the same name, permissions and expiry; the old one stops now or after the grace."""
    now = timezone.now()
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if not locked.is_usable(now):
            raise Conflict(f"The key is {locked.effective_status(now)}; only an active key can be rotated.")
        if locked.revokes_at is not None:
            # Rotating it again would move its end further away, for ever, and breed successors.
            raise Conflict(
                f"The key was already rotated and stops at {iso_z(locked.revokes_at)}: rotate its "
                "successor, or revoke it now."
            )
        new_key, secret = api_key_create(
            tenant=locked.tenant,
            name=locked.name,
            permissions=locked.permissions,
            expires_at=locked.expires_at,
            created_by=actor,
            rotated_from=locked,
            source=source,
        )
        before = snapshot(locked, KEY_FIELDS)
        if grace_seconds > 0:
            locked.revokes_at = now + timedelta(seconds=grace_seconds)
            locked.save(update_fields=["revokes_at"])
        else:
            locked.status = ApiKey.Status.REVOKED
            locked.revoked_at = now
            locked.save(update_fields=["status", "revoked_at"])
        _audit(actor, locked, "api_key.rotate", source, before)
    api_keys_cache_invalidate(keys=[locked])
    return new_key, secret


def api_key_touch(*, key_id: str, at: datetime) -> None:
    ApiKey.objects.filter(pk=key_id).exclude(last_used_at__gte=at).update(last_used_at=at)


def api_keys_expire(*, at: datetime | None = None) -> int:
    """Writes down the status that time has already given: expired keys, and rotated keys past their grace."""
    now = at or timezone.now()
    active = ApiKey.objects.filter(status=ApiKey.Status.ACTIVE)
    revoked = active.filter(revokes_at__lte=now).update(status=ApiKey.Status.REVOKED, revoked_at=now)
    expired = active.filter(expires_at__lte=now).update(status=ApiKey.Status.EXPIRED)
    return revoked + expired
