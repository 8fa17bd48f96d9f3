import uuid
from typing import Any

from django.db import connection, models
from django.db.models.functions import Lower


class Tenant(models.Model):
    """A customer organization: everything a customer owns hangs off one of these."""

    class Plan(models.TextChoices):
        STARTER = "starter", "Starter"
        PRO = "pro", "Pro"
        ENTERPRISE = "enterprise", "Enterprise"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        CANCELLED = "cancelled", "Cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    slug = models.SlugField(max_length=128, unique=True)
    plan = models.CharField(max_length=32, choices=Plan.choices, default=Plan.STARTER)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "tenants"
        ordering = ["name"]
        permissions = [
            ("suspend_tenant", "Can suspend and reactivate tenants"),
            ("cancel_tenant", "Can cancel tenants"),
            ("change_tenant_plan", "Can change a tenant's plan and rate limits"),
            ("view_invoice_amounts", "Can see the money of invoices"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(plan__in=["starter", "pro", "enterprise"]), name="tenants_plan_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "suspended", "cancelled"]),
                name="tenants_status_valid",
            ),
            # "acme" and "ACME" would be two tenants no person could tell apart.
            models.UniqueConstraint(
                Lower("slug"),
                name="tenants_slug_unique_any_case",
                violation_error_message="A tenant with this slug (in any case) already exists.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @classmethod
    def id_for_sql(cls, tenant_id: object) -> Any:
        """A tenant id as a parameter of a hand-written query (SQLite keeps UUIDs as hex text)."""
        return cls._meta.pk.get_db_prep_value(tenant_id, connection)

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class IdempotencyRecord(models.Model):
    """The first answer to a POST sent with an Idempotency-Key, kept for replays (24 hours).
    While the first request runs, `status_code` is empty: a concurrent retry gets 409."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "idempotency_records"
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_tenant_key")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.key}"


class AuditEntry(models.Model):
    """What a person did to the platform's objects, from the console or the API: who, what, which
    object, and the object's fields before and after. Written by the services, never edited."""

    class Source(models.TextChoices):
        CONSOLE = "console", "Console"
        API = "api", "API"
        SYSTEM = "system", "System"

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_email = models.CharField(max_length=255, blank=True, default="")
    source = models.CharField(max_length=16, choices=Source.choices)
    action = models.CharField(max_length=64, db_index=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=255)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "audit_entries"
        ordering = ["-at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_email or 'system'} {self.action} {self.object_repr}"
