"""Serializer behaviour shared by the apps."""

from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, rather than dropping them: on the endpoints that manage users
    and keys, a caller must not believe a change was made (a password sent to the user PATCH, a
    status or an expiry to the key PATCH) when it was silently ignored."""

    def validate(self, data: Any) -> Any:
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                accepted = ", ".join(name for name, field in self.fields.items() if not field.read_only)
                raise serializers.ValidationError(
                    {name: [f"Unknown field; this endpoint accepts: {accepted}."] for name in unknown}
                )
        return super().validate(data)
