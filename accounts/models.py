import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac


class UserManager(BaseUserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> "User":
        return self.get(email=(username or "").strip().lower())

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> "User":
        user = self.model(email=email, **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> "User":
        fields.update(is_staff=True, is_superuser=True, tenant=None, role=None)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in: a tenant's user with a role, or platform staff (no tenant)."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        DEVELOPER = "developer", "Developer"
        VIEWER = "viewer", "Viewer"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, null=True, blank=True, related_name="users"
    )
    email = models.EmailField(max_length=255, unique=True)
    role = models.CharField(max_length=32, choices=Role.choices, null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(
        default=False, help_text="Platform staff: may use the console and admin API."
    )
    # Signs the user's console sessions with the password: renewed, it ends every one of them.
    console_epoch = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []  # type: ignore[misc]

    class Meta:
        db_table = "users"
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="users_email_unique_ci",
                violation_error_message="A user with this email (in any case) already exists.",
            ),
            # Exactly one of: a tenant's user with a role, or staff without tenant or role.
            models.CheckConstraint(
                condition=(
                    models.Q(tenant__isnull=False, role__isnull=False, is_staff=False)
                    | models.Q(tenant__isnull=True, role__isnull=True, is_staff=True)
                ),
                name="users_tenant_user_or_staff",
                violation_error_message=(
                    "A user belongs to a tenant and has a role, or is staff with neither tenant nor role."
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = (self.email or "").strip().lower()
        if not self._state.adding and not args and kwargs.get("update_fields") is None:
            # The epoch is written by its own UPDATE (accounts.services.user_logout_everywhere): a row read
            # before a logout everywhere and saved after must not bring back the sessions it ended.
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name != "console_epoch"
            ]
        super().save(*args, **kwargs)

    def get_session_auth_hash(self) -> str:
        return self._session_auth_hash(None)

    def get_session_auth_fallback_hash(self) -> Iterator[str]:
        for secret in settings.SECRET_KEY_FALLBACKS:
            yield self._session_auth_hash(secret)

    def _session_auth_hash(self, secret: str | bytes | None) -> str:
        return salted_hmac(
            "accounts.User.session_auth_hash",
            f"{self.password}:{self.console_epoch}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()


class UserSession(models.Model):
    """One login, followed through its refreshes. Its tokens carry its id (`sid`), so ending it
    ends them all; only the refresh token issued last (`refresh_jti`) can be exchanged."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    refresh_jti = models.CharField(max_length=64)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    # Not auto_now_add, which would read the clock again: a new session is last used when it starts.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        db_table = "user_sessions"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "ended_at"], name="user_sessions_user_open")]

    def __str__(self) -> str:
        return f"session {self.id} of {self.user_id}"

    def is_open(self, at: Any = None) -> bool:
        return self.ended_at is None and self.expires_at > (at or timezone.now())
