from datetime import date

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from config.admin import ConsoleModelAdmin
from tenants.audit import audit_record
from usage.limits import MAX_LIMIT
from usage.models import DailyUsage, Invoice, RateLimit, UsageLog
from usage.services import invoices_generate


class RateLimitForm(forms.ModelForm):
    requests_per_minute = forms.IntegerField(required=False, max_value=MAX_LIMIT)
    requests_per_hour = forms.IntegerField(required=False, max_value=MAX_LIMIT)
    requests_per_day = forms.IntegerField(required=False, max_value=MAX_LIMIT)

    class Meta:
        model = RateLimit
        fields = ("requests_per_minute", "requests_per_hour", "requests_per_day")


class RateLimitInline(admin.StackedInline):
    model = RateLimit
    form = RateLimitForm
    extra = 1
    max_num = 1
    can_delete = False
    fields = ("requests_per_minute", "requests_per_hour", "requests_per_day")
    verbose_name = "Rate limits (empty: the plan's default)"
    verbose_name_plural = verbose_name


class ReadOnlyAdmin(ConsoleModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(UsageLog)
class UsageLogAdmin(ReadOnlyAdmin):
    list_display = (
        "timestamp",
        "tenant",
        "method",
        "endpoint",
        "status_code",
        "outcome",
        "latency_ms",
        "api_key",
    )
    list_filter = ("outcome", "method")
    list_select_related = ("tenant", "api_key")
    search_fields = ("tenant__slug", "endpoint", "request_id")
    show_full_result_count = False  # COUNT(*) over every partition is not worth a page view
    list_per_page = 100


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = (
        "day",
        "tenant",
        "method",
        "endpoint",
        "status_class",
        "requests",
        "errors",
        "rate_limited",
    )
    list_filter = ("status_class", "day")
    list_select_related = ("tenant",)
    search_fields = ("tenant__slug", "endpoint")


class InvoiceRunForm(forms.Form):
    month = forms.DateField(
        input_formats=["%Y-%m"], help_text="YYYY-MM", widget=forms.TextInput(attrs={"placeholder": "2026-10"})
    )

    def clean_month(self) -> date:
        month = self.cleaned_data["month"]
        if month > timezone.now().date():
            raise forms.ValidationError("That month has not begun.")
        return month


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ("month", "tenant", "plan", "requests", "overage_requests", "total", "updated_at")
    list_filter = ("plan", "month")
    list_select_related = ("tenant",)
    search_fields = ("tenant__slug", "tenant__name")
    change_list_template = "admin/usage/invoice/change_list.html"

    def get_urls(self) -> list:
        run = path("run/", self.admin_site.admin_view(self.run_view), name="usage_invoice_run")
        return [run, *super().get_urls()]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # A filter on an amount in the query string would tell it, one yes or no at a time.
        if "_cents" in lookup and not (request and request.user.has_perm("tenants.view_invoice_amounts")):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_fields(self, request: HttpRequest, obj: Invoice | None = None) -> list[str]:
        fields = super().get_fields(request, obj)
        if not request.user.has_perm("tenants.view_invoice_amounts"):
            fields = [field for field in fields if not field.endswith("_cents")]
        return fields

    @admin.display(description="Total", ordering="total_cents")
    def total(self, invoice: Invoice) -> str:
        return invoice.total_amount

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        if request.user.has_perm("tenants.view_invoice_amounts"):
            return self.list_display
        return tuple(field for field in self.list_display if field != "total")

    def run_view(self, request: HttpRequest) -> HttpResponse:
        """Re-runs the billing job for a month (superusers: it is a change of money)."""
        if not request.user.is_superuser:
            raise PermissionDenied
        form = InvoiceRunForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            month = form.cleaned_data["month"]
            count = invoices_generate(month=month)
            audit_record(
                actor=request.user,
                action="invoices.generate",
                source="console",
                object_type="usage.Invoice",
                object_id=f"{month:%Y-%m}",
                after={"invoices": count},
            )
            self.message_user(request, f"{count} invoice(s) made for {month:%Y-%m}.", messages.SUCCESS)
            return redirect("admin:usage_invoice_changelist")
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "opts": self.opts,
            "title": "Run the billing job for a month",
        }
        return TemplateResponse(request, "admin/usage/invoice/run.html", context)
