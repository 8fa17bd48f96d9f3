"""Migrations of tenants that change data: run on rows a previous release could have left."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = ("tenants", "0003_alter_tenant_options_auditentry")
AFTER = ("tenants", "0006_tenant_history_baseline")


@pytest.fixture(autouse=True)
def _latest_schema_after():
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_slugs_equal_but_for_case_are_told_apart_and_cancellations_dated():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    Tenant = executor.loader.project_state([BEFORE]).apps.get_model("tenants", "Tenant")
    now = timezone.now()
    long = "x" * 128
    rows = ((0, "acme", "cancelled"), (1, "ACME", "active"), (2, "acme-2", "active"), (3, long, "active"))
    for seconds, slug, status in (*rows, (4, long.upper(), "active")):
        Tenant.objects.create(name=slug, slug=slug, plan="starter", status=status)
        Tenant.objects.filter(slug=slug).update(created_at=now + timedelta(seconds=seconds))
    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])
    Tenant = executor.loader.project_state([AFTER]).apps.get_model("tenants", "Tenant")
    rows = list(Tenant.objects.order_by("created_at").values_list("slug", "cancelled_at"))
    assert [slug for slug, _ in rows] == ["acme", "ACME-3", "acme-2", long, "X" * 126 + "-2"]
    assert rows[0][1] is not None and rows[1][1] is None and rows[2][1] is None


@pytest.mark.django_db(transaction=True)
def test_tenants_made_before_their_history_get_it_so_that_past_months_bill_right():
    from tenants.models import Tenant
    from tenants.services import tenant_update
    from usage.services import tenant_billed_for, tenant_field_at

    before = ("tenants", "0005_tenant_cancelled_at")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    Old = executor.loader.project_state([before]).apps.get_model("tenants", "Tenant")
    now = timezone.now()
    old = Old.objects.create(name="Old", slug="old", plan="pro", status="cancelled")
    Old.objects.filter(pk=old.pk).update(
        created_at=now - timedelta(days=400), cancelled_at=now - timedelta(days=60)
    )
    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])
    tenant = Tenant.objects.get(pk=old.pk)
    tenant_update(tenant=tenant, name="Old Inc.")  # an edit that repeats its status, cancelled
    assert tenant_billed_for(tenant=tenant, month=(now - timedelta(days=150)).date())  # active then
    assert not tenant_billed_for(tenant=tenant, month=now.date())  # cancelled all through
    assert tenant_field_at(tenant=tenant, field="plan", moment=now - timedelta(days=200)) == "pro"
