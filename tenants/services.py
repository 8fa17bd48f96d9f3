"""Everything that writes tenants. The admin API and the console both come through here, and every
change is written to the audit trail with who made it and from where."""

from typing import Any

from django.db import IntegrityError, transaction
from rest_framework import exceptions

from accounts.models import User
from accounts.services import user_create
from apikeys.services import api_keys_cache_invalidate
from config.exceptions import Conflict
from tenants.audit import audit_record, snapshot
from tenants.models import Tenant
from usage.services import rate_limits_set

TENANT_FIELDS = ("name", "slug", "plan", "status", "settings")


def _slug_conflict(slug: str) -> Conflict:
    return Conflict(f"A tenant with the slug '{slug}' (in any case) already exists.")


def tenant_create(
    *,
    name: str,
    slug: str,
    plan: str = Tenant.Plan.STARTER,
    settings: dict | None = None,
    admin_user: dict | None = None,
    rate_limits: dict | None = None,
    actor: User | None = None,
    source: str = "api",
) -> tuple[Tenant, User | None]:
    """Creates the tenant and, if asked, its first admin user, both or neither."""
    with transaction.atomic():
        if Tenant.objects.filter(slug__iexact=slug).exists():
            raise _slug_conflict(slug)
        try:
            with transaction.atomic():
                tenant = Tenant.objects.create(name=name, slug=slug, plan=plan, settings=settings or {})
        except IntegrityError as exc:
            raise _slug_conflict(slug) from exc
        user = None
        if admin_user:
            try:
                user = user_create(
                    tenant=tenant,
                    email=admin_user["email"],
                    password=admin_user["password"],
                    role=User.Role.ADMIN,
                    actor=actor,
                    source=source,
                )
            except exceptions.ValidationError as exc:
                raise exceptions.ValidationError({"admin_user": exc.detail}) from exc
        if rate_limits:
            rate_limits_set(tenant=tenant, **rate_limits)
        after = {**snapshot(tenant, TENANT_FIELDS), "admin_user": user.email if user else None}
        audit_record(actor=actor, action="tenant.create", obj=tenant, source=source, after=after)
    return tenant, user


def tenant_update(*, tenant: Tenant, actor: User | None = None, source: str = "api", **fields: Any) -> Tenant:
    """Updates the given fields; a change of status goes through tenant_status_set, of limits through
    rate_limits_set."""
    new_status = fields.pop("status", None)
    rate_limits = fields.pop("rate_limits", None)
    slug = fields.get("slug")
    if (
        slug
        and slug != tenant.slug
        and Tenant.objects.filter(slug__iexact=slug).exclude(pk=tenant.pk).exists()
    ):
        raise _slug_conflict(slug)
    before = snapshot(tenant, TENANT_FIELDS)
    for name, value in fields.items():
        setattr(tenant, name, value)
    with transaction.atomic():  # the fields, the limits and the status: all of them or none
        try:
            with transaction.atomic():
                tenant.save()
        except IntegrityError as exc:
            raise _slug_conflict(tenant.slug) from exc
        after = snapshot(tenant, TENANT_FIELDS)
        if after != before:  # cached keys carry the tenant's fields; limits and status drop them themselves
            audit_record(
                actor=actor, action="tenant.update", obj=tenant, source=source, before=before, after=after
            )
            api_keys_cache_invalidate(tenant=tenant)
        if rate_limits is not None:
            rate_limits_set(tenant=tenant, actor=actor, source=source, **rate_limits)
        if new_status and new_status != tenant.status:
            tenant_status_set(tenant=tenant, status=new_status, actor=actor, source=source)
    return tenant


def status_change_permission(current: str, new: str) -> str:
    """The staff permission a change of status asks for: into or out of `cancelled` weighs as much as
    a cancellation; suspending and reactivating a suspended tenant are support work."""
    if Tenant.Status.CANCELLED in (current, new):
        return "tenants.cancel_tenant"
    return "tenants.suspend_tenant"


def tenant_status_set(
    *, tenant: Tenant, status: str, actor: User | None = None, source: str = "api"
) -> Tenant:
    """Suspends, reactivates or cancels; cancelling keeps all data for billing. JWTs read the tenant
    on every request and cached API keys are dropped here, so the next request sees the change."""
    before = tenant.status
    tenant.status = status
    with transaction.atomic():
        tenant.save(update_fields=["status", "updated_at"])
        if before != status:
            audit_record(
                actor=actor,
                action=f"tenant.{status}",
                obj=tenant,
                source=source,
                before={"status": before},
                after={"status": status},
            )
    api_keys_cache_invalidate(tenant=tenant)
    return tenant


def tenant_cancel(*, tenant: Tenant, actor: User | None = None, source: str = "api") -> Tenant:
    return tenant_status_set(tenant=tenant, status=Tenant.Status.CANCELLED, actor=actor, source=source)
