"""Serializer behaviour shared by the apps."""

from collections.abc import Iterator
from itertools import islice
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

MAX_UNKNOWN_REPORTED = 10


class StrictSerializer(serializers.Serializer):
    """Fields not listed here are refused (400), not ignored."""

    # A caller must not believe a change was made (a password sent to the user PATCH, a status to the
    # key PATCH, a misspelt field of an item or a filter) when it was silently dropped.

    def to_internal_value(self, data: Any) -> Any:
        # Here, not in validate(): an element of a batch (a nested serializer) has no initial_data.
        unknown = {}
        if isinstance(data, dict):
            accepted = ", ".join(name for name, field in self.fields.items() if not field.read_only)
            # The first few, in the caller's order: a body of a million made-up keys must not be
            # answered with a million errors.
            names = islice((name for name in data if name not in self.fields), MAX_UNKNOWN_REPORTED)
            unknown = {name: [f"Unknown field; this endpoint accepts: {accepted}."] for name in names}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            # Both told at once: a field missing is often the unknown one misspelt.
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


# Deeper than any sensible document, far from the recursion limit that deeper ones would reach (the
# encoder that checks them, the database adapter): a 400, not a crash.
MAX_JSON_DEPTH = 32


def json_depth(value: object) -> int:
    """How deep objects and arrays nest in a decoded JSON value, counted without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _json_texts(value: object) -> Iterator[str]:
    """Every key and text of a decoded JSON value, walked without recursion."""
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


def json_has_nul(value: object) -> bool:
    """Whether a key or a text anywhere in a decoded JSON value holds a NUL (PostgreSQL's jsonb
    cannot store one)."""
    return any("\x00" in text for text in _json_texts(value))


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON's \ud800 escapes can spell
        return False
    return True


def json_object_problem(value: object) -> str | None:
    """What makes `value` unfit for a free-form JSON object (an item's metadata, a tenant's
    settings), or None: it must be an object, nested at most MAX_JSON_DEPTH, of texts PostgreSQL can
    store (no NUL, no lone surrogate)."""
    if not isinstance(value, dict):
        return "Must be a JSON object."
    if json_depth(value) > MAX_JSON_DEPTH:
        return f"Must not nest deeper than {MAX_JSON_DEPTH} levels."
    if json_has_nul(value):
        return "Must not contain the NUL character (\\u0000)."
    if not all(_is_unicode(text) for text in _json_texts(value)):
        return "Must not contain a lone surrogate (\\ud800-\\udfff): it is not a character."
    return None


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    def to_internal_value(self, data: object) -> dict:
        problem = json_object_problem(data)
        if problem:
            raise serializers.ValidationError(problem)
        return super().to_internal_value(data)  # type: ignore[arg-type,return-value]
