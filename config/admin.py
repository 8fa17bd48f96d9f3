"""The console's front page: the state of the business at a glance."""

from datetime import UTC, datetime

from django.contrib import admin
from django.db.models import Count, Sum
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone


class ConsoleSite(admin.AdminSite):
    site_header = "Recommender console"
    site_title = "Recommender console"
    index_title = "Dashboard"
    index_template = "admin/dashboard.html"

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        from tenants.models import AuditEntry, Tenant
        from usage.models import DailyUsage, UsageLog

        if not request.user.has_perm("tenants.view_tenant"):
            # The business's figures are for the staff roles that may look at tenants.
            return super().index(request, extra_context)
        today = timezone.now().date()
        midnight = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
        month = DailyUsage.objects.filter(day__gte=today.replace(day=1), day__lt=today)
        top = {
            row["tenant"]: row["requests"]
            for row in month.values("tenant").annotate(requests=Sum("requests"))
        }
        for row in (
            UsageLog.objects.filter(timestamp__gte=midnight).values("tenant").annotate(requests=Count("id"))
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
