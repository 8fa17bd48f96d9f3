from django.db import migrations


def history_written_down(apps, schema_editor):
    # Billing reads a tenant's plan and status at a given time from the audit trail. A tenant made
    # before its creation was recorded there gets that record now, from what it is known to be:
    # created at created_at with today's plan, active until cancelled_at if it has been cancelled.
    Tenant = apps.get_model("tenants", "Tenant")
    AuditEntry = apps.get_model("tenants", "AuditEntry")
    recorded = set(
        AuditEntry.objects.filter(object_type="tenants.Tenant", action="tenant.create").values_list(
            "object_id", flat=True
        )
    )
    for tenant in Tenant.objects.all():
        if str(tenant.pk) in recorded:
            continue
        status = "active" if tenant.status == "cancelled" else tenant.status
        fields = {"name": tenant.name, "slug": tenant.slug, "plan": tenant.plan, "settings": tenant.settings}
        entries = [("tenant.create", tenant.created_at, None, {**fields, "status": status})]
        if tenant.status == "cancelled":
            cancelled = tenant.cancelled_at or tenant.updated_at
            entries.append(("tenant.cancelled", cancelled, {"status": "active"}, {"status": "cancelled"}))
        for action, at, before, after in entries:
            entry = AuditEntry.objects.create(
                source="system",
                action=action,
                tenant=tenant,
                object_type="tenants.Tenant",
                object_id=str(tenant.pk),
                object_repr=f"{tenant.name} ({tenant.slug})"[:255],
                before=before,
                after=after,
            )
            AuditEntry.objects.filter(pk=entry.pk).update(at=at)  # `at` is set on creation


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_tenant_cancelled_at")]

    operations = [migrations.RunPython(history_written_down, migrations.RunPython.noop)]
