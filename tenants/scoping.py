"""The one place that scopes a tenant's objects to the tenant of the request."""

from django.db.models import QuerySet
from rest_framework import viewsets

from accounts.permissions import TenantAccess
from tenants.idempotency import IdempotentPostMixin


class TenantScopedViewSet(IdempotentPostMixin, viewsets.GenericViewSet):
    """Base of every view set under /api/v1/ that serves a tenant's own objects.

    `get_queryset` only ever sees the request's tenant, so another tenant's id is a 404, never a 403.
    POSTs honour Idempotency-Key.
    """

    permission_classes = [TenantAccess]

    def get_queryset(self) -> QuerySet:
        return self.queryset.filter(tenant=self.request.tenant)  # type: ignore[arg-type]
