import uuid

from django.db import connection
from django.db.models import QuerySet
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from accounts.permissions import ALL_ROLES
from config.formats import iso_z
from config.schema import ObjectListSchema
from config.sealing import seal, sealing_key, unseal
from recommendations import services
from recommendations.engine import Query
from recommendations.models import Item
from recommendations.serializers import (
    AcceptedSerializer,
    InteractionBatchSerializer,
    InteractionInputSerializer,
    ItemBatchSerializer,
    ItemListQuerySerializer,
    ItemPageSerializer,
    ItemSerializer,
    ItemUpdateSerializer,
    RecommendationRequestSerializer,
    RecommendationResponseSerializer,
    SimilarQuerySerializer,
    SimilarResponseSerializer,
    UpsertResultSerializer,
)
from tenants.scoping import TenantScopedViewSet
from usage.ratelimit import Marks

WRITERS = frozenset({User.Role.ADMIN, User.Role.DEVELOPER})


def _validated(serializer_class: type, data: object, batch_field: str | None = None) -> dict:
    """Validates; a batch's errors are reported by the index of each failing element."""
    body = serializer_class(data=data)
    if body.is_valid():
        return body.validated_data
    errors = dict(body.errors)
    batch_errors = errors.get(batch_field) if batch_field else None
    # Errors of the elements come as a list of one dict per element, numbered here; the field's own
    # (missing, null, not a list, empty, too long) as messages, in a list as for any other field.
    if isinstance(batch_errors, dict) and set(batch_errors) == {"non_field_errors"}:
        errors[batch_field] = batch_errors["non_field_errors"]
    elif isinstance(batch_errors, list) and any(isinstance(error, dict) for error in batch_errors):
        errors[batch_field] = {str(index): error for index, error in enumerate(batch_errors) if error}
    raise exceptions.ValidationError(errors)


def _marks(request: Request) -> Marks | None:
    """The tenant's change marks, when the request's rate-limit round trip read them."""
    return getattr(request._request, "tenant_marks", None)


def item_payload(item: Item | services.ItemRow) -> dict:
    """ItemSerializer's shape, built directly: this is the hot path of catalog reads."""
    return {
        "id": item.external_id,
        "title": item.title,
        "description": item.description,
        "categories": item.categories,
        "metadata": item.metadata,
        "embedding": item.embedding,
        "is_active": item.is_active,
        "created_at": iso_z(item.created_at),
        "updated_at": iso_z(item.updated_at),
    }


# A page's cursor names the last row's key, sealed to the tenant: the row keys are the platform's, and
# their numbers would tell how many items all tenants hold.
def _encode_cursor(tenant_id: uuid.UUID | str, pk: int) -> str:
    return seal(pk.to_bytes(8, "big"), key=sealing_key("item list cursor"), context=str(tenant_id).encode())


def _decode_cursor(tenant_id: uuid.UUID | str, cursor: str) -> int:
    opened = unseal(cursor, key=sealing_key("item list cursor"), context=str(tenant_id).encode())
    if opened is None or len(opened) != 8:
        raise exceptions.ValidationError({"cursor": ["Not a cursor from a previous page."]})
    return int.from_bytes(opened, "big")


def _in_category(items: QuerySet, category: str) -> QuerySet:
    if connection.vendor == "postgresql":
        return items.filter(categories__contains=[category])
    return items.extra(
        where=["EXISTS (SELECT 1 FROM json_each(items.categories) WHERE json_each.value = %s)"],
        params=[category],
    )


@extend_schema(tags=["catalog"])
class ItemViewSet(TenantScopedViewSet):
    """The tenant's catalog, by the tenant's own item ids."""

    queryset = Item.objects.all()
    serializer_class = ItemSerializer
    read_roles = ALL_ROLES
    write_roles = WRITERS
    api_key_permission = "write"
    lookup_field = "external_id"
    lookup_url_kwarg = "item_id"
    lookup_value_regex = "[^/\x00]+"  # no item's id holds a NUL (PostgreSQL text cannot): 404
    schema = ObjectListSchema()

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().defer("content_vector")

    @extend_schema(responses={200: ItemSerializer})
    def retrieve(self, request: Request, item_id: str) -> Response:
        marks = _marks(request)
        item = services.item_read(
            tenant_id=request.tenant.id, item_id=item_id, catalog_mark=marks.catalog if marks else None
        )
        if item is None:
            raise exceptions.NotFound("Not found.")
        return Response(item_payload(item))

    @extend_schema(request=ItemBatchSerializer, responses={200: UpsertResultSerializer})
    def create(self, request: Request) -> Response:
        """Upserts 1 to 1,000 items by id, all or none."""
        batch = _validated(ItemBatchSerializer, request.data, "items")
        created, updated = services.items_upsert(tenant=request.tenant, items=batch["items"])
        return Response({"created": created, "updated": updated})

    @extend_schema(parameters=[ItemListQuerySerializer], responses={200: ItemPageSerializer})
    def list(self, request: Request) -> Response:
        query = _validated(ItemListQuerySerializer, request.query_params)
        items = self.get_queryset().order_by("id")
        if "category" in query:
            items = _in_category(items, query["category"])
        if "cursor" in query:
            items = items.filter(id__gt=_decode_cursor(request.tenant.id, query["cursor"]))
        # Rows, not model instances: a page is built straight from the columns API.md shows.
        page = list(items.values_list("id", *services.ItemRow._fields)[: query["limit"] + 1])
        more = len(page) > query["limit"]
        page = page[: query["limit"]]
        return Response(
            {
                "results": [item_payload(services.ItemRow(*row[1:])) for row in page],
                "next_cursor": _encode_cursor(request.tenant.id, page[-1][0]) if more else None,
            }
        )

    @extend_schema(request=ItemUpdateSerializer, responses={200: ItemSerializer})
    def partial_update(self, request: Request, item_id: str) -> Response:
        item = self.get_object()
        changes = _validated(ItemUpdateSerializer, request.data)
        if changes.pop("id", item.external_id) != item.external_id:
            raise exceptions.ValidationError({"id": ["An item's id cannot be changed: it is the URL's."]})
        return Response(item_payload(services.item_update(item=item, **changes)))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, item_id: str) -> Response:
        services.item_delete(item=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[SimilarQuerySerializer], responses={200: SimilarResponseSerializer})
    @action(detail=True, methods=["get"])
    def similar(self, request: Request, item_id: str) -> Response:
        query = _validated(SimilarQuerySerializer, request.query_params)
        similar = services.similar_items_get(
            tenant=request.tenant, item_id=item_id, count=query["count"], marks=_marks(request)
        )
        return Response(
            {"item_id": item_id, "similar": [{"item_id": s.item_id, "score": s.score} for s in similar]}
        )


@extend_schema(tags=["catalog"])
class InteractionViewSet(TenantScopedViewSet):
    queryset = Item.objects.none()
    serializer_class = InteractionInputSerializer  # what OPTIONS describes
    read_roles = ALL_ROLES
    write_roles = WRITERS
    api_key_permission = "write"

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="InteractionWrite",
            serializers=[InteractionInputSerializer, InteractionBatchSerializer],
            resource_type_field_name=None,
        ),
        responses={202: AcceptedSerializer},
    )
    def create(self, request: Request) -> Response:
        """One interaction, or {"interactions": [...]} (1 to 1,000); an unknown item refuses them all."""
        batch = isinstance(request.data, dict) and "interactions" in request.data
        if batch:
            interactions = _validated(InteractionBatchSerializer, request.data, "interactions")[
                "interactions"
            ]
        else:
            interactions = [_validated(InteractionInputSerializer, request.data)]
        try:
            accepted = services.interactions_record(tenant=request.tenant, interactions=interactions)
        except exceptions.ValidationError as exc:
            elements = exc.detail.get("interactions") if isinstance(exc.detail, dict) else None
            if batch or not isinstance(elements, dict):
                raise
            # The one interaction of the single form is reported as it was sent, not as element 0.
            raise exceptions.ValidationError(elements["0"]) from None
        return Response({"accepted": accepted}, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["recommendations"])
class RecommendationViewSet(TenantScopedViewSet):
    queryset = Item.objects.none()
    serializer_class = RecommendationRequestSerializer  # what OPTIONS describes
    read_roles = write_roles = ALL_ROLES  # asking for recommendations is a read, for viewers too
    api_key_permission = "read"

    @extend_schema(request=RecommendationRequestSerializer, responses={200: RecommendationResponseSerializer})
    def create(self, request: Request) -> Response:
        body = _validated(RecommendationRequestSerializer, request.data)
        filters = body.get("filters") or {}
        query = Query(
            user_id=body["user_id"],
            count=body["count"],
            categories=tuple(filters.get("categories", ())),
            exclude_item_ids=tuple(filters.get("exclude_item_ids", ())),
            exclude_seen=body["exclude_seen"],
        )
        answer = services.recommendations_get(tenant=request.tenant, query=query, marks=_marks(request))
        return Response(
            {
                "user_id": query.user_id,
                "recommendations": [
                    {"item_id": s.item_id, "score": s.score, "title": s.title} for s in answer.items
                ],
                "strategy": answer.strategy,
                "request_id": request.request_id,
            }
        )
