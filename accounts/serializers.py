from rest_framework import serializers

from accounts.models import User, UserSession
from config.serializers import StrictSerializer
from tenants.models import Tenant


class LoginSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=255)
    password = serializers.CharField(max_length=512, trim_whitespace=False)


class RefreshTokenSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096)


class PasswordChangeSerializer(StrictSerializer):
    current_password = serializers.CharField(max_length=512, trim_whitespace=False)
    new_password = serializers.CharField(max_length=512, trim_whitespace=False)


class TenantSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "plan", "status"]


class MeSerializer(serializers.ModelSerializer):
    tenant = TenantSummarySerializer(allow_null=True)

    class Meta:
        model = User
        fields = ["id", "email", "role", "tenant", "is_staff"]


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField(default="bearer")
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")
    user = MeSerializer()


class SessionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField()

    class Meta:
        model = UserSession
        fields = ["id", "created_at", "last_used_at", "ip", "user_agent", "current"]

    def get_current(self, session: UserSession) -> bool:
        return session.id == self.context.get("current_session_id")


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "role", "is_active", "last_login", "created_at", "updated_at"]
        read_only_fields = fields


class UserCreateSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=255)
    password = serializers.CharField(max_length=512, trim_whitespace=False, write_only=True)
    role = serializers.ChoiceField(choices=User.Role.choices)


class UserUpdateSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=255, required=False)
    role = serializers.ChoiceField(choices=User.Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)
