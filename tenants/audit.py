"""The audit trail: one entry per staff action, per API-key change and per change of a tenant's users
(theirs, their admins' or a password), written by the services."""

from typing import Any

from django.db import models

from tenants.models import AuditEntry, Tenant


def snapshot(obj: models.Model, fields: tuple[str, ...]) -> dict[str, Any]:
    """The fields of an object as JSON-friendly values, for `before` and `after`."""
    values = {}
    for name in fields:
        value = getattr(obj, name)
        values[name] = (
            value if isinstance(value, str | int | float | bool | dict | list | type(None)) else str(value)
        )
    return values


def audit_record(
    *,
    actor: Any,
    action: str,
    obj: models.Model | None = None,
    source: str = AuditEntry.Source.API,
    tenant: Tenant | None = None,
    before: dict | None = None,
    after: dict | None = None,
    object_type: str = "",
    object_id: str = "",
) -> AuditEntry:
    """`actor` is the person (request.user); anything else (an API key, nobody) counts as the system."""
    person = actor if getattr(actor, "pk", None) is not None and hasattr(actor, "email") else None
    return AuditEntry.objects.create(
        actor=person,
        actor_email=person.email if person else "",
        source=source if person else AuditEntry.Source.SYSTEM,
        action=action,
        tenant=tenant if tenant is not None else (obj if isinstance(obj, Tenant) else None),
        object_type=obj._meta.label if obj is not None else object_type,
        object_id=str(obj.pk) if obj is not None else object_id,
        object_repr=str(obj)[:255] if obj is not None else object_id,
        before=before,
        after=after,
    )
