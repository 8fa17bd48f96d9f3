from datetime import timedelta

from django.utils import timezone

from tests.conftest import external_assets
from tests.usage.factories import event, invoice
from usage import events
from usage.models import DailyUsage


def rolled_up(tenant, days_back, status_class, requests, **counts):
    DailyUsage.objects.create(
        tenant=tenant,
        day=timezone.now().date() - timedelta(days=days_back),
        endpoint="/api/v1/probe",
        method="GET",
        status_class=status_class,
        requests=requests,
        **counts,
    )


def test_the_tenant_page_shows_usage_chart_month_totals_and_invoices(console, world):
    today = timezone.now().date()
    rolled_up(world.tenant, 3, "2xx", 40)
    rolled_up(world.tenant, 3, "4xx", 5, rate_limited=5)  # throttled: counted, not billed
    rolled_up(world.tenant, 45, "2xx", 999)
    events.usage_rows_insert(
        [event(world.tenant), event(world.tenant, status=500), event(world.other_tenant)]
    )
    invoice(
        world.tenant, requests=12, included_requests=10, overage_requests=2, overage_cents=1, total_cents=4901
    )
    page = console.get(f"/admin/tenants/tenant/{world.tenant.id}/change/").content.decode()
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart"' in page
    assert f"{today:%Y-%m-%d}: 2 requests, 1 errors" in page
    assert f"{today - timedelta(days=3):%Y-%m-%d}: 45 requests, 0 errors" in page
    assert "999 requests" not in page  # older than the 30 days shown
    same_month = (today - timedelta(days=3)).month == today.month
    expected = 2 + (45 if same_month else 0)
    assert f"Month to date: <strong>{expected}</strong> requests" in page
    # Billed as the invoice counts: neither our 500 nor the throttled requests.
    billable = 1 + (40 if same_month else 0)
    assert f"{billable} billable of" in page
    assert "2026-09" in page and "49.01 USD" in page
    assert external_assets(page) == []


def test_usage_and_invoices_have_read_only_lists(console, world):
    events.usage_rows_insert([event(world.tenant)])
    invoice(world.tenant)
    for model in ("usagelog", "dailyusage", "invoice"):
        assert console.get(f"/admin/usage/{model}/").status_code == 200
        assert console.get(f"/admin/usage/{model}/add/").status_code == 403
    assert "49.00 USD" in console.get("/admin/usage/invoice/").content.decode()


def test_yesterdays_requests_after_its_last_rollup_are_shown(console, world):
    from usage import services
    from usage.reports import usage_recent_days

    now = timezone.now()
    yesterday = now.date() - timedelta(days=1)
    late = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(minutes=10)  # 23:50
    events.usage_rows_insert([event(world.tenant, late - timedelta(minutes=20))])
    services.usage_rollup(day=yesterday)  # the hourly rollup at 23:30
    events.usage_rows_insert([event(world.tenant, late)])  # a request at 23:50, rolled up next hour
    days = {day.day: day.requests for day in usage_recent_days(tenant=world.tenant)}
    assert days[yesterday] == 2
    this_month = 2 if yesterday.month == now.month else 0
    page = console.get("/admin/tenants/tenant/").content.decode()
    assert f'<td class="field-requests_this_month">{this_month}</td>' in page
    top = console.get("/admin/").context["top_tenants"]
    assert [row["requests"] for row in top] == ([this_month] if this_month else [])
