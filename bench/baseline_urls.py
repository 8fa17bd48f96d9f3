import json
import time
import uuid
from datetime import UTC, datetime
from functools import cache

import redis
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from usage.redis_calls import BUCKETS_SCRIPT, redis_call

PAYLOAD = {"id": "item-42", "title": "Trail shoe", "categories": ["running"], "is_active": True}
# What the limiter's script is given for a tenant of three windows, none of them ever refusing here.
WINDOWS = [10**9, 60, 10**9, 3600, 10**9, 86400]


def bare_django(request: HttpRequest) -> JsonResponse:
    return JsonResponse(PAYLOAD)


class BareDrf(APIView):
    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


BUFFER_KEY = "{baseline}:buffer"


@cache
def _redis() -> tuple[redis.Redis, str]:
    client = redis.Redis.from_url(settings.BASELINE_REDIS_URL)
    return client, client.script_load(BUCKETS_SCRIPT)


class DrfRoundTrips(APIView):
    """Baseline B plus the two Redis round trips every API-key request makes, made as the app makes
    them, and nothing else: the limiter's script and the push of a usage event of the same size."""

    def get(self, request: Request) -> Response:
        client, digest = _redis()
        redis_call(client, "EVALSHA", digest, 1, "ratelimit:{baseline}", time.time(), "", 86460, *WINDOWS)
        event = {
            "event_id": str(uuid.uuid4()),
            "request_id": str(uuid.uuid4()),
            "tenant_id": str(uuid.uuid4()),
            "api_key_id": str(uuid.uuid4()),
            "user_id": None,
            "endpoint": "/api/v1/items/{item_id}",
            "method": "GET",
            "status_code": 200,
            "outcome": "ok",
            "latency_ms": 1.0,
            "request_size_bytes": 0,
            "response_size_bytes": 227,
            "timestamp": datetime.now(UTC).isoformat(),
        }
        redis_call(client, "RPUSH", BUFFER_KEY, json.dumps(event, separators=(",", ":")))
        return Response(PAYLOAD)


urlpatterns = [
    path("baseline/django", bare_django),
    path("baseline/drf", BareDrf.as_view()),
    path("baseline/drf-redis", DrfRoundTrips.as_view()),
]
