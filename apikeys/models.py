import hashlib
import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

KEY_PREFIX = "rk_"
VISIBLE_PREFIX_LENGTH = 12


def key_digest(key: str) -> str:
    """SHA-256 of the full key: the only form in which a key is stored or cached."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKey(models.Model):
    """A tenant's server-to-server credential. The secret itself is never stored, only its digest."""

    class Permission(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=128)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=32, help_text="The first characters of the key, to tell keys apart.")
    permissions = models.JSONField(default=list)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.ACTIVE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # A rotated key keeps working until this moment (the grace period), then counts as revoked.
    revokes_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rotated_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rotated_to"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_keys"
        ordering = ["-created_at"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="api_keys_tenant_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def effective_status(self, at: datetime | None = None) -> str:
        """The status a caller sees: a passed expiry or grace period counts without a write."""
        now = at or timezone.now()
        if self.status != self.Status.ACTIVE:
            return self.status
        if self.revokes_at is not None and self.revokes_at <= now:
            return self.Status.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return self.Status.EXPIRED
        return self.Status.ACTIVE

    @property
    def stops_at(self) -> datetime | None:
        """When the key stops working: its expiry, or the end of its rotation's grace if sooner; a
        key revoked outright has no grace left."""
        if self.status == self.Status.REVOKED:
            return self.expires_at
        return min((at for at in (self.expires_at, self.revokes_at) if at is not None), default=None)

    def is_usable(self, at: datetime | None = None) -> bool:
        return self.effective_status(at) == self.Status.ACTIVE
