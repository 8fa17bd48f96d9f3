from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import TenantAccess
from config.schema import ObjectListSchema
from usage.models import Invoice
from usage.serializers import InvoiceSerializer, UsageQuerySerializer, UsageSummarySerializer
from usage.services import usage_summary

USAGE_PARAMETERS = [
    OpenApiParameter(
        "start",
        str,
        description="ISO 8601 date or time (UTC); default: start of this month, or with only `end` of "
        "the month `end` closes, not before the first day whose requests are kept",
    ),
    OpenApiParameter(
        "end", str, description="ISO 8601 date or time (UTC), exclusive; default: a month after start"
    ),
    OpenApiParameter("granularity", enum=["hour", "day"], description="Series buckets; default: day"),
]


def usage_answer(request: Request, tenant_id: str) -> Response:
    query = UsageQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return Response(UsageSummarySerializer(usage_summary(tenant_id=tenant_id, **query.validated_data)).data)


MONEY_FIELDS = ("base_cents", "overage_cents", "total_cents")


def invoices_answer(tenant_id: str, with_amounts: bool = True) -> Response:
    """The tenant's invoices, newest first; without amounts (null) for staff who may not see money."""
    invoices = InvoiceSerializer(
        Invoice.objects.filter(tenant_id=tenant_id).order_by("-month"), many=True
    ).data
    if not with_amounts:
        invoices = [{**invoice, **dict.fromkeys(MONEY_FIELDS)} for invoice in invoices]  # type: ignore[assignment]
    return Response(invoices)


@extend_schema(tags=["usage"])
class UsageViewSet(viewsets.ViewSet):
    """The tenant's own usage, for its users and, read-only, its API keys."""

    permission_classes = [TenantAccess]
    api_key_permission = "read"
    schema = ObjectListSchema()

    @extend_schema(parameters=USAGE_PARAMETERS, responses={200: UsageSummarySerializer})
    def list(self, request: Request) -> Response:
        return usage_answer(request, str(request.tenant.id))

    @extend_schema(responses={200: InvoiceSerializer(many=True)})
    @action(detail=False, methods=["get"])
    def invoices(self, request: Request) -> Response:
        return invoices_answer(str(request.tenant.id))
