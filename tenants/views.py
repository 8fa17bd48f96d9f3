from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import IsPlatformStaff, staff_require
from tenants import services
from tenants.models import Tenant
from tenants.serializers import (
    RateLimitsSerializer,
    TenantCreatedSerializer,
    TenantCreateSerializer,
    TenantSerializer,
    TenantUpdateSerializer,
)
from usage.limits import plan_rate_limits, tenant_rate_limits
from usage.serializers import InvoiceSerializer, UsageSummarySerializer
from usage.services import rate_limits_set
from usage.views import USAGE_PARAMETERS, invoices_answer, usage_answer


def _require_for_changes(request: Request, tenant: Tenant, changes: dict) -> None:
    """What each change asks of a staff role: status by its kind, plan and limits their own."""
    edited = {
        name
        for name, value in changes.items()
        if name not in ("status", "rate_limits") and getattr(tenant, name) != value
    }
    if edited:
        staff_require(request, "tenants.change_tenant")
    new_status = changes.get("status", tenant.status)
    if new_status != tenant.status:
        staff_require(request, services.status_change_permission(tenant.status, new_status))
    if changes.get("plan", tenant.plan) != tenant.plan or "rate_limits" in changes:
        staff_require(request, "tenants.change_tenant_plan")


def _limits_changed(tenant: Tenant, wanted: dict[str, int | None], plan: str | None = None) -> dict[str, Any]:
    """The windows a body really changes, as rate_limits_set takes them. A value equal to the one in
    force is left as it is: read and sent back (GET then PUT), the plan's default must not become
    the tenant's own limit and stay behind when the plan changes, in this request or later."""
    current = tenant_rate_limits(tenant).as_dict()
    changed = {field: value for field, value in wanted.items() if value is None or value != current[field]}
    return _own_limits(changed, plan or tenant.plan)


def _own_limits(wanted: dict[str, int | None], plan: str) -> dict[str, int | None]:
    """A value equal to the default of the plan the tenant will be on is that default (null): not
    pinned, it follows the plan."""
    defaults = plan_rate_limits(plan).as_dict()
    return {field: None if value == defaults[field] else value for field, value in wanted.items()}


def _choice_filter(request: Request, name: str, choices: list[str]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in choices:
        raise exceptions.ValidationError({name: [f"Must be one of: {', '.join(choices)}."]})
    return value


@extend_schema(tags=["admin: tenants"])
class TenantAdminViewSet(viewsets.GenericViewSet):
    """Staff view of every tenant: /api/admin/tenants."""

    queryset = Tenant.objects.all()
    serializer_class = TenantSerializer
    permission_classes = [IsPlatformStaff]
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self) -> QuerySet:
        tenants = Tenant.objects.select_related("rate_limit").order_by("name")
        if self.action == "list":
            status_filter = _choice_filter(self.request, "status", Tenant.Status.values)
            plan_filter = _choice_filter(self.request, "plan", Tenant.Plan.values)
            if status_filter:
                tenants = tenants.filter(status=status_filter)
            if plan_filter:
                tenants = tenants.filter(plan=plan_filter)
        return tenants

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=Tenant.Status.values),
            OpenApiParameter("plan", enum=Tenant.Plan.values),
        ]
    )
    def list(self, request: Request) -> Response:
        staff_require(request, "tenants.view_tenant")
        return Response(TenantSerializer(self.get_queryset(), many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        staff_require(request, "tenants.view_tenant")
        return Response(TenantSerializer(self.get_object()).data)

    @extend_schema(request=TenantCreateSerializer, responses={201: TenantCreatedSerializer})
    def create(self, request: Request) -> Response:
        staff_require(request, "tenants.add_tenant")
        body = TenantCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        if "rate_limits" in fields or fields["plan"] != Tenant.Plan.STARTER:
            staff_require(request, "tenants.change_tenant_plan")
        if "rate_limits" in fields:
            fields["rate_limits"] = _own_limits(fields["rate_limits"], fields["plan"])
        tenant, admin_user = services.tenant_create(**fields, actor=request.user)  # type: ignore[arg-type]
        tenant.admin_user = admin_user
        return Response(TenantCreatedSerializer(tenant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TenantUpdateSerializer, responses={200: TenantSerializer})
    def update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=TenantUpdateSerializer, responses={200: TenantSerializer})
    def partial_update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=True)

    def _update(self, request: Request, *, partial: bool) -> Response:
        staff_require(request, "tenants.view_tenant")  # the answer shows the whole tenant
        tenant = self.get_object()
        body = TenantUpdateSerializer(tenant, data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        if "rate_limits" in changes:
            limits = _limits_changed(tenant, changes.pop("rate_limits"), plan=changes.get("plan"))
            if limits:
                changes["rate_limits"] = limits
        _require_for_changes(request, tenant, changes)
        tenant = services.tenant_update(tenant=tenant, actor=request.user, **changes)  # type: ignore[arg-type]
        return Response(TenantSerializer(tenant).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        staff_require(request, "tenants.cancel_tenant")
        services.tenant_cancel(tenant=self.get_object(), actor=request.user)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["GET"], responses={200: RateLimitsSerializer})
    @extend_schema(methods=["PUT"], request=RateLimitsSerializer, responses={200: RateLimitsSerializer})
    @action(detail=True, methods=["get", "put"], url_path="rate-limits")
    def rate_limits(self, request: Request, pk: str) -> Response:
        """The limits in force for the tenant; PUT sets its own (null: back to the plan's default)."""
        tenant = self.get_object()
        if request.method == "GET":
            staff_require(request, "tenants.view_tenant")
            return Response(tenant_rate_limits(tenant).as_dict())
        staff_require(request, "tenants.change_tenant_plan")
        body = RateLimitsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        limits = _limits_changed(tenant, body.validated_data)
        if not limits:
            return Response(tenant_rate_limits(tenant).as_dict())
        return Response(rate_limits_set(tenant=tenant, actor=request.user, **limits).as_dict())

    @extend_schema(parameters=USAGE_PARAMETERS, responses={200: UsageSummarySerializer})
    @action(detail=True, methods=["get"])
    def usage(self, request: Request, pk: str) -> Response:
        """Any tenant's usage, as the tenant sees it at /api/v1/usage."""
        staff_require(request, "tenants.view_tenant")
        return usage_answer(request, str(self.get_object().id))

    @extend_schema(responses={200: InvoiceSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def invoices(self, request: Request, pk: str) -> Response:
        """Amounts are null for staff whose role may not see money."""
        staff_require(request, "usage.view_invoice")
        return invoices_answer(
            str(self.get_object().id), with_amounts=request.user.has_perm("tenants.view_invoice_amounts")
        )
