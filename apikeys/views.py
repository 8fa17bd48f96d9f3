import uuid

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from accounts.permissions import IsPlatformStaff, staff_require
from apikeys import services
from apikeys.models import ApiKey
from apikeys.serializers import (
    ApiKeyAdminCreateSerializer,
    ApiKeyAdminSerializer,
    ApiKeyCreateSerializer,
    ApiKeyRotateSerializer,
    ApiKeySerializer,
    ApiKeyUpdateSerializer,
    ApiKeyWithSecretSerializer,
)
from tenants.scoping import TenantScopedViewSet

UUID_PATTERN = "[0-9a-fA-F-]{36}"


def _created(api_key: ApiKey, secret: str) -> Response:
    return Response(
        ApiKeyWithSecretSerializer(api_key, context={"secret": secret}).data, status=status.HTTP_201_CREATED
    )


@extend_schema(tags=["api keys"])
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's API keys, for its admins and developers only. Keys never manage keys."""

    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    # API.md: "API keys (roles admin, developer)", reading them included, as for users.
    read_roles = write_roles = frozenset({User.Role.ADMIN, User.Role.DEVELOPER})
    api_key_permission = None
    lookup_value_regex = UUID_PATTERN
    idempotency_redact = ("key",)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyWithSecretSerializer})
    def create(self, request: Request) -> Response:
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        api_key, secret = services.api_key_create(
            tenant=request.tenant,
            created_by=request.user,  # type: ignore[arg-type]
            **body.validated_data,
        )
        return _created(api_key, secret)

    @extend_schema(request=ApiKeyUpdateSerializer, responses={200: ApiKeySerializer})
    def partial_update(self, request: Request, pk: str) -> Response:
        api_key = self.get_object()
        body = ApiKeyUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        api_key = services.api_key_update(api_key=api_key, actor=request.user, **body.validated_data)  # type: ignore[arg-type]
        return Response(ApiKeySerializer(api_key).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.api_key_revoke(api_key=self.get_object(), actor=request.user)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ApiKeyRotateSerializer, responses={201: ApiKeyWithSecretSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str) -> Response:
        api_key = self.get_object()
        body = ApiKeyRotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        new_key, secret = services.api_key_rotate(
            api_key=api_key,
            actor=request.user,  # type: ignore[arg-type]
            grace_seconds=body.validated_data["grace_seconds"],
        )
        return _created(new_key, secret)


@extend_schema(tags=["admin: api keys"])
class ApiKeyAdminViewSet(viewsets.GenericViewSet):
    """Staff view and creation of any tenant's keys: /api/admin/api-keys?tenant={id}."""

    queryset = ApiKey.objects.all()
    serializer_class = ApiKeyAdminSerializer
    permission_classes = [IsPlatformStaff]

    def get_queryset(self) -> QuerySet:
        keys = ApiKey.objects.order_by("-created_at")
        tenant = self.request.query_params.get("tenant")
        if tenant:
            if not _is_uuid(tenant):
                raise exceptions.ValidationError({"tenant": ["Must be a tenant id (UUID)."]})
            keys = keys.filter(tenant_id=tenant)
        return keys

    @extend_schema(parameters=[OpenApiParameter("tenant", str, description="A tenant id")])
    def list(self, request: Request) -> Response:
        staff_require(request, "apikeys.view_apikey")
        return Response(ApiKeyAdminSerializer(self.get_queryset(), many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("tenant", str, description="The tenant, if the body names none")],
        request=ApiKeyAdminCreateSerializer,
        responses={201: ApiKeyWithSecretSerializer},
    )
    def create(self, request: Request) -> Response:
        staff_require(request, "apikeys.add_apikey")
        body = ApiKeyAdminCreateSerializer(data=_with_tenant_of_query(request))
        body.is_valid(raise_exception=True)
        api_key, secret = services.api_key_create(created_by=request.user, **body.validated_data)  # type: ignore[arg-type]
        return _created(api_key, secret)


def _with_tenant_of_query(request: Request) -> object:
    """The body, with the tenant of `?tenant=` when the body names none (API.md's form of the URL)."""
    tenant = request.query_params.get("tenant")
    if not tenant or not isinstance(request.data, dict):
        return request.data
    if "tenant" in request.data and _uuid_text(request.data["tenant"]) != _uuid_text(tenant):
        raise exceptions.ValidationError({"tenant": ["The body and the query name different tenants."]})
    return {**request.data, "tenant": tenant}


def _uuid_text(value: object) -> str:
    """One spelling of a UUID (case, dashes, braces); anything else as it is."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
