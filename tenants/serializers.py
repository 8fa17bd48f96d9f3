from rest_framework import serializers

from accounts.serializers import UserSerializer
from config.serializers import JSONObjectField, StrictSerializer
from tenants.models import Tenant
from usage.limits import MAX_LIMIT, tenant_rate_limits


class RateLimitsSerializer(StrictSerializer):
    """A tenant's limits; on input, null means the plan's default."""

    requests_per_minute = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, allow_null=True)
    requests_per_hour = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, allow_null=True)
    requests_per_day = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, allow_null=True)


class TenantSerializer(serializers.ModelSerializer):
    rate_limits = RateLimitsSerializer(required=False)
    settings = JSONObjectField(required=False)

    class Meta:
        model = Tenant
        fields = [
            "id",
            "name",
            "slug",
            "plan",
            "status",
            "settings",
            "rate_limits",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def to_representation(self, tenant: Tenant) -> dict:
        data = super().to_representation(tenant)
        data["rate_limits"] = tenant_rate_limits(tenant).as_dict()
        return data


class AdminUserInputSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=255)
    password = serializers.CharField(max_length=512, trim_whitespace=False, write_only=True)


class TenantCreateSerializer(StrictSerializer, TenantSerializer):
    """Unknown fields are refused, and so is a status other than active: a tenant meant to start
    suspended must not get working credentials because the field was read-only."""

    admin_user = AdminUserInputSerializer(required=False, write_only=True)

    def validate(self, data: dict) -> dict:
        if isinstance(self.initial_data, dict) and self.initial_data.get("status", "active") != "active":
            raise serializers.ValidationError(
                {"status": ["A new tenant is active; suspend it once it is created."]}
            )
        return super().validate(data)

    class Meta(TenantSerializer.Meta):
        fields = [*TenantSerializer.Meta.fields, "admin_user"]
        read_only_fields = [*TenantSerializer.Meta.read_only_fields, "status"]
        # Slug uniqueness is the service's to check: a duplicate is a 409, not a 400. API.md: the plan
        # of a new tenant is not optional.
        extra_kwargs = {"slug": {"validators": []}, "plan": {"required": True}}


class TenantCreatedSerializer(TenantSerializer):
    admin_user = UserSerializer(allow_null=True, read_only=True)

    class Meta(TenantSerializer.Meta):
        fields = [*TenantSerializer.Meta.fields, "admin_user"]


class TenantUpdateSerializer(StrictSerializer, TenantSerializer):
    """Unknown fields are refused; the read-only ones (id, dates) may come back as read."""

    class Meta(TenantSerializer.Meta):
        extra_kwargs = {"slug": {"validators": []}}  # type: ignore[var-annotated]
