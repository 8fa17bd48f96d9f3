"""What the OpenAPI schema cannot read off the catalog's serializers by itself."""

from typing import Any

from recommendations.serializers import MAX_BATCH

# Component of each batch body, and its list: 1 to MAX_BATCH elements (a ListSerializer's
# allow_empty and max_length are not in drf-spectacular's schema).
BATCHES = {"ItemBatchRequest": "items", "InteractionBatchRequest": "interactions"}


def batch_limits(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.get("components", {}).get("schemas", {})
    for component, field in BATCHES.items():
        if component in schemas:
            schemas[component]["properties"][field].update(minItems=1, maxItems=MAX_BATCH)
    return result
