"""Read-only views of usage for the console: a tenant's recent days and month to date."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from tenants.models import Tenant
from usage.models import BILLABLE, ERRORS, ROLLED_BILLABLE, DailyUsage, UsageLog


@dataclass(frozen=True)
class DayUsage:
    day: date
    requests: int
    errors: int
    billable: int


def raw_usage_start() -> datetime:
    """Where the console stops reading rollups and counts raw rows: yesterday's midnight, as the
    hourly rollup may not yet hold yesterday's last stretch."""
    yesterday = timezone.now().date() - timedelta(days=1)
    return datetime.combine(yesterday, datetime.min.time(), tzinfo=UTC)


def month_raw_usage_start() -> datetime:
    """Where this month's count moves from rollups to raw rows: raw_usage_start(), or the month's
    first midnight on its first day."""
    first = timezone.now().date().replace(day=1)
    return max(raw_usage_start(), datetime.combine(first, datetime.min.time(), tzinfo=UTC))


def usage_recent_days(*, tenant: Tenant, days: int = 30) -> list[DayUsage]:
    """Requests and errors per day: earlier days from the rollups, yesterday and today from the raw rows."""
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    since = raw_usage_start()
    # `billable` first: it sums the fields that the aliases after it shadow.
    rolled = {
        row["day"]: row
        for row in DailyUsage.objects.filter(tenant=tenant, day__gte=first, day__lt=since.date())
        .values("day")
        .annotate(billable=ROLLED_BILLABLE, requests=Sum("requests"), errors=Sum("errors"))
    }
    live = {
        row["day"]: row
        for row in UsageLog.objects.filter(tenant=tenant, timestamp__gte=since)
        .annotate(day=TruncDate("timestamp", tzinfo=UTC))
        .values("day")
        .annotate(
            requests=Count("id"), errors=Count("id", filter=ERRORS), billable=Count("id", filter=BILLABLE)
        )
    }
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row: Mapping[str, Any] = (live if day >= since.date() else rolled).get(day, {})
        result.append(
            DayUsage(
                day=day,
                requests=row.get("requests") or 0,
                errors=row.get("errors") or 0,
                billable=row.get("billable") or 0,
            )
        )
    return result


def usage_month_to_date(*, tenant: Tenant, recent: list[DayUsage]) -> dict:
    today = timezone.now().date()
    this_month = [day for day in recent if day.day >= today.replace(day=1)]
    if len(this_month) < today.day:  # the month began before the recent window
        earlier = DailyUsage.objects.filter(
            tenant=tenant, day__gte=today.replace(day=1), day__lt=recent[0].day
        )
        base = earlier.aggregate(billable=ROLLED_BILLABLE, requests=Sum("requests"), errors=Sum("errors"))
    else:
        base = {}
    requests = (base.get("requests") or 0) + sum(day.requests for day in this_month)
    errors = (base.get("errors") or 0) + sum(day.errors for day in this_month)
    billable = (base.get("billable") or 0) + sum(day.billable for day in this_month)
    included = (settings.PLAN_PRICES.get(tenant.plan) or settings.PLAN_PRICES["starter"])["included_requests"]
    return {
        "requests": requests,
        "errors": errors,
        "billable": billable,
        "included_requests": included,
        # Against what the plan includes: billable requests, as the invoice counts them.
        "percent_of_included": round(100 * billable / included, 1) if included else None,
    }


def usage_chart_svg(days: list[DayUsage], width: int = 720, height: int = 180) -> SafeString:
    """A bar chart of requests per day with errors in red, drawn on the server: no script, no CDN."""
    top = max([day.requests for day in days] + [1])
    bar = width / len(days)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" role="img" '
        f'width="{width}" height="{height + 20}" viewBox="0 0 {width} {height + 20}">'
        f"<title>Requests per day, last {len(days)} days</title>"
    ]
    for index, day in enumerate(days):
        x = index * bar
        total = height * day.requests / top
        errors = height * day.errors / top
        label = escape(f"{day.day:%Y-%m-%d}: {day.requests} requests, {day.errors} errors")
        size = f'x="{x + 1:.1f}" width="{bar - 2:.1f}"'
        parts.append(
            f"<g><title>{label}</title>"
            f'<rect {size} y="{height - total:.1f}" height="{total:.1f}" fill="#417690"/>'
            f'<rect {size} y="{height - errors:.1f}" height="{errors:.1f}" fill="#ba2121"/>'
            "</g>"
        )
    parts.append(f'<text x="0" y="{height + 15}" font-size="11">{days[0].day:%b %d}</text>')
    parts.append(
        f'<text x="{width}" y="{height + 15}" font-size="11" text-anchor="end">{days[-1].day:%b %d}</text>'
    )
    parts.append(f'<text x="{width}" y="11" font-size="11" text-anchor="end">max {top}/day</text>')
    parts.append("</svg>")
    # Every interpolated text is escaped or a number.
    return mark_safe("".join(parts))  # nosec B308 B703
