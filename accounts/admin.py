from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from accounts.models import User, UserSession
from accounts.services import (
    LAST_ADMIN,
    USER_FIELDS,
    password_reset_record,
    sessions_end_all,
    tenant_admins_lock,
    user_change_keeps_an_admin,
    user_force_logout,
)
from config.admin import ConsoleModelAdmin
from tenants.audit import audit_record, snapshot
from tenants.models import AuditEntry

CONSOLE = AuditEntry.Source.CONSOLE


class UserCreateForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "tenant", "role", "is_staff")


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean(self) -> dict:
        data = super().clean() or {}
        if "tenant" in self.errors or "role" in self.errors:
            return data  # their own errors first
        # The rule of the API's user_update, on the stored user; a move to another tenant takes the
        # admin away from the first one, as a change of role would.
        # The admin saves in the transaction this runs in: the tenant stays locked until then.
        tenant_admins_lock(self.instance.tenant_id)
        stored = User.objects.get(pk=self.instance.pk)
        tenant = data.get("tenant")
        moved = (tenant.pk if tenant is not None else None) != stored.tenant_id
        role = User.Role.VIEWER if moved else (data.get("role") or User.Role.VIEWER)
        if not user_change_keeps_an_admin(user=stored, role=role, is_active=bool(data.get("is_active"))):
            raise forms.ValidationError(LAST_ADMIN)
        if data.get("is_superuser") and not data.get("is_staff"):
            raise forms.ValidationError("Only staff can be superusers: a tenant's user has its role.")
        return data


class SessionInline(admin.TabularInline):
    model = UserSession
    extra = 0
    can_delete = False
    fields = ("created_at", "last_used_at", "ip", "user_agent", "expires_at", "ended_at", "end_reason")
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(ConsoleModelAdmin, DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreateForm
    list_display = ("email", "tenant", "role", "is_active", "is_staff", "last_login", "created_at")
    list_filter = ("role", "is_active", "is_staff")
    list_select_related = ("tenant",)
    search_fields = ("email", "tenant__name", "tenant__slug")
    ordering = ("email",)
    autocomplete_fields = ("tenant",)
    readonly_fields = ("last_login", "created_at", "updated_at")
    inlines = [SessionInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Tenant", {"fields": ("tenant", "role")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "created_at", "updated_at")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "tenant", "role", "is_staff", "password1", "password2"),
            },
        ),
    )
    actions = ["force_logout"]

    def save_model(self, request: HttpRequest, obj: User, form: forms.ModelForm, change: bool) -> None:
        stored = User.objects.get(pk=obj.pk) if change else None
        before = snapshot(stored, USER_FIELDS) if stored is not None else None
        super().save_model(request, obj, form, change)
        if stored is not None and not obj.is_active:
            sessions_end_all(user=obj, reason="deactivated")
        elif stored is not None and stored.tenant_id != obj.tenant_id:
            # Its tokens were issued for the tenant it left.
            sessions_end_all(user=obj, reason="moved")
        after = snapshot(obj, USER_FIELDS)
        if before != after:
            audit_record(
                actor=request.user,
                action="user.update" if change else "user.create",
                obj=obj,
                source=CONSOLE,
                tenant=obj.tenant,
                before=before,
                after=after,
            )

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        """Groups and permissions are saved here, after save_model: their changes are audited here."""
        user = form.instance
        before = user_grants(user)
        super().save_related(request, form, formsets, change)
        after = user_grants(user)
        if after != before:
            audit_record(
                actor=request.user,
                action="user.grants",
                obj=user,
                source=CONSOLE,
                tenant=user.tenant,
                before=before,
                after=after,
            )

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Django's password reset page; once it succeeds, every session of the user ends."""
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = User.objects.get(pk=id)
            password_reset_record(user=user, actor=request.user, source=CONSOLE)
            if user.pk == request.user.pk:
                # As Django's own page does for one's own password: the session that changed it stays.
                update_session_auth_hash(request, user)
        return response

    @admin.action(description="Force logout everywhere (end every session)", permissions=["change"])
    def force_logout(self, request: HttpRequest, queryset: QuerySet) -> None:
        for user in queryset:
            user_force_logout(user=user, actor=request.user, source=CONSOLE)
        self.message_user(request, f"Every session of {queryset.count()} user(s) ended.", messages.SUCCESS)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        """Users are deactivated (is_active), never deleted: their rows carry the audit trail, and a
        tenant keeps an active admin (as DELETE /api/v1/users/{id} does)."""
        return False

    def log_addition(self, request: HttpRequest, obj: object, message: object) -> None:
        """save_model writes the audit trail."""

    def log_change(self, request: HttpRequest, obj: object, message: object) -> None:
        """save_model writes the audit trail."""


def user_grants(user: User) -> dict[str, list[str]]:
    return {
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "permissions": permission_names(user.user_permissions.all()),
    }


def permission_names(permissions: QuerySet) -> list[str]:
    pairs = permissions.values_list("content_type__app_label", "codename")
    return sorted(f"{app}.{codename}" for app, codename in pairs)


admin.site.unregister(Group)


@admin.register(Group)
class AuditedGroupAdmin(ConsoleModelAdmin, GroupAdmin):
    """Django's group page, with every change of a group's name or permissions in the audit trail."""

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        group = form.instance
        # The permissions are saved here, after the name: the form still holds the name it was shown.
        before = {"name": form.initial["name"], **group_grants(group)} if change else None
        super().save_related(request, form, formsets, change)
        after = {"name": group.name, **group_grants(group)}
        if after != before:
            audit_record(
                actor=request.user,
                action="group.update" if change else "group.create",
                obj=group,
                source=CONSOLE,
                before=before,
                after=after,
            )

    def delete_model(self, request: HttpRequest, obj: Group) -> None:
        self.delete_queryset(request, Group.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        gone = [(group.pk, {"name": group.name, **group_grants(group)}) for group in queryset]
        super().delete_queryset(request, queryset)
        for pk, before in gone:
            audit_record(
                actor=request.user,
                action="group.delete",
                source=CONSOLE,
                object_type=Group._meta.label,
                object_id=str(pk),
                before=before,
            )

    def log_addition(self, request: HttpRequest, obj: object, message: object) -> None:
        """save_related writes the audit trail."""

    def log_change(self, request: HttpRequest, obj: object, message: object) -> None:
        """save_related writes the audit trail."""

    def log_deletions(self, request: HttpRequest, queryset: QuerySet) -> None:
        """delete_queryset writes the audit trail."""


def group_grants(group: Group) -> dict[str, list[str]]:
    return {"permissions": permission_names(group.permissions.all())}
