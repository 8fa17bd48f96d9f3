"""Staff roles. Superusers may do everything. The Support group may look at the tenants, their users,
keys, usage, invoices and the audit trail, and suspend or reactivate tenants, but not cancel them,
change plans or limits, or see what invoices cost."""

from typing import Any

SUPPORT_GROUP = "Support"
SUPPORT_PERMISSIONS = [
    ("tenants", "view_tenant"),
    ("tenants", "suspend_tenant"),
    ("tenants", "view_auditentry"),
    ("accounts", "view_user"),
    ("apikeys", "view_apikey"),
    ("usage", "view_ratelimit"),
    ("usage", "view_usagelog"),
    ("usage", "view_dailyusage"),
    ("usage", "view_invoice"),
]


def support_group_ensure(**kwargs: Any) -> None:
    """After migrations (when permissions exist): the Support group with exactly its permissions."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    permissions = [
        Permission.objects.filter(content_type__app_label=app, codename=codename).first()
        for app, codename in SUPPORT_PERMISSIONS
    ]
    group.permissions.set([permission for permission in permissions if permission is not None])
