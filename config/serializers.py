"""Serializer behaviour shared by the apps."""

import math
from collections.abc import Iterator
from itertools import islice
from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

MAX_UNKNOWN_REPORTED = 10

# The JSON types a body's fields take, as sent: DRF would turn 5 into "5", "no" into false, "4" into 4.0.
_JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "Must be true or false."),
    (serializers.IntegerField, (int,), "Must be an integer."),
    (serializers.FloatField, (int, float), "Must be a number."),
    (serializers.CharField, (str,), "Must be a string."),
    (serializers.ChoiceField, (str,), "Must be a string."),
    (serializers.DateTimeField, (str,), "Must be a string: an ISO 8601 time."),
)


def _type_problem(field: serializers.Field, value: object) -> str | None:
    """What is wrong with the JSON type of `value` for `field`, or None (null is the field's to judge)."""
    if value is None:
        return None
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        problems = (_type_problem(field.child, element) for element in value)
        return next((problem for problem in problems if problem), None)
    for kind, types, problem in _JSON_TYPES:
        if isinstance(field, kind):
            right = isinstance(value, types) and (bool in types or not isinstance(value, bool))
            return None if right else problem
    return None


class StrictSerializer(serializers.Serializer):
    """Fields not listed here are refused (400), not ignored; and a field's value must have its JSON
    type (a string for a text, a number for a number, true or false for a flag), not one DRF turns
    into it."""

    # A caller must not believe a change was made (a password sent to the user PATCH, a status to the
    # key PATCH, a misspelt field of an item or a filter) when it was silently dropped, nor that 5 was
    # stored when "5" was.

    def to_internal_value(self, data: Any) -> Any:
        # Here, not in validate(): an element of a batch (a nested serializer) has no initial_data.
        refused: dict[str, list[str]] = {}
        if isinstance(data, dict):
            accepted = ", ".join(name for name, field in self.fields.items() if not field.read_only)
            # The first few, in the caller's order: a body of a million made-up keys must not be
            # answered with a million errors.
            names = islice((name for name in data if name not in self.fields), MAX_UNKNOWN_REPORTED)
            refused = {name: [f"Unknown field; this endpoint accepts: {accepted}."] for name in names}
            for name, field in self.fields.items():
                problem = None if field.read_only or name not in data else _type_problem(field, data[name])
                if problem:
                    refused[name] = [problem]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            # Told at once: a field missing is often the unknown one misspelt.
            if refused and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **refused}) from None
            raise
        if refused:
            raise serializers.ValidationError(refused)
        return value


AWARE_ONLY = "Must be an ISO 8601 time with its zone, as 2025-01-07T10:30:45Z."


class AwareDateTimeField(serializers.DateTimeField):
    """A time with its zone (API.md: "ISO 8601 UTC with a Z"; an offset is converted): a local time
    or a bare date would be read as UTC and shifted silently."""

    def to_internal_value(self, value: Any) -> Any:
        try:
            parsed = parse_datetime(value) if isinstance(value, str) else None
        except ValueError:  # well formed, but no such time (a 13th month): DRF words that below
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            raise serializers.ValidationError(AWARE_ONLY)
        return super().to_internal_value(value)


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


def _json_leaves(value: object) -> Iterator[object]:
    """Every key and scalar of a decoded JSON value, walked without recursion."""
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
        else:
            yield node


def _json_texts(value: object) -> Iterator[str]:
    return (leaf for leaf in _json_leaves(value) if isinstance(leaf, str))


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
    if any(isinstance(leaf, float) and not math.isfinite(leaf) for leaf in _json_leaves(value)):
        return "Must not contain NaN or an infinite number (1e999): JSON has no such numbers."
    return None


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    def to_internal_value(self, data: object) -> dict:
        problem = json_object_problem(data)
        if problem:
            raise serializers.ValidationError(problem)
        return super().to_internal_value(data)  # type: ignore[arg-type,return-value]
