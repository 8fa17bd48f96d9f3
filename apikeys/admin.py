from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from apikeys import services
from apikeys.models import ApiKey
from config.admin import ConsoleModelAdmin
from config.exceptions import Conflict
from tenants.models import Tenant


class ApiKeyCreateForm(forms.ModelForm):
    permissions = forms.MultipleChoiceField(
        choices=ApiKey.Permission.choices, widget=forms.CheckboxSelectMultiple, initial=["read", "write"]
    )

    class Meta:
        model = ApiKey
        fields = ("tenant", "name", "permissions", "expires_at")

    def clean_tenant(self) -> Tenant:
        tenant = self.cleaned_data["tenant"]
        if tenant.status == Tenant.Status.CANCELLED:
            raise forms.ValidationError(services.CANCELLED_TENANT_KEY)
        return tenant

    def clean_expires_at(self) -> datetime | None:
        expires_at = self.cleaned_data.get("expires_at")
        problem = services.api_key_expiry_problem(expires_at)
        if problem:
            raise forms.ValidationError(problem)
        return expires_at


@admin.register(ApiKey)
class ApiKeyAdmin(ConsoleModelAdmin):
    list_display = (
        "prefix",
        "name",
        "tenant",
        "shown_status",
        "permissions",
        "last_used_at",
        "created_at",
        "expires_at",
    )
    list_filter = ("status",)
    list_select_related = ("tenant",)
    search_fields = ("prefix", "name", "tenant__name", "tenant__slug")
    ordering = ("-created_at",)
    autocomplete_fields = ("tenant",)
    actions = ["revoke_keys", "rotate_keys"]
    readonly_fields = (
        "id",
        "tenant",
        "prefix",
        "permissions",
        "shown_status",
        "created_by",
        "created_at",
        "expires_at",
        "revokes_at",
        "revoked_at",
        "rotated_from",
        "last_used_at",
    )
    fields = ("name", *readonly_fields)

    def get_form(
        self, request: HttpRequest, obj: ApiKey | None = None, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
            kwargs["fields"] = ApiKeyCreateForm.Meta.fields
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # A key that no longer works is not changed, here as in the API (409).
        return self.readonly_fields if obj.is_usable() else ("name", *self.readonly_fields)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        return self.fields if obj is not None else ApiKeyCreateForm.Meta.fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            current = ApiKey.objects.get(pk=obj.pk)
            name = form.cleaned_data.get("name", current.name)
            try:
                if name == current.name:
                    raise Conflict("Nothing was changed.")
                services.api_key_update(api_key=current, actor=request.user, name=name, source="console")
            except Conflict as refused:  # nothing to change, or revoked or expired since the page was shown
                request.api_key_unchanged = str(refused.detail)
            return
        api_key, secret = services.api_key_create(
            tenant=form.cleaned_data["tenant"],
            name=form.cleaned_data["name"],
            permissions=form.cleaned_data["permissions"],
            expires_at=form.cleaned_data["expires_at"],
            created_by=request.user,
            source="console",
        )
        obj.pk = api_key.pk
        request.new_api_key = (api_key, secret)

    def message_user(self, request: HttpRequest, message: str, *args: Any, **kwargs: Any) -> None:
        """Instead of Django's "changed successfully" after a save that changed nothing, what happened."""
        unchanged = getattr(request, "api_key_unchanged", None)
        if unchanged is None:
            super().message_user(request, message, *args, **kwargs)
        elif unchanged:
            super().message_user(request, unchanged, messages.WARNING)
            request.api_key_unchanged = ""

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        """Shows the secret on this one page, never stored, not even in a message cookie."""
        return self._show_secrets(request, [request.new_api_key], "API key created")

    def _show_secrets(self, request: HttpRequest, keys: list[tuple[ApiKey, str]], title: str) -> HttpResponse:
        context = {**self.admin_site.each_context(request), "keys": keys, "opts": self.opts, "title": title}
        return TemplateResponse(request, "admin/apikeys/apikey/created.html", context)

    def log_addition(self, request: HttpRequest, obj: ApiKey, message: object) -> None:
        """The service already wrote the audit entry."""

    def log_change(self, request: HttpRequest, obj: ApiKey, message: object) -> None:
        """The service already wrote the audit entry."""

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # keys are revoked, never deleted: usage history points at them

    @admin.display(description="Status")
    def shown_status(self, api_key: ApiKey) -> str:
        return api_key.effective_status()

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = 0
        for api_key in queryset:
            if api_key.status != ApiKey.Status.REVOKED:
                services.api_key_revoke(api_key=api_key, actor=request.user, source="console")
                revoked += 1
        if revoked:
            self.message_user(request, f"{revoked} key(s) revoked.", messages.SUCCESS)
        if revoked < len(queryset):
            self.message_user(
                request, f"{len(queryset) - revoked} key(s) already revoked: unchanged.", messages.INFO
            )

    @admin.action(description="Rotate the selected API keys (old keys stop at once)", permissions=["change"])
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        rotated = []
        for api_key in queryset:
            try:
                rotated.append(services.api_key_rotate(api_key=api_key, actor=request.user, source="console"))
            except Conflict as exc:
                self.message_user(request, f"{api_key}: {exc.detail}", messages.ERROR)
        return self._show_secrets(request, rotated, "API keys rotated")


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("prefix", "name", "permissions", "status", "last_used_at", "created_at", "expires_at")
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
