"""The console shows and changes one tenant's objects where it means one tenant: each row of the tenant
list, the tenant page's usage, keys and invoices, and the API-key actions."""

import re
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from rest_framework.test import APIClient

from apikeys.models import ApiKey
from tenants import admin as tenants_admin
from tenants.models import AuditEntry, Tenant
from tests.usage.factories import event, invoice
from usage import events, reports
from usage.models import DailyUsage

# The last day of a 31-day month: its first day is out of the page's 30-day chart (so the month's
# total also reads the rollups before the chart), and the rollups and raw rows both hold part of it.
NOW = datetime(2026, 10, 31, 15, 0, tzinfo=UTC)


def at(day, hour):
    return datetime(2026, 10, day, hour, tzinfo=UTC)


@pytest.fixture
def pinned_clock(monkeypatch):
    clock = SimpleNamespace(now=lambda: NOW)
    monkeypatch.setattr(reports, "timezone", clock)
    monkeypatch.setattr(tenants_admin, "timezone", clock)


def rollup(tenant, day, requests, errors=0, status_class="2xx"):
    DailyUsage.objects.create(
        tenant=tenant,
        day=day,
        endpoint="/api/v1/probe",
        method="GET",
        status_class=status_class,
        requests=requests,
        errors=errors,
    )


def key_works(secret):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    return client.get("/api/v1/usage").status_code == 200


@pytest.fixture
def two_tenants(world, make_key, pinned_clock):
    """Both tenants with rollups, raw rows, keys and invoices, every figure of one differing from the
    other's: a figure of theirs counted for us (or ours for them) shows."""
    make_key(name="acme-server")
    make_key(name="acme-spare")
    old, _ = make_key(name="acme-old")
    ApiKey.objects.filter(pk=old.pk).update(status=ApiKey.Status.REVOKED)
    theirs, _ = make_key(name="globex-server", tenant=world.other_tenant)
    rollup(world.tenant, date(2026, 9, 30), 999)  # last month
    rollup(world.tenant, date(2026, 10, 1), 40)
    rollup(world.tenant, date(2026, 10, 15), 5, errors=1, status_class="4xx")
    rollup(world.other_tenant, date(2026, 10, 1), 700)
    rollup(world.other_tenant, date(2026, 10, 15), 60, errors=6, status_class="4xx")
    rollup(world.other_tenant, date(2026, 10, 20), 80)
    events.usage_rows_insert(
        [
            event(world.tenant, at(30, 10)),
            event(world.tenant, at(30, 11)),
            event(world.tenant, at(31, 9), status=500),
            *(event(world.other_tenant, at(30, 12), status=500) for _ in range(4)),
            event(world.other_tenant, at(31, 8)),
        ]
    )
    invoice(world.tenant, month=date(2026, 9, 1), requests=12)
    invoice(world.other_tenant, month=date(2026, 8, 1), plan="pro", requests=34567, total_cents=777_777)
    return theirs


class TestTenantList:
    def test_each_row_counts_its_own_tenants_users_keys_and_requests(self, console, world, two_tenants):
        # A tenant with nothing at all: any count not scoped to its row's tenant shows here.
        Tenant.objects.create(name="Initech", slug="initech")
        changelist = console.get("/admin/tenants/tenant/").context["cl"]
        rows = {
            tenant.slug: (tenant.active_users, tenant.active_keys, tenant.month_requests, tenant.last_seen)
            for tenant in changelist.result_list
        }
        assert rows == {
            "acme": (3, 2, 40 + 5 + 3, at(31, 9)),
            "globex": (1, 1, 700 + 60 + 80 + 5, at(31, 8)),
            "initech": (0, 0, 0, None),
        }

    def test_the_columns_show_those_figures(self, console, world, two_tenants):
        page = console.get("/admin/tenants/tenant/").content.decode()
        assert re.findall(r'<td class="field-requests_this_month">(\d+)</td>', page) == ["48", "845"]
        assert re.findall(r'<td class="field-user_count">(\d+)</td>', page) == ["3", "1"]
        assert re.findall(r'<td class="field-active_key_count">(\d+)</td>', page) == ["2", "1"]


class TestTenantPage:
    def page(self, console, tenant):
        return console.get(f"/admin/tenants/tenant/{tenant.id}/change/")

    def test_the_chart_holds_its_own_tenants_days_only(self, console, world, two_tenants):
        html = self.page(console, world.tenant).content.decode()
        shown = dict(re.findall(r"<title>(\d{4}-\d{2}-\d{2}): (\d+ requests, \d+ errors)</title>", html))
        expected = {f"{date(2026, 10, day)}": "0 requests, 0 errors" for day in range(2, 32)}
        expected.update(
            {
                "2026-10-15": "5 requests, 1 errors",
                "2026-10-30": "2 requests, 0 errors",
                "2026-10-31": "1 requests, 1 errors",
            }
        )
        assert shown == expected

    def test_the_other_tenants_chart_holds_its_days_only(self, console, world, two_tenants):
        html = self.page(console, world.other_tenant).content.decode()
        shown = dict(re.findall(r"<title>(\d{4}-\d{2}-\d{2}): (\d+ requests, \d+ errors)</title>", html))
        assert len(shown) == 30
        nonzero = {day: figures for day, figures in shown.items() if figures != "0 requests, 0 errors"}
        assert nonzero == {
            "2026-10-15": "60 requests, 6 errors",
            "2026-10-20": "80 requests, 0 errors",
            "2026-10-30": "4 requests, 4 errors",
            "2026-10-31": "1 requests, 0 errors",
        }

    def test_the_month_to_date_counts_its_own_tenant_only(self, console, world, two_tenants):
        ours = self.page(console, world.tenant)
        theirs = self.page(console, world.other_tenant)
        assert (ours.context["usage_month"]["requests"], ours.context["usage_month"]["errors"]) == (48, 2)
        assert (theirs.context["usage_month"]["requests"], theirs.context["usage_month"]["errors"]) == (
            845,
            10,
        )
        assert "Month to date: <strong>48</strong> requests" in ours.content.decode()

    def test_the_keys_and_invoices_are_its_own_tenants(self, console, world, two_tenants):
        theirs = two_tenants
        response = self.page(console, world.tenant)
        html = response.content.decode()
        assert "acme-server" in html and "acme-old" in html
        assert "globex-server" not in html and theirs.prefix not in html
        invoices = html[html.index('id="tenant-invoices"') :]
        assert re.findall(r"<tr><td>(\d{4}-\d{2})</td><td>(\w+)</td><td>(\d+)</td>", invoices) == [
            ("2026-09", "starter", "12")
        ]
        assert "7,777.77" not in html and "7777.77" not in html
        assert [(i.tenant_id, i.month) for i in response.context["invoices"]] == [
            (world.tenant.id, date(2026, 9, 1))
        ]


class TestApiKeyActions:
    @pytest.fixture
    def keys(self, world, make_key):
        """The key acted on, a second key of its tenant, and another tenant's key, with their secrets."""
        return {
            "chosen": make_key(name="chosen"),
            "sibling": make_key(name="sibling"),
            "theirs": make_key(name="theirs", tenant=world.other_tenant),
        }

    def act(self, console, action, api_key):
        return console.post(
            "/admin/apikeys/apikey/", {"action": action, "_selected_action": [str(api_key.id)]}
        )

    def bystanders_untouched(self, keys):
        for name in ("sibling", "theirs"):
            api_key, secret = keys[name]
            stored = ApiKey.objects.get(pk=api_key.pk)
            assert (stored.status, stored.revoked_at, stored.revokes_at) == ("active", None, None), name
            assert not ApiKey.objects.filter(rotated_from=api_key).exists(), name
            assert key_works(secret), name

    def test_revoke_revokes_the_selected_key_only(self, console, world, keys):
        chosen, chosen_secret = keys["chosen"]
        self.act(console, "revoke_keys", chosen)
        assert ApiKey.objects.get(pk=chosen.pk).status == "revoked" and not key_works(chosen_secret)
        self.bystanders_untouched(keys)
        revoked = AuditEntry.objects.filter(action="api_key.revoke").values_list("object_id", flat=True)
        assert list(revoked) == [str(chosen.id)]

    def test_rotate_rotates_the_selected_key_only(self, console, world, keys):
        chosen, _ = keys["chosen"]
        response = self.act(console, "rotate_keys", chosen)
        assert len(re.findall(r'class="api-key-secret"', response.content.decode())) == 1
        assert ApiKey.objects.filter(rotated_from=chosen).count() == 1
        assert ApiKey.objects.count() == 4
        self.bystanders_untouched(keys)
        rotated = AuditEntry.objects.filter(action="api_key.rotate").values_list("object_id", flat=True)
        assert list(rotated) == [str(chosen.id)]
