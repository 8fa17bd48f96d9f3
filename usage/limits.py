"""The rate limits that apply to a tenant: its own row where set, else its plan's defaults."""

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist

from tenants.models import Tenant

# The largest limit a tenant may be given (the API's and the console's bound): within a PostgreSQL integer.
MAX_LIMIT = 2_000_000_000
WINDOWS = (
    ("minute", "requests_per_minute", 60),
    ("hour", "requests_per_hour", 3600),
    ("day", "requests_per_day", 86400),
)


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int
    requests_per_hour: int
    requests_per_day: int

    def as_dict(self) -> dict[str, int]:
        return {field: getattr(self, field) for _, field, _ in WINDOWS}


def plan_rate_limits(plan: str) -> Limits:
    plans: dict[str, dict[str, int | None]] = settings.PLANS  # type: ignore[assignment]
    defaults = plans.get(plan) or plans["starter"]
    values = {field: defaults.get(field) for _, field, _ in WINDOWS}
    if values["requests_per_minute"] is None:
        values["requests_per_minute"] = settings.DEFAULT_RATE_LIMIT_PER_MINUTE
    return Limits(**values)  # type: ignore[arg-type]


def tenant_rate_limits(tenant: Tenant) -> Limits:
    """Needs `tenant.rate_limit` loaded (select_related) to cost no query."""
    limits = plan_rate_limits(tenant.plan)
    try:
        override = tenant.rate_limit
    except ObjectDoesNotExist:
        return limits
    return Limits(**{field: getattr(override, field) or getattr(limits, field) for _, field, _ in WINDOWS})
