"""The Django admin as the tenant console."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client

from accounts.models import User, UserSession
from accounts.services import session_start
from apikeys.services import api_key_create
from tenants.models import AuditEntry, Tenant
from tests.conftest import PASSWORD, external_assets, tenant_change_form
from tests.usage.factories import event, invoice
from usage import events


def act(client, action, tenants, confirmed=True):
    data = {"action": action, "_selected_action": [str(t.id) for t in tenants]}
    if confirmed:
        data["confirmed"] = "yes"
    return client.post("/admin/tenants/tenant/", data, follow=True)


class TestTenantList:
    def test_it_lists_tenants_with_search_and_filters(self, console, world):
        page = console.get("/admin/tenants/tenant/")
        assert page.status_code == 200
        assert b"Acme" in page.content and b"Globex" in page.content
        searched = console.get("/admin/tenants/tenant/", {"q": "glob"}).content
        assert b"Globex" in searched and b"acme" not in searched
        filtered = console.get("/admin/tenants/tenant/", {"plan__exact": "pro"}).content
        assert b"Globex" in filtered and b">Acme<" not in filtered
        assert console.get("/admin/tenants/tenant/", {"o": "-6"}).status_code == 200  # sort by requests

    def test_it_shows_users_keys_requests_and_last_activity(self, console, world):
        api_key_create(tenant=world.tenant, name="k", permissions=["read"])
        events.usage_rows_insert([event(world.tenant), event(world.tenant)])
        changelist = console.get("/admin/tenants/tenant/").context["cl"]
        acme = next(t for t in changelist.result_list if t.slug == "acme")
        assert (acme.active_users, acme.active_keys, acme.month_requests) == (3, 1, 2)
        assert acme.last_seen is not None

    def test_the_list_costs_the_same_queries_for_3_or_30_tenants(
        self, console, world, django_assert_max_num_queries
    ):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as few:
            console.get("/admin/tenants/tenant/")
        for number in range(27):
            tenant = Tenant.objects.create(name=f"T{number}", slug=f"t{number}")
            User.objects.create_user(
                email=f"u{number}@t.test", password=PASSWORD, tenant=tenant, role="admin"
            )
            api_key_create(tenant=tenant, name="k", permissions=["read"])
        with django_assert_max_num_queries(len(few.captured_queries)):
            console.get("/admin/tenants/tenant/")


class TestTenantPage:
    def test_it_shows_users_keys_and_limits(self, console, world):
        api_key_create(tenant=world.tenant, name="the-key", permissions=["read"])
        page = console.get(f"/admin/tenants/tenant/{world.tenant.id}/change/").content.decode()
        assert "admin@acme.test" in page and "viewer@acme.test" in page
        assert "admin@globex.test" not in page
        assert "the-key" in page and "requests_per_minute" in page

    def test_the_page_costs_the_same_queries_whatever_its_users_and_keys(
        self, console, world, django_assert_max_num_queries
    ):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        url = f"/admin/tenants/tenant/{world.tenant.id}/change/"
        with CaptureQueriesContext(connection) as few:
            console.get(url)
        for number in range(20):
            User.objects.create_user(
                email=f"m{number}@acme.test", password=PASSWORD, tenant=world.tenant, role="viewer"
            )
            api_key_create(tenant=world.tenant, name=f"k{number}", permissions=["read"])
        with django_assert_max_num_queries(len(few.captured_queries)):
            console.get(url)


class TestStatusActions:
    @pytest.mark.parametrize(
        ("action", "start", "end"),
        [
            ("suspend_tenants", "active", "suspended"),
            ("cancel_tenants", "active", "cancelled"),
            ("activate_tenants", "suspended", "active"),
        ],
    )
    def test_they_ask_for_confirmation_then_go_through_the_services(self, console, world, action, start, end):
        Tenant.objects.filter(pk=world.tenant.pk).update(status=start)
        confirm = act(console, action, [world.tenant], confirmed=False)
        assert b"Are you sure" in confirm.content
        world.tenant.refresh_from_db()
        assert world.tenant.status == start
        act(console, action, [world.tenant])
        world.tenant.refresh_from_db()
        world.other_tenant.refresh_from_db()
        assert world.tenant.status == end and world.other_tenant.status == "active"
        entry = AuditEntry.objects.get(action=f"tenant.{end}")
        assert (entry.actor, entry.source, entry.before, entry.after) == (
            world.staff,
            "console",
            {"status": start},
            {"status": end},
        )


class TestWorkflows:
    def test_create_a_tenant_with_its_first_admin(self, console, world, api):
        response = console.post(
            "/admin/tenants/tenant/add/",
            {
                "name": "Initech",
                "slug": "initech",
                "plan": "pro",
                "settings": "{}",
                "admin_email": "boss@initech.test",
                "admin_password": "Another-long-pass-1",
            },
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        tenant = Tenant.objects.get(slug="initech")
        assert tenant.plan == "pro"
        login = api.post(
            "/api/v1/auth/login",
            {"email": "boss@initech.test", "password": "Another-long-pass-1"},
            format="json",
        )
        assert login.json()["user"]["role"] == "admin"
        assert AuditEntry.objects.get(action="tenant.create").after["admin_user"] == "boss@initech.test"
        made = AuditEntry.objects.get(action="user.create", tenant=tenant)
        assert (made.source, made.actor_id, made.after["email"]) == (
            "console",
            world.staff.id,
            "boss@initech.test",
        )

    def test_a_weak_first_password_is_refused(self, console, world):
        response = console.post(
            "/admin/tenants/tenant/add/",
            {
                "name": "Weak",
                "slug": "weak",
                "plan": "starter",
                "settings": "{}",
                "admin_email": "a@weak.test",
                "admin_password": "123",
            },
        )
        assert response.status_code == 200 and not Tenant.objects.filter(slug="weak").exists()

    def test_settings_nested_too_deeply_are_refused(self, console, world):
        deep: dict = {}
        for _ in range(40):
            deep = {"a": deep}
        response = console.post(
            "/admin/tenants/tenant/add/",
            {"name": "Deep", "slug": "deep", "plan": "starter", "settings": json.dumps(deep)},
        )
        assert (
            response.status_code == 200
            and "Must not nest deeper than 32 levels." in response.content.decode()
        )
        assert not Tenant.objects.filter(slug="deep").exists()

    def test_a_slug_taken_in_another_case_is_refused(self, console, world):
        response = console.post(
            "/admin/tenants/tenant/add/",
            {"name": "Loud Acme", "slug": "ACME", "plan": "starter", "settings": "{}"},
        )
        assert response.status_code == 200
        assert "already exists" in response.content.decode()
        assert Tenant.objects.filter(slug__iexact="acme").count() == 1

    def test_the_tenant_page_shows_its_users_but_changes_them_on_their_own_page(self, console, world):
        page = console.get(f"/admin/tenants/tenant/{world.tenant.id}/change/").content.decode()
        assert "admin@acme.test" in page and f"/admin/accounts/user/{world.admin.id}/change/" in page
        assert 'name="users-0-is_active"' not in page and 'name="users-0-role"' not in page

    def test_the_only_admin_cannot_be_demoted_or_deactivated_from_the_console(
        self, console, world, client_for
    ):
        tokens = client_for(world.admin)
        url = f"/admin/accounts/user/{world.admin.id}/change/"
        form = console.get(url).context["adminform"].form
        data = {
            name: value
            for name, value in form.initial.items()
            if value is not None and name not in ("password", "is_active")
        }
        data.update(tenant=str(world.tenant.id), groups=[], user_permissions=[])
        data.update({"sessions-TOTAL_FORMS": "0", "sessions-INITIAL_FORMS": "0"})
        for change in (
            {"role": "viewer", "is_active": "on"},
            {"role": "admin"},  # no is_active: off
            {"tenant": "", "role": "", "is_active": "on", "is_staff": "on"},  # out of the tenant
        ):
            response = console.post(url, {**data, **change})
            assert response.status_code == 200, response
            assert "A tenant must keep at least one active admin." in response.content.decode()
        world.admin.refresh_from_db()
        assert (world.admin.role, world.admin.is_active) == ("admin", True)
        assert tokens.get("/api/v1/auth/me").status_code == 200
        # With a second admin, the first may go: the rule is about the last one only.
        world.developer.role = "admin"
        world.developer.save()
        assert console.post(url, {**data, "role": "viewer", "is_active": "on"}).status_code == 302

    def test_reset_a_password_and_force_logout(self, console, world, client_for):
        victim = client_for(world.developer)
        response = console.post(
            f"/admin/accounts/user/{world.developer.id}/password/",
            {"password1": "Reset-by-staff-42", "password2": "Reset-by-staff-42", "usable_password": "true"},
        )
        assert response.status_code == 302
        assert victim.get("/api/v1/auth/me").status_code == 401
        assert AuditEntry.objects.filter(
            action="user.password_reset", object_id=str(world.developer.id)
        ).exists()
        session_start(user=world.viewer, ip=None, user_agent="")
        console.post(
            "/admin/accounts/user/", {"action": "force_logout", "_selected_action": [str(world.viewer.id)]}
        )
        assert not UserSession.objects.filter(user=world.viewer, ended_at__isnull=True).exists()

    def test_force_logout_ends_the_users_console_sessions_too(self, console, world, support_console):
        assert support_console.get("/admin/").status_code == 200
        console.post(
            "/admin/accounts/user/", {"action": "force_logout", "_selected_action": [str(world.support.id)]}
        )
        assert support_console.get("/admin/").status_code == 302  # to the login page
        assert console.get("/admin/").status_code == 200  # the staff member who forced it stays

    def test_logout_everywhere_from_the_api_ends_the_console_sessions_too(
        self, world, support_console, client_for
    ):
        assert client_for(world.support).post("/api/v1/auth/logout-all").status_code == 204
        assert support_console.get("/admin/").status_code == 302

    def test_a_staff_members_reset_of_their_own_password_keeps_their_session(self, console, world):
        password = "Reset-own-by-staff-42"
        response = console.post(
            f"/admin/accounts/user/{world.staff.id}/password/",
            {"password1": password, "password2": password, "usable_password": "true"},
        )
        assert response.status_code == 302
        assert console.get("/admin/").status_code == 200

    def test_a_user_saved_from_a_stale_read_keeps_a_logout_everywhere(self, world, support_console):
        from accounts.services import user_logout_everywhere

        stale = User.objects.get(pk=world.support.pk)
        user_logout_everywhere(user=User.objects.get(pk=world.support.pk), reason="logout_all")
        stale.save()  # e.g. a console edit that read the row before
        assert support_console.get("/admin/").status_code == 302

    def test_granting_a_staff_member_a_permission_or_a_group_is_audited(self, console, world):
        from django.contrib.auth.models import Group, Permission

        cancel = Permission.objects.get(codename="cancel_tenant")
        url = f"/admin/accounts/user/{world.support.id}/change/"
        form = console.get(url).context["adminform"].form
        data = {
            name: value
            for name, value in form.initial.items()
            if value is not None and name not in ("password", "groups", "user_permissions")
        }
        data.update(
            {"sessions-TOTAL_FORMS": "0", "sessions-INITIAL_FORMS": "0", "is_active": "on", "is_staff": "on"}
        )
        groups = [str(pk) for pk in world.support.groups.values_list("pk", flat=True)]
        response = console.post(url, {**data, "groups": groups, "user_permissions": [str(cancel.pk)]})
        assert response.status_code == 302
        entry = AuditEntry.objects.get(action="user.grants", object_id=str(world.support.id))
        assert entry.before["permissions"] == [] and entry.after["permissions"] == ["tenants.cancel_tenant"]
        assert entry.actor == world.staff and entry.source == AuditEntry.Source.CONSOLE

        group = Group.objects.get(name="Support")
        page = console.get(f"/admin/auth/group/{group.pk}/change/").context["adminform"].form
        granted = [str(permission.pk) for permission in page.initial["permissions"]] + [str(cancel.pk)]
        assert (
            console.post(
                f"/admin/auth/group/{group.pk}/change/", {"name": "Support", "permissions": granted}
            ).status_code
            == 302
        )
        entry = AuditEntry.objects.get(action="group.update")
        assert "tenants.cancel_tenant" not in entry.before["permissions"]
        assert "tenants.cancel_tenant" in entry.after["permissions"]

        spare = Group.objects.create(name="Spare")
        assert console.post(f"/admin/auth/group/{spare.pk}/delete/", {"post": "yes"}).status_code == 302
        assert AuditEntry.objects.get(action="group.delete").before["name"] == "Spare"

    def test_change_a_plan_and_a_limit(self, console, world):
        form = console.get(f"/admin/tenants/tenant/{world.tenant.id}/change/").context["adminform"].form
        assert "plan" in form.fields
        data = tenant_change_form(world.tenant, plan="enterprise", requests_per_minute=77)
        response = console.post(f"/admin/tenants/tenant/{world.tenant.id}/change/", data)
        assert response.status_code == 302
        world.tenant.refresh_from_db()
        assert world.tenant.plan == "enterprise"
        update = AuditEntry.objects.get(action="tenant.update")
        assert update.before["plan"] == "starter" and update.after["plan"] == "enterprise"
        limits = AuditEntry.objects.get(action="tenant.rate_limits")
        assert limits.after["requests_per_minute"] == 77

    def test_rerun_the_invoice_job_for_a_month(self, console, world):
        events.usage_rows_insert([event(world.tenant)])
        from django.utils import timezone

        month = timezone.now().strftime("%Y-%m")
        assert console.get("/admin/usage/invoice/run/").status_code == 200
        response = console.post("/admin/usage/invoice/run/", {"month": month})
        assert response.status_code == 302
        assert world.tenant.invoices.count() == 1
        console.post("/admin/usage/invoice/run/", {"month": month})
        assert world.tenant.invoices.count() == 1
        assert AuditEntry.objects.filter(action="invoices.generate", object_id=month).count() == 2

    def test_the_audit_trail_is_viewable_and_read_only(self, console, world):
        act(console, "suspend_tenants", [world.tenant])
        listing = console.get("/admin/tenants/auditentry/").content.decode()
        assert "tenant.suspended" in listing and "staff@platform.test" in listing
        entry = AuditEntry.objects.get()
        assert console.get(f"/admin/tenants/auditentry/{entry.pk}/change/").status_code == 200
        assert console.post(f"/admin/tenants/auditentry/{entry.pk}/delete/").status_code == 403
        assert console.get("/admin/tenants/auditentry/add/").status_code == 403


class TestSupportRole:
    def test_support_may_look_and_suspend_but_not_cancel(self, support_console, world):
        assert support_console.get("/admin/tenants/tenant/").status_code == 200
        assert support_console.get(f"/admin/tenants/tenant/{world.tenant.id}/change/").status_code == 200
        act(support_console, "suspend_tenants", [world.tenant])
        world.tenant.refresh_from_db()
        assert world.tenant.status == "suspended"
        act(support_console, "cancel_tenants", [world.tenant])
        world.tenant.refresh_from_db()
        assert world.tenant.status == "suspended"  # not offered, not done
        actions = (
            support_console.get("/admin/tenants/tenant/").context["action_form"].fields["action"].choices
        )
        assert "cancel_tenants" not in dict(actions)

    def test_support_may_not_bring_back_a_cancelled_tenant(self, support_console, world, client_for):
        world.tenant.status = "cancelled"
        world.tenant.save()
        page = act(support_console, "activate_tenants", [world.tenant, world.other_tenant])
        assert "may not reactivate Acme" in page.content.decode()
        world.tenant.refresh_from_db()
        assert world.tenant.status == "cancelled"
        response = client_for(world.support).patch(
            f"/api/admin/tenants/{world.tenant.id}", {"status": "active"}
        )
        assert response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN"
        world.tenant.refresh_from_db()
        assert world.tenant.status == "cancelled"

    def test_a_staff_role_without_the_view_permission_sees_no_tenant_through_an_update(
        self, world, client_for
    ):
        nobody = User.objects.create_user(email="nobody@platform.test", password="x" * 20, is_staff=True)
        client = client_for(nobody)
        url = f"/api/admin/tenants/{world.tenant.id}"
        for response in (client.get(url), client.patch(url, {}), client.put(url, {"name": "Acme"})):
            assert response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN"
            assert "Acme" not in response.content.decode()

    def test_support_cannot_change_plans_or_see_money(self, support_console, world):
        statement = invoice(world.tenant, total_cents=123_456)
        page = support_console.get(f"/admin/tenants/tenant/{world.tenant.id}/change/")
        assert "1,234.56" not in page.content.decode()
        assert "plan" not in page.context["adminform"].form.fields  # read-only for support
        assert "1,234.56" not in support_console.get("/admin/usage/invoice/").content.decode()
        # The invoice's own page names it in the title and the breadcrumbs; its history is the audit trail's.
        for suffix in ("change/", "history/"):
            answer = support_console.get(f"/admin/usage/invoice/{statement.pk}/{suffix}", follow=True)
            assert answer.status_code == 200
            assert "1,234.56" not in answer.content.decode()
        assert support_console.get("/admin/usage/invoice/run/").status_code == 403

    def test_support_cannot_learn_amounts_by_filtering_on_them(self, support_console, console, world):
        invoice(world.tenant, total_cents=123_456)
        for lookup in ("total_cents__gte=100000", "total_cents=123456", "base_cents__lt=1"):
            assert support_console.get(f"/admin/usage/invoice/?{lookup}").status_code == 400
        assert console.get("/admin/usage/invoice/?total_cents__gte=100000").status_code == 200

    def test_a_staff_role_without_tenants_sees_no_business_figures(self, world, client_for):
        from django.test import Client

        nobody = User.objects.create_user(email="nobody@platform.test", password=PASSWORD, is_staff=True)
        browser = Client()
        browser.force_login(nobody)
        page = browser.get("/admin/")
        assert page.status_code == 200
        assert 'id="dashboard"' not in page.content.decode() and "Acme" not in page.content.decode()

    def test_the_admin_api_enforces_the_same_role(self, world, client_for):
        support = client_for(world.support)
        url = f"/api/admin/tenants/{world.tenant.id}"
        assert support.get(url).status_code == 200
        assert support.patch(url, {"status": "suspended"}).json()["status"] == "suspended"
        assert support.patch(url, {"status": "active"}).status_code == 200
        for response in (
            support.delete(url),
            support.patch(url, {"status": "cancelled"}),
            support.patch(url, {"plan": "enterprise"}),
            support.put(
                f"{url}/rate-limits",
                {"requests_per_minute": 1, "requests_per_hour": 1, "requests_per_day": 1},
            ),
            support.post("/api/admin/tenants", {"name": "X", "slug": "x"}),
        ):
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "FORBIDDEN"
        invoice(world.tenant, total_cents=999)
        seen = support.get(f"{url}/invoices").json()
        assert seen[0]["month"] == "2026-09" and seen[0]["total_cents"] is None
        world.tenant.refresh_from_db()
        assert (world.tenant.status, world.tenant.plan) == ("active", "starter")


def test_the_dashboard_shows_the_business_at_a_glance(console, world):
    events.usage_rows_insert([event(world.tenant), event(world.tenant), event(world.other_tenant)])
    act(console, "suspend_tenants", [world.other_tenant])
    page = console.get("/admin/")
    context = page.context
    assert context["requests_today"] == 3
    assert {row["status"]: row["n"] for row in context["tenants_by_status"]} == {"active": 1, "suspended": 1}
    assert [row["name"] for row in context["top_tenants"]] == ["Acme", "Globex"]
    assert context["recent_audit"][0].action == "tenant.suspended"
    html = page.content.decode()
    assert "Recommender console" in html and external_assets(html) == []


def test_a_tenant_user_cannot_open_the_console(world):
    client = Client()
    client.force_login(world.admin)
    response = client.get("/admin/tenants/tenant/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_user_pages_work(console, world):
    assert console.get("/admin/accounts/user/").status_code == 200
    assert console.get(f"/admin/accounts/user/{world.admin.id}/change/").status_code == 200
    assert console.get("/admin/accounts/user/add/").status_code == 200


def test_an_invoice_is_dated_by_its_month(world):
    from django.utils import timezone

    from usage.models import Invoice
    from usage.services import invoice_generate

    last_day = timezone.now().date().replace(day=1) - timedelta(days=1)  # the 28th to the 31st
    made = invoice_generate(tenant=world.tenant, month=last_day)
    assert Invoice.objects.get(pk=made.pk).month == last_day.replace(day=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"email": "ADMIN@acme.test"}, "A user with this email (in any case) already exists."),
        ({"is_staff": "on"}, "A user belongs to a tenant and has a role, or is staff with neither"),
    ],
)
def test_user_refusals_in_the_console_say_what_is_wrong(console, world, change, message):
    data = {
        "email": "new@acme.test",
        "tenant": str(world.tenant.id),
        "role": "viewer",
        "password1": "Another-long-pass-1",
        "password2": "Another-long-pass-1",
        "usable_password": "true",
        "sessions-TOTAL_FORMS": "0",
        "sessions-INITIAL_FORMS": "0",
        **change,
    }
    response = console.post("/admin/accounts/user/add/", data)
    page = response.content.decode()
    assert response.status_code == 200
    assert message in page, re.findall(r"errorlist[^>]*>(.*?)</ul>", page, re.S)
    assert "users_" not in page  # no constraint's name
    assert not User.objects.filter(
        email__iexact=data["email"], created_at__gt=world.admin.created_at
    ).exists()


def test_a_rate_limit_of_zero_in_the_console_says_what_is_wrong(console, world):
    data = tenant_change_form(world.tenant, requests_per_minute=0)
    response = console.post(f"/admin/tenants/tenant/{world.tenant.id}/change/", data)
    page = response.content.decode()
    assert response.status_code == 200
    assert "A rate limit is at least 1 request" in page, re.findall(r"errorlist[^>]*>(.*?)</ul>", page, re.S)
    assert "rate_limits_positive" not in page


def test_a_user_moved_to_another_tenant_loses_its_sessions(console, world, client_for):
    tokens = client_for(world.developer)
    url = f"/admin/accounts/user/{world.developer.id}/change/"
    form = console.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(tenant=str(world.other_tenant.id), groups=[], user_permissions=[], is_active="on")
    data.update({"sessions-TOTAL_FORMS": "0", "sessions-INITIAL_FORMS": "0"})
    assert console.post(url, data).status_code == 302
    world.developer.refresh_from_db()
    assert world.developer.tenant_id == world.other_tenant.id
    assert tokens.get("/api/v1/auth/me").status_code == 401
    assert UserSession.objects.get(user=world.developer).end_reason == "moved"


def test_a_password_changed_in_the_console_ends_the_users_api_sessions(world, client_for):
    tokens = client_for(world.staff)
    assert tokens.get("/api/admin/tenants").status_code == 200
    console = Client()
    console.force_login(world.staff)
    response = console.post(
        "/admin/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "Changed-in-console-42",
            "new_password2": "Changed-in-console-42",
        },
    )
    assert response.status_code == 302
    assert tokens.get("/api/admin/tenants").status_code == 401
    assert console.get("/admin/").status_code == 200  # the console's own session stays
    entry = AuditEntry.objects.get(action="user.password_change")
    assert (entry.actor_id, entry.source, entry.after) == (world.staff.id, "console", {"sessions_ended": 1})
