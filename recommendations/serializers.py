import math
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from config.serializers import AwareDateTimeField, JSONObjectField, StrictSerializer
from recommendations import vectors
from recommendations.models import Interaction, Item

MAX_BATCH = 1000
MAX_EMBEDDING = 4096


class ExternalIdField(serializers.CharField):
    """A tenant's own id (1-255 characters). Item ids are path segments (/items/{item_id}), so they
    may not hold a '/'; end users' ids never are, so theirs may."""

    def __init__(self, *, in_paths: bool = True, **kwargs: Any) -> None:
        self.in_paths = in_paths
        if in_paths:
            kwargs.setdefault("help_text", "The tenant's own id, without '/' (a segment of the item's URL).")
        super().__init__(min_length=1, max_length=255, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.")
        if self.in_paths and "/" in data:
            raise serializers.ValidationError("Must not contain '/' (it is a part of the item's URL).")
        if any(ord(char) < 32 for char in data):
            raise serializers.ValidationError("Must not contain control characters (U+0000 to U+001F).")
        return super().to_internal_value(data)


class CategoriesField(serializers.ListField):
    child = serializers.CharField(min_length=1, max_length=100)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=50, **kwargs)


class EmbeddingField(serializers.ListField):
    child = serializers.FloatField()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_length=1, max_length=MAX_EMBEDDING, allow_null=True, **kwargs)

    def to_internal_value(self, data: object) -> list[float]:
        values = super().to_internal_value(data)  # type: ignore[arg-type]
        # The engine holds vectors as 32-bit floats: a larger value would become infinity there, and
        # NaN in every product with it.
        if not all(math.isfinite(value) and abs(value) <= vectors.FLOAT32_MAX for value in values):
            raise serializers.ValidationError(f"Must hold finite numbers within ±{vectors.FLOAT32_MAX:.4g}.")
        return values


class ItemInputSerializer(StrictSerializer):
    id = ExternalIdField()
    title = serializers.CharField(max_length=500)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")
    categories = CategoriesField(required=False, default=list)
    metadata = JSONObjectField(required=False, default=dict)
    embedding = EmbeddingField(required=False, default=None)
    is_active = serializers.BooleanField(required=False, default=True)


class ItemBatchSerializer(StrictSerializer):
    items = ItemInputSerializer(many=True, allow_empty=False, max_length=MAX_BATCH)  # type: ignore[call-arg]

    def validate_items(self, items: list[dict]) -> list[dict]:
        first_seen: dict[str, int] = {}
        for index, item in enumerate(items):
            if item["id"] in first_seen:
                raise serializers.ValidationError(
                    {str(index): {"id": [f"Duplicate of item {first_seen[item['id']]} in this batch."]}}
                )
            first_seen[item["id"]] = index
        return items


class ItemUpdateSerializer(StrictSerializer):
    # An item as read may be sent back: its id must be the URL's (an id is never changed), and the two
    # times, which the server keeps, are not looked at.
    id = serializers.CharField(
        required=False, trim_whitespace=False, help_text="If sent, the item's own id: it cannot be changed."
    )
    created_at = serializers.CharField(read_only=True)
    updated_at = serializers.CharField(read_only=True)
    title = serializers.CharField(max_length=500, required=False)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    categories = CategoriesField(required=False)
    metadata = JSONObjectField(required=False)
    embedding = EmbeddingField(required=False)
    is_active = serializers.BooleanField(required=False)


class ItemSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="external_id")
    categories = serializers.ListField(child=serializers.CharField())
    metadata = serializers.DictField()
    embedding = serializers.ListField(child=serializers.FloatField(), allow_null=True)

    class Meta:
        model = Item
        fields = [
            "id",
            "title",
            "description",
            "categories",
            "metadata",
            "embedding",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ItemPageSerializer(serializers.Serializer):
    results = ItemSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class ItemListQuerySerializer(serializers.Serializer):
    category = serializers.CharField(required=False, max_length=100)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    cursor = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,100}$",
        required=False,
        help_text="The next_cursor of the previous page.",
        error_messages={"invalid": "Not a cursor from a previous page."},
    )


class UpsertResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


class InteractionInputSerializer(StrictSerializer):
    user_id = ExternalIdField(in_paths=False)
    item_id = ExternalIdField()
    type = serializers.ChoiceField(choices=Interaction.Type.choices)
    value = serializers.FloatField(required=False, allow_null=True, default=None)
    timestamp = AwareDateTimeField(required=False, allow_null=True, default=None)

    def validate_value(self, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise serializers.ValidationError("Must be a finite number.")
        return value

    def validate_timestamp(self, value: object) -> object:
        if value is not None and value > timezone.now() + timedelta(minutes=5):  # type: ignore[operator]
            raise serializers.ValidationError("Must not be in the future.")
        return value

    def validate(self, data: dict) -> dict:
        if data["type"] == "rating" and data.get("value") is None:
            raise serializers.ValidationError({"value": ["A rating needs a value."]})
        return data


class InteractionBatchSerializer(StrictSerializer):
    interactions = InteractionInputSerializer(many=True, allow_empty=False, max_length=MAX_BATCH)  # type: ignore[call-arg]


class AcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()


class RecommendationFiltersSerializer(StrictSerializer):
    categories = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=50
    )
    exclude_item_ids = serializers.ListField(
        child=ExternalIdField(), required=False, default=list, max_length=1000
    )


class RecommendationRequestSerializer(StrictSerializer):
    user_id = ExternalIdField(in_paths=False)
    count = serializers.IntegerField(min_value=1, max_value=100, default=10)
    filters = RecommendationFiltersSerializer(required=False)
    exclude_seen = serializers.BooleanField(default=True)


class RecommendedItemSerializer(serializers.Serializer):
    item_id = serializers.CharField()
    score = serializers.FloatField()
    title = serializers.CharField()


class RecommendationResponseSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    recommendations = RecommendedItemSerializer(many=True)
    strategy = serializers.CharField(
        help_text="How the list was made: personalized, remote, popular, newest, joined by '+' when "
        "filled up; 'none' when no item qualifies (an empty catalog, filters nothing passes): the list "
        "is empty; 'fallback:' before it when the ML engine failed and the built-in engine answered."
    )
    request_id = serializers.CharField()


class SimilarQuerySerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=100, default=10)


class SimilarItemSerializer(serializers.Serializer):
    item_id = serializers.CharField()
    score = serializers.FloatField()


class SimilarResponseSerializer(serializers.Serializer):
    item_id = serializers.CharField()
    similar = SimilarItemSerializer(many=True)
