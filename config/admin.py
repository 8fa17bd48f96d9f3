"""The console's site: its login, counted as the API's, and its front page, the state of the business."""

import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ERROR_FLAG
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from config.exceptions import RateLimitExceeded


class _RefusedLogin(AdminAuthenticationForm):
    """The login form of an attempt refused before its password was checked: the refusal as its error."""

    def __init__(self, request: HttpRequest, *, refusal: str, **kwargs: Any) -> None:
        super().__init__(request, **kwargs)
        self.refusal = refusal

    def clean(self) -> dict[str, Any]:
        raise ValidationError(self.refusal)


class ConsoleSite(admin.AdminSite):
    site_header = "Recommender console"
    site_title = "Recommender console"
    index_title = "Dashboard"
    index_template = "admin/dashboard.html"
    site_url = None  # no "View site" link: the API has no page at its root

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """The console's login counts failures as the API's does (accounts.throttling): staff accounts
        are the ones most worth guessing."""
        from accounts.throttling import login_attempt

        if request.method != "POST":
            return super().login(request, extra_context)
        try:
            with login_attempt(request=request, email=request.POST.get("username", "")) as attempt:
                response = super().login(request, extra_context)
                attempt.failed = not (response.status_code == 302 and request.user.is_authenticated)
            return response
        except RateLimitExceeded as refused:
            form = _RefusedLogin(request, data=request.POST, refusal=str(refused.detail))
            form.is_valid()
            context = {**self.each_context(request), "title": "Log in", "form": form, **(extra_context or {})}
            response = TemplateResponse(
                request, self.login_template or "admin/login.html", context, status=429
            )
            response["Retry-After"] = str(max(1, math.ceil(refused.wait or 1)))
            return response

    def password_change(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        """Django's page; once the password is changed, the user's API sessions end, as after
        `POST /api/v1/auth/password` (Django keeps the console's own session)."""
        from accounts.services import password_change_record
        from tenants.models import AuditEntry

        response = super().password_change(request, extra_context)
        if request.method == "POST" and response.status_code == 302:
            password_change_record(user=request.user, source=AuditEntry.Source.CONSOLE)
        return response

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        from tenants.models import AuditEntry, Tenant
        from usage.models import DailyUsage, UsageLog
        from usage.reports import month_raw_usage_start

        if not request.user.has_perm("tenants.view_tenant"):
            # The business's figures are for the staff roles that may look at tenants.
            return super().index(request, extra_context)
        today = timezone.now().date()
        midnight = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
        live_since = month_raw_usage_start()
        month = DailyUsage.objects.filter(day__gte=today.replace(day=1), day__lt=live_since.date())
        top = {
            row["tenant"]: row["requests"]
            for row in month.values("tenant").annotate(requests=Sum("requests"))
        }
        for row in (
            UsageLog.objects.filter(timestamp__gte=live_since).values("tenant").annotate(requests=Count("id"))
        ):
            top[row["tenant"]] = top.get(row["tenant"], 0) + row["requests"]
        leaders = sorted(top.items(), key=lambda pair: -pair[1])[:5]
        names = dict(Tenant.objects.filter(pk__in=[pk for pk, _ in leaders]).values_list("pk", "name"))
        context = {
            "dashboard": True,
            "tenants_by_status": list(
                Tenant.objects.values("status").annotate(n=Count("pk")).order_by("status")
            ),
            "tenants_by_plan": list(Tenant.objects.values("plan").annotate(n=Count("pk")).order_by("plan")),
            "requests_today": UsageLog.objects.filter(timestamp__gte=midnight).count(),
            "top_tenants": [{"pk": pk, "name": names.get(pk, pk), "requests": n} for pk, n in leaders],
            "recent_audit": AuditEntry.objects.select_related("tenant")[:10]
            if request.user.has_perm("tenants.view_auditentry")
            else [],
            **(extra_context or {}),
        }
        return super().index(request, context)


class SafeAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete widget, which renders a value that is no key of its model (`?tenant=x` on an
    add page, a tampered POST) as nothing selected instead of failing on the query."""

    def optgroups(self, name: str, value: list[str], attr: dict | None = None) -> list:
        key = self.field.remote_field.model._meta.pk
        return super().optgroups(name, [choice for choice in value if _is_key(key, choice)], attr)


def _is_key(field: Any, value: object) -> bool:
    """Whether `value` could be a key of the field: of its type, and within its range."""
    try:
        field.run_validators(field.to_python(value))
    except ValidationError:
        return False
    return True


class ConsoleModelAdmin(admin.ModelAdmin):
    """What every model page of the console does alike: odd input in a URL or a POST is refused as
    such, never a server error, and an object's history is its entries in the audit trail (Django's
    own change log is off: the audit trail records every change)."""

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = SafeAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        key = self.model._meta.pk
        if not all(_is_key(key, value) for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)):
            self.message_user(
                request, "The selection names objects that do not exist; nothing was done.", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        try:
            return super().changelist_view(request, extra_context)
        except (ValueError, OverflowError):
            # A date out of range in the date drill-down (?at__year=99999): Django catches only some.
            if not self.date_hierarchy or not any(
                name.startswith(f"{self.date_hierarchy}__") for name in request.GET
            ):
                raise
            return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        entries = reverse("admin:tenants_auditentry_changelist")
        query = urlencode({"object_type": self.opts.label, "object_id": str(obj.pk)})
        return HttpResponseRedirect(f"{entries}?{query}")
