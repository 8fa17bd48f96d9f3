from datetime import datetime
from typing import Any

from rest_framework import serializers

from apikeys.models import ApiKey
from apikeys.services import api_key_expiry_problem
from config.serializers import AwareDateTimeField, StrictSerializer
from tenants.models import Tenant


class ApiKeySerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField(
        source="stops_at",
        allow_null=True,
        help_text="When the key stops working: its expiry, or the end of a rotation's grace period.",
    )

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "permissions", "status", "created_at", "expires_at", "last_used_at"]
        read_only_fields = fields

    def get_status(self, api_key: ApiKey) -> str:
        return api_key.effective_status()


class ApiKeyWithSecretSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(help_text="The full key. It is shown this once and never again.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields

    def get_key(self, api_key: ApiKey) -> str:
        return self.context["secret"]


class PermissionsField(serializers.ListField):
    child = serializers.ChoiceField(choices=ApiKey.Permission.choices)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            "`read`: GET catalog and usage endpoints and POST /recommendations; `write`: all of that, "
            "and item and interaction writes.",
        )
        super().__init__(min_length=1, max_length=2, **kwargs)

    def to_internal_value(self, data: object) -> list[str]:
        values = super().to_internal_value(data)  # type: ignore[arg-type]
        if len(set(values)) != len(values):
            raise serializers.ValidationError("Each permission may appear once.")
        return values


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=128)
    permissions = PermissionsField(required=False, default=["read", "write"])
    expires_at = AwareDateTimeField(required=False, allow_null=True, default=None)

    def validate_expires_at(self, value: datetime | None) -> datetime | None:
        problem = api_key_expiry_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class ApiKeyAdminCreateSerializer(ApiKeyCreateSerializer):
    tenant = serializers.PrimaryKeyRelatedField(queryset=Tenant.objects.all())


class ApiKeyUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=128, required=False)
    permissions = PermissionsField(required=False)


class ApiKeyRotateSerializer(StrictSerializer):
    grace_seconds = serializers.IntegerField(min_value=0, max_value=86400, required=False, default=0)


class ApiKeyAdminSerializer(ApiKeySerializer):
    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "tenant"]
        read_only_fields = fields
