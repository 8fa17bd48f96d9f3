"""Migrations of tenants that change data: run on rows a previous release could have left."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = ("tenants", "0003_alter_tenant_options_auditentry")
AFTER = ("tenants", "0005_tenant_cancelled_at")


@pytest.mark.django_db(transaction=True)
def test_slugs_equal_but_for_case_are_told_apart_and_cancellations_dated():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    Tenant = executor.loader.project_state([BEFORE]).apps.get_model("tenants", "Tenant")
    now = timezone.now()
    for seconds, slug, status in ((0, "acme", "cancelled"), (1, "ACME", "active"), (2, "acme-2", "active")):
        Tenant.objects.create(name=slug, slug=slug, plan="starter", status=status)
        Tenant.objects.filter(slug=slug).update(created_at=now + timedelta(seconds=seconds))
    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])
    Tenant = executor.loader.project_state([AFTER]).apps.get_model("tenants", "Tenant")
    rows = list(Tenant.objects.order_by("created_at").values_list("slug", "cancelled_at"))
    assert [slug for slug, _ in rows] == ["acme", "ACME-3", "acme-2"]
    assert rows[0][1] is not None and rows[1][1] is None and rows[2][1] is None
