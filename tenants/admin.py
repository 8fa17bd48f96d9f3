import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import password_validation
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.models import User
from apikeys.admin import ApiKeyInline
from apikeys.models import ApiKey
from config.admin import ConsoleModelAdmin
from config.serializers import json_object_problem
from tenants import services
from tenants.models import AuditEntry, Tenant
from usage.admin import RateLimitInline
from usage.models import DailyUsage, RateLimit, UsageLog
from usage.reports import month_raw_usage_start, usage_chart_svg, usage_month_to_date, usage_recent_days
from usage.services import rate_limits_set

CONSOLE = AuditEntry.Source.CONSOLE


class UserInline(admin.TabularInline):
    """The tenant's users, to look at: a change goes through the user's own page (its link), which
    ends sessions, keeps an admin and writes the audit trail."""

    model = User
    extra = 0
    fields = ("email", "role", "is_active", "last_login", "created_at")
    readonly_fields = fields
    show_change_link = True
    ordering = ("email",)

    def has_add_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False


class SettingsField(forms.JSONField):
    def prepare_value(self, value: Any) -> str:
        shown = super().prepare_value(value)
        try:
            shown.encode()
        except UnicodeEncodeError:  # a lone surrogate sent in (and refused): shown escaped, as sent
            return json.dumps(value, ensure_ascii=True, cls=self.encoder)
        return shown


class TenantForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ("name", "slug", "plan", "settings")
        field_classes = {"settings": SettingsField}

    def clean_settings(self) -> dict:
        settings = self.cleaned_data.get("settings")
        problem = json_object_problem(settings)
        if problem:
            raise forms.ValidationError(problem)
        return settings


class TenantCreateForm(TenantForm):
    """A tenant and, optionally, its first admin user, in one step."""

    admin_email = forms.EmailField(required=False, max_length=255, label="First admin's email")
    admin_password = forms.CharField(
        required=False, widget=forms.PasswordInput, label="First admin's password", strip=False
    )

    def clean(self) -> dict:
        data = super().clean()
        email, password = data.get("admin_email"), data.get("admin_password")
        if bool(email) != bool(password):
            raise forms.ValidationError("Give both the first admin's email and password, or neither.")
        if email and User.objects.filter(email=email.lower()).exists():
            self.add_error("admin_email", "A user with this email already exists.")
        if password:
            try:
                password_validation.validate_password(password, User(email=email))
            except forms.ValidationError as exc:
                self.add_error("admin_password", exc)
        return data


def _status_action(
    target: str, name: str, verb: str, done_verb: str, permission: str
) -> Callable[..., HttpResponse | None]:
    """An action that asks for confirmation first, then goes through the tenants' service; a tenant
    whose change of status the staff role may not make (reactivating a cancelled one) is left as is."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if request.POST.get("confirmed") != "yes":
            context = {
                **modeladmin.admin_site.each_context(request),
                "title": f"{verb.capitalize()} tenants",
                "verb": verb,
                "action": name,
                "tenants": queryset,
                "opts": modeladmin.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/tenants/tenant/confirm_status.html", context)
        done, unchanged, refused = 0, 0, []
        for tenant in queryset:
            if tenant.status == target:
                unchanged += 1
                continue
            if not request.user.has_perm(services.status_change_permission(tenant.status, target)):
                refused.append(tenant.name)
                continue
            services.tenant_status_set(tenant=tenant, status=target, actor=request.user, source=CONSOLE)
            done += 1
        if done:
            modeladmin.message_user(request, f"{done} tenant(s) {done_verb}.", messages.SUCCESS)
        if unchanged:
            modeladmin.message_user(
                request, f"{unchanged} tenant(s) already {target}: unchanged.", messages.INFO
            )
        if refused:
            modeladmin.message_user(
                request,
                f"Your staff role may not {verb} {', '.join(refused)}: only a role that may cancel "
                "tenants may change a cancelled one.",
                messages.ERROR,
            )
        return None

    action.__name__ = name
    action.short_description = f"{verb.capitalize()} the selected tenants"
    action.allowed_permissions = (permission,)
    return action


@admin.register(Tenant)
class TenantAdmin(ConsoleModelAdmin):
    form = TenantForm
    list_display = (
        "name",
        "slug",
        "plan",
        "status",
        "user_count",
        "active_key_count",
        "requests_this_month",
        "last_activity",
    )
    list_filter = ("plan", "status")
    search_fields = ("name", "slug")
    ordering = ("name",)
    readonly_fields = ("id", "status", "created_at", "updated_at")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [RateLimitInline, UserInline, ApiKeyInline]
    actions = [
        _status_action(Tenant.Status.SUSPENDED, "suspend_tenants", "suspend", "suspended", "suspend"),
        _status_action(Tenant.Status.ACTIVE, "activate_tenants", "reactivate", "reactivated", "suspend"),
        _status_action(Tenant.Status.CANCELLED, "cancel_tenants", "cancel", "cancelled", "cancel"),
    ]

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tenants.suspend_tenant")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tenants.cancel_tenant")

    def get_form(
        self, request: HttpRequest, obj: Tenant | None = None, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = TenantCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Tenant | None = None) -> list:
        if obj is None:
            return [
                (None, {"fields": ("name", "slug", "plan", "settings")}),
                ("First admin user (optional)", {"fields": ("admin_email", "admin_password")}),
            ]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> tuple[str, ...]:
        fields = self.readonly_fields
        if obj is not None and not request.user.has_perm("tenants.change_tenant_plan"):
            fields = (*fields, "plan")
        return fields

    def get_inlines(self, request: HttpRequest, obj: Tenant | None) -> list:
        if obj is None:
            return []
        return self.inlines

    def get_inline_instances(self, request: HttpRequest, obj: Tenant | None = None) -> list:
        instances = super().get_inline_instances(request, obj)
        if not request.user.has_perm("tenants.change_tenant_plan"):
            for inline in instances:
                if isinstance(inline, RateLimitInline):
                    inline.has_change_permission = lambda *args, **kwargs: False
                    inline.has_add_permission = lambda *args, **kwargs: False
        return instances

    def save_model(self, request: HttpRequest, obj: Tenant, form: forms.ModelForm, change: bool) -> None:
        if not change:
            admin_user = None
            if form.cleaned_data.get("admin_email"):
                admin_user = {
                    "email": form.cleaned_data["admin_email"],
                    "password": form.cleaned_data["admin_password"],
                }
            tenant, _ = services.tenant_create(
                name=obj.name,
                slug=obj.slug,
                plan=obj.plan,
                settings=obj.settings,
                admin_user=admin_user,
                actor=request.user,
                source=CONSOLE,
            )
            obj.pk = tenant.pk
            return
        changes = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in ("name", "slug", "plan", "settings")
        }
        if changes:
            current = Tenant.objects.get(pk=obj.pk)
            services.tenant_update(tenant=current, actor=request.user, source=CONSOLE, **changes)

    def save_formset(
        self, request: HttpRequest, form: forms.ModelForm, formset: object, change: bool
    ) -> None:
        if formset.model is not RateLimit:
            return super().save_formset(request, form, formset, change)
        # Through the service: it writes the audit trail and drops the cached API keys.
        for inline_form in formset.forms:
            if inline_form.has_changed() and inline_form.is_valid():
                values = {name: inline_form.cleaned_data.get(name) for name in RateLimitInline.fields}
                rate_limits_set(tenant=form.instance, actor=request.user, source=CONSOLE, **values)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        return None

    def log_addition(self, request: HttpRequest, obj: object, message: object) -> None:
        """The services write the audit trail."""

    def log_change(self, request: HttpRequest, obj: object, message: object) -> None:
        """The services write the audit trail."""

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False  # tenants are cancelled, never deleted: their data is kept for billing

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Subqueries, not joins: one query for the whole page, whatever the number of rows.
        month_start = timezone.now().date().replace(day=1)
        live_since = month_raw_usage_start()
        users = (
            User.objects.filter(tenant=OuterRef("pk"), is_active=True)
            .values("tenant")
            .annotate(n=Count("pk"))
            .values("n")
        )
        keys = (
            ApiKey.objects.filter(tenant=OuterRef("pk"), status=ApiKey.Status.ACTIVE)
            .values("tenant")
            .annotate(n=Count("pk"))
            .values("n")
        )
        rolled = (
            DailyUsage.objects.filter(tenant=OuterRef("pk"), day__gte=month_start, day__lt=live_since.date())
            .values("tenant")
            .annotate(n=Sum("requests"))
            .values("n")
        )
        live = (
            UsageLog.objects.filter(tenant=OuterRef("pk"), timestamp__gte=live_since)
            .values("tenant")
            .annotate(n=Count("id"))
            .values("n")
        )
        last = UsageLog.objects.filter(tenant=OuterRef("pk")).order_by("-timestamp").values("timestamp")[:1]
        return (
            super()
            .get_queryset(request)
            .annotate(
                active_users=Coalesce(Subquery(users, output_field=IntegerField()), 0),
                active_keys=Coalesce(Subquery(keys, output_field=IntegerField()), 0),
                month_requests=Coalesce(Subquery(rolled, output_field=IntegerField()), 0)
                + Coalesce(Subquery(live, output_field=IntegerField()), 0),
                last_seen=Subquery(last),
            )
        )

    @admin.display(description="Users", ordering="active_users")
    def user_count(self, tenant: Tenant) -> int:
        return tenant.active_users

    @admin.display(description="Active keys", ordering="active_keys")
    def active_key_count(self, tenant: Tenant) -> int:
        return tenant.active_keys

    @admin.display(description="Requests this month", ordering="month_requests")
    def requests_this_month(self, tenant: Tenant) -> int:
        return tenant.month_requests

    @admin.display(description="Last activity", ordering="last_seen")
    def last_activity(self, tenant: Tenant) -> datetime | None:
        return tenant.last_seen

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        tenant = self.get_object(request, object_id)
        if tenant is not None:
            recent = usage_recent_days(tenant=tenant)
            extra_context = {
                **(extra_context or {}),
                "usage_chart": usage_chart_svg(recent),
                "usage_month": usage_month_to_date(tenant=tenant, recent=recent),
                "invoices": tenant.invoices.order_by("-month")[:12],
                "show_amounts": request.user.has_perm("tenants.view_invoice_amounts"),
            }
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(AuditEntry)
class AuditEntryAdmin(ConsoleModelAdmin):
    list_display = ("at", "actor_email", "source", "action", "object_type", "object_repr", "tenant")
    list_filter = ("source", "action", "object_type")
    search_fields = ("actor_email", "object_repr", "object_id", "tenant__slug")
    list_select_related = ("tenant",)
    readonly_fields = [field.name for field in AuditEntry._meta.fields]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
