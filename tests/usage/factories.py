"""Usage rows and invoices for tests."""

import uuid
from datetime import date

from django.utils import timezone

from tenants.models import Tenant
from usage import events
from usage.models import Invoice


def event(tenant, when=None, status=200, endpoint="/api/v1/probe", latency=2.0):
    return {
        "event_id": str(uuid.uuid4()),
        "request_id": str(uuid.uuid4()),
        "tenant_id": str(tenant.id),
        "api_key_id": None,
        "user_id": None,
        "endpoint": endpoint,
        "method": "GET",
        "status_code": status,
        "outcome": events.outcome_of(status),
        "latency_ms": latency,
        "request_size_bytes": 0,
        "response_size_bytes": 10,
        "timestamp": (when or timezone.now()).isoformat(),
    }


def invoice(tenant: Tenant, **fields: object) -> Invoice:
    values = {
        "month": date(2026, 9, 1),
        "plan": "starter",
        "requests": 1,
        "included_requests": 1,
        "overage_requests": 0,
        "base_cents": 4900,
        "overage_cents": 0,
        "total_cents": 4900,
    }
    return Invoice.objects.create(tenant=tenant, **{**values, **fields})
