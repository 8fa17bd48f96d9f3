"""The way of a usage event: Redis buffer, batches in flight, usage_logs, rollups, invoices."""

import json
import logging
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import Tenant
from tests.usage.factories import event, invoice
from usage import events, services
from usage.models import DailyUsage, Invoice, UsageLog


@pytest.fixture
def buffer(settings):
    events.buffer_client.cache_clear()
    client = events.buffer_client()
    yield client
    events.buffer_client.cache_clear()


@pytest.mark.redis
class TestBuffer:
    def test_a_request_pushes_its_event_to_redis_not_the_database(self, world, make_key, probe, buffer):
        _, secret = make_key()
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secret)
        client.get(probe)
        assert UsageLog.objects.count() == 0
        assert buffer.llen(events.BUFFER_KEY) == 1
        assert json.loads(buffer.lindex(events.BUFFER_KEY, 0))["endpoint"] == "/api/v1/probe"
        result = services.usage_flush()
        assert (result.taken, result.inserted) == (1, 1)
        assert UsageLog.objects.count() == 1 and buffer.llen(events.BUFFER_KEY) == 0

    def test_requests_give_the_buffers_connection_back(self, world, make_key, probe, buffer):
        _, secret = make_key()
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secret)
        for _ in range(5):
            assert client.get(probe).status_code == 200
        assert buffer.llen(events.BUFFER_KEY) == 5
        assert not buffer.connection_pool._in_use_connections
        assert len(buffer.connection_pool._available_connections) == 1

    def test_a_push_redis_refuses_goes_to_the_database(self, world, make_key, probe, buffer, caplog):
        buffer.set(events.BUFFER_KEY, "not a list")  # RPUSH answers WRONGTYPE
        _, secret = make_key()
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=secret)
        with caplog.at_level(logging.WARNING, logger="usage.events"):
            assert client.get(probe).status_code == 200
            assert client.get(probe).status_code == 200
        assert UsageLog.objects.filter(tenant_id=world.tenant.id, endpoint="/api/v1/probe").count() == 2
        assert any("Usage buffer unavailable (ResponseError)" in r.getMessage() for r in caplog.records)
        pool = buffer.connection_pool
        assert not pool._in_use_connections
        assert [connection._sock is not None for connection in pool._available_connections] == [True]
        buffer.delete(events.BUFFER_KEY)
        client.get(probe)
        assert buffer.llen(events.BUFFER_KEY) == 1  # the connection kept after the error reply works

    def test_a_batch_left_in_flight_by_a_dead_worker_is_stored_once(self, world, buffer, settings):
        for _ in range(5):
            events.usage_event_record(event(world.tenant))
        # A worker takes a batch and dies before storing it.
        take = buffer.register_script(services.TAKE_BATCH_LUA)
        orphan = f"{events.INFLIGHT_PREFIX}dead-worker"
        assert (
            len(take(keys=[events.BUFFER_KEY, orphan, events.INFLIGHT_INDEX_KEY], args=[3, time.time()])) == 3
        )
        assert services.usage_flush().inserted == 2  # not yet past the visibility timeout
        settings.USAGE_INFLIGHT_TIMEOUT_SECONDS = 0
        assert services.usage_flush().inserted == 3
        assert UsageLog.objects.count() == 5
        assert buffer.zcard(events.INFLIGHT_INDEX_KEY) == 0

    def test_a_batch_larger_than_the_lua_stack_is_taken_whole(self, world, buffer):
        pipe = buffer.pipeline(transaction=False)
        for _ in range(9000):
            pipe.rpush(events.BUFFER_KEY, json.dumps(event(world.tenant)))
        pipe.execute()
        result = services.usage_flush(batch_size=9000, max_batches=1)
        assert (result.taken, result.inserted) == (9000, 9000)
        assert UsageLog.objects.count() == 9000 and buffer.llen(events.BUFFER_KEY) == 0

    def test_a_batch_stored_but_not_acknowledged_is_not_counted_twice(self, world, buffer, settings):
        for _ in range(4):
            events.usage_event_record(event(world.tenant))
        take = buffer.register_script(services.TAKE_BATCH_LUA)
        orphan = f"{events.INFLIGHT_PREFIX}died-after-commit"
        items = take(keys=[events.BUFFER_KEY, orphan, events.INFLIGHT_INDEX_KEY], args=[4, time.time()])
        services._store(items)  # committed, then the worker died before acknowledging
        before = services.usage_duplicates_total._value.get()
        result = services.usage_flush(recover_all=True)
        assert (result.taken, result.inserted, result.duplicates) == (4, 0, 4)
        assert services.usage_duplicates_total._value.get() == before + 4
        assert UsageLog.objects.count() == 4

    def test_reading_usage_stores_what_is_in_flight(self, world, buffer, client_for):
        for _ in range(3):
            events.usage_event_record(event(world.tenant))
        take = buffer.register_script(services.TAKE_BATCH_LUA)
        busy = f"{events.INFLIGHT_PREFIX}busy-worker"
        take(keys=[events.BUFFER_KEY, busy, events.INFLIGHT_INDEX_KEY], args=[2, time.time()])
        body = client_for(world.admin).get("/api/v1/usage").json()
        assert body["totals"]["requests"] == 3

    def test_reading_usage_stores_a_batch_another_worker_takes_meanwhile(
        self, world, buffer, monkeypatch, settings
    ):
        settings.USAGE_FLUSH_BATCH_SIZE = 1
        for _ in range(4):
            events.usage_event_record(event(world.tenant))
        take = buffer.register_script(services.TAKE_BATCH_LUA)
        store = services._store

        def store_while_a_worker_takes_the_rest(items: list[bytes]) -> int:
            # Another worker takes the rest of the buffer after our scan of the batches in flight
            # and is still storing it when our take loop finds the buffer empty.
            take(
                keys=[events.BUFFER_KEY, f"{events.INFLIGHT_PREFIX}slow-worker", events.INFLIGHT_INDEX_KEY],
                args=[10, time.time()],
            )
            monkeypatch.setattr(services, "_store", store)
            return store(items)

        monkeypatch.setattr(services, "_store", store_while_a_worker_takes_the_rest)
        services.usage_pending_flush()
        assert UsageLog.objects.count() == 4
        assert buffer.zcard(events.INFLIGHT_INDEX_KEY) == 0

    def test_with_redis_down_events_go_to_the_database(self, world, private_redis, settings, make_key, probe):
        settings.USAGE_BUFFER_REDIS_URL = private_redis.url
        settings.USAGE_BUFFER_REDIS_TIMEOUT = 0.05
        events.buffer_client.cache_clear()
        try:
            _, secret = make_key()
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=secret)
            client.get(probe)
            private_redis.stop()
            for _ in range(3):
                assert client.get(probe).status_code == 200
            assert UsageLog.objects.count() == 3  # straight to the database while Redis is away
            private_redis.start()
            client.get(probe)
            assert services.usage_flush().inserted == 1
            # The event buffered before the outage was lost with that Redis (no persistence here);
            # production Redis keeps its buffer with append-only persistence.
            assert UsageLog.objects.count() == 4
        finally:
            events.buffer_client.cache_clear()


class TestRollupsAndInvoices:
    def test_rollup_is_idempotent_and_splits_by_status_class(self, world):
        day = timezone.now().date()
        noon = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
        batch = [event(world.tenant, noon, 200, latency=1) for _ in range(3)]
        batch += [
            event(world.tenant, noon, 404),
            event(world.tenant, noon, 429),
            event(world.tenant, noon, 503),
            event(world.tenant, noon, 401),
            event(world.tenant, noon, 403),
        ]
        batch += [event(world.other_tenant, noon, 200)]
        batch += [event(world.tenant, noon + timedelta(days=1), 200)]  # another day
        events.usage_rows_insert(batch)
        columns = ("tenant_id", "status_class", "requests", "errors", "rate_limited", "unauthorized")
        services.usage_rollup(day=day)
        first = sorted(DailyUsage.objects.values_list(*columns))
        services.usage_rollup(day=day)
        second = sorted(DailyUsage.objects.values_list(*columns))
        assert first == second
        mine = {row[1]: row[2:] for row in first if row[0] == world.tenant.id}
        assert mine == {"2xx": (3, 0, 0, 0), "4xx": (4, 3, 1, 2), "5xx": (1, 1, 0, 0)}
        assert DailyUsage.objects.get(tenant=world.tenant, status_class="2xx").latency_ms_sum == 3

    def test_the_recent_job_catches_up_on_the_days_it_missed(self, world):
        from django.db.models import Sum

        from usage.models import RollupRun
        from usage.tasks import usage_rollup_recent

        today = timezone.now().date()

        def at(days_back, hours=12.0):
            midnight = datetime.combine(today - timedelta(days=days_back), datetime.min.time(), tzinfo=UTC)
            return midnight + timedelta(hours=hours)

        # The jobs were down: 5 and 4 days back were never rolled up, 3 days back only before it ended.
        events.usage_rows_insert(
            [event(world.tenant, at(5)), event(world.tenant, at(4)), event(world.tenant, at(4))]
        )
        events.usage_rows_insert([event(world.tenant, at(3)), event(world.other_tenant, at(3))])
        services.usage_rollup(day=today - timedelta(days=3))
        RollupRun.objects.filter(day=today - timedelta(days=3)).update(rolled_at=at(3, hours=23))
        events.usage_rows_insert([event(world.tenant, at(3, hours=23.5))])
        # 6 days back was rolled up after it ended: the hourly job leaves it (`usage_rollup --day` does not).
        services.usage_rollup(day=today - timedelta(days=6))
        events.usage_rows_insert([event(world.tenant, at(6))])

        usage_rollup_recent()
        per_day = DailyUsage.objects.filter(tenant=world.tenant).values("day").annotate(n=Sum("requests"))
        assert {row["day"]: row["n"] for row in per_day} == {
            today - timedelta(days=5): 1,
            today - timedelta(days=4): 2,
            today - timedelta(days=3): 2,
        }
        assert services.usage_rollup_due(today=today) == [today - timedelta(days=1), today]

    def test_a_day_whose_raw_rows_are_gone_keeps_its_rollup(self, world, settings):
        from usage.tasks import usage_rollup_recent

        today = timezone.now().date()
        # Rolled up under a 30-day retention, then its raw rows dropped; the retention is now 90 days.
        settings.USAGE_RAW_RETENTION_DAYS = 90
        pruned = today - timedelta(days=60)
        DailyUsage.objects.create(
            tenant=world.tenant,
            day=pruned,
            endpoint="/api/v1/items",
            method="GET",
            status_class="2xx",
            requests=1000,
        )
        noon = datetime.combine(today - timedelta(days=20), datetime.min.time(), tzinfo=UTC) + timedelta(
            hours=12
        )
        events.usage_rows_insert([event(world.tenant, noon)])
        assert pruned not in services.usage_rollup_due(today=today)
        usage_rollup_recent()
        services.usage_rollup(day=pruned)  # asked for by hand (`usage_rollup --day`): left as it is
        assert DailyUsage.objects.get(day=pruned).requests == 1000
        assert DailyUsage.objects.get(day=noon.date()).requests == 1

    def test_a_run_catches_up_on_a_week_at_most_oldest_first(self, world):
        today = timezone.now().date()
        start = datetime.combine(today - timedelta(days=30), datetime.min.time(), tzinfo=UTC)
        events.usage_rows_insert([event(world.tenant, start + timedelta(hours=12))])
        due = services.usage_rollup_due(today=today)
        assert due == [today - timedelta(days=n) for n in range(30, 23, -1)] + [
            today - timedelta(days=1),
            today,
        ]
        for day in due:
            services.usage_rollup(day=day)
        assert services.usage_rollup_due(today=today)[0] == today - timedelta(days=23)

    @pytest.mark.redis
    def test_the_recent_job_stores_what_the_buffer_holds_before_it_rolls_up(self, world, buffer):
        from usage.tasks import usage_rollup_recent

        today = timezone.now().date()
        three_days_back = datetime.combine(today - timedelta(days=3), datetime.min.time(), tzinfo=UTC)
        # The flushes were down too: the missed day's events are still in the buffer.
        for _ in range(4):
            events.usage_event_record(event(world.tenant, three_days_back + timedelta(hours=5)))
        assert buffer.llen(events.BUFFER_KEY) == 4
        usage_rollup_recent()
        assert DailyUsage.objects.get(tenant=world.tenant, day=three_days_back.date()).requests == 4
        assert three_days_back.date() not in services.usage_rollup_due(today=today)

    @pytest.mark.redis
    def test_the_billing_job_stores_what_the_buffer_holds_before_it_bills(self, world, buffer):
        month = timezone.now().date().replace(day=1)
        moment = datetime.combine(month, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)
        for _ in range(3):
            events.usage_event_record(event(world.tenant, moment))
        assert buffer.llen(events.BUFFER_KEY) == 3
        services.invoices_generate(month=month)
        assert Invoice.objects.get(tenant=world.tenant, month=month).requests == 3

    def test_invoices_match_the_plan_catalogue_and_rerun_to_the_same_figures(self, world, settings):
        settings.PLAN_PRICES = {
            "starter": {"base_cents": 1000, "included_requests": 5, "overage_per_1000_cents": 250},
            "pro": {"base_cents": 5000, "included_requests": 100, "overage_per_1000_cents": 100},
            "enterprise": {"base_cents": 9000, "included_requests": 1000, "overage_per_1000_cents": 50},
        }
        month = timezone.now().date().replace(day=1)
        moment = datetime.combine(month, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)
        # 9 billable for acme (14 answered, minus a 401 and a 403, a 429 and two 5xx); 2 for globex.
        batch = [event(world.tenant, moment + timedelta(minutes=i)) for i in range(8)]
        batch += [event(world.tenant, moment, 404), event(world.tenant, moment, 429)]
        batch += [event(world.tenant, moment, 401), event(world.tenant, moment, 403)]
        batch += [event(world.tenant, moment, 500), event(world.tenant, moment, 502)]
        batch += [event(world.other_tenant, moment) for _ in range(2)]
        events.usage_rows_insert(batch)
        assert services.invoices_generate(month=month) == 2
        acme = Invoice.objects.get(tenant=world.tenant, month=month)
        # By hand: 9 billable, 5 included, 4 over at 250 cents per 1,000 = 1 cent (rounded up).
        assert (
            acme.requests,
            acme.overage_requests,
            acme.base_cents,
            acme.overage_cents,
            acme.total_cents,
        ) == (
            9,
            4,
            1000,
            1,
            1001,
        )
        globex = Invoice.objects.get(tenant=world.other_tenant, month=month)
        assert (globex.plan, globex.requests, globex.overage_requests, globex.total_cents) == (
            "pro",
            2,
            0,
            5000,
        )
        services.invoices_generate(month=month)
        assert Invoice.objects.count() == 2
        acme.refresh_from_db()
        assert acme.total_cents == 1001

    def test_a_past_month_can_be_invoiced_again_from_its_rollups(self, world, settings):
        settings.USAGE_RAW_RETENTION_DAYS = 30
        month = date(2025, 1, 1)
        Tenant.objects.filter(pk=world.tenant.pk).update(created_at=datetime(2024, 6, 1, tzinfo=UTC))
        DailyUsage.objects.create(
            tenant=world.tenant,
            day=date(2025, 1, 15),
            endpoint="/api/v1/probe",
            method="GET",
            status_class="2xx",
            requests=1_500_000,
        )
        services.invoices_generate(month=month)  # raw rows are long gone: the rollup is kept as it is
        invoice = Invoice.objects.get(tenant=world.tenant, month=month)
        assert invoice.requests == 1_500_000
        assert invoice.overage_requests == 500_000
        assert invoice.overage_cents == 500_000 * 10 // 1000

    def test_invoices_are_listed_for_the_tenant_only(self, world, client_for):
        invoice(world.tenant)
        invoice(world.other_tenant, plan="pro", base_cents=1, total_cents=1)
        body = client_for(world.viewer).get("/api/v1/usage/invoices").json()
        assert [(row["month"], row["total_cents"]) for row in body] == [("2026-09", 4900)]
        staff = client_for(world.staff).get(f"/api/admin/tenants/{world.other_tenant.id}/invoices").json()
        assert [row["total_cents"] for row in staff] == [1]

    def test_the_management_commands(self, world):
        from io import StringIO

        from django.core.management import call_command

        events.usage_rows_insert([event(world.tenant)])
        out = StringIO()
        call_command("usage_rollup", stdout=out)
        call_command("usage_invoices", "--month", timezone.now().strftime("%Y-%m"), stdout=out)
        assert DailyUsage.objects.filter(tenant=world.tenant).exists()
        assert Invoice.objects.filter(tenant=world.tenant).exists()
        assert "invoice" in out.getvalue()


class TestWhoIsBilledForWhat:
    LAST_MONTH = (timezone.now().date().replace(day=1) - timedelta(days=1)).replace(day=1)

    def _since(self, tenant, moment):
        Tenant.objects.filter(pk=tenant.pk).update(created_at=moment)
        tenant.refresh_from_db()

    def test_a_tenant_is_not_billed_for_a_month_before_it_existed(self, world):
        self._since(world.other_tenant, datetime.combine(self.LAST_MONTH, datetime.min.time(), tzinfo=UTC))
        assert services.invoices_generate(month=self.LAST_MONTH) == 1  # globex; acme came this month
        assert list(Invoice.objects.values_list("tenant__slug", flat=True)) == ["globex"]

    def _backdate_changes(self, tenant, moment):
        from tenants.models import AuditEntry

        AuditEntry.objects.filter(object_id=str(tenant.pk)).update(at=moment)

    def test_a_closed_month_is_billed_at_the_plan_it_ended_on(self, world):
        from tenants.services import tenant_update

        self._since(world.tenant, timezone.now() - timedelta(days=400))
        # Upgraded after the month ended, before its invoice was first made (beat runs every 6 hours).
        tenant_update(tenant=world.tenant, plan="enterprise")
        services.invoices_generate(month=self.LAST_MONTH)
        issued = Invoice.objects.get(tenant=world.tenant, month=self.LAST_MONTH)
        assert (issued.plan, issued.total_cents) == ("starter", 4900)
        tenant_update(tenant=world.tenant, plan="pro")
        services.invoices_generate(month=self.LAST_MONTH)  # beat runs it again all month
        again = Invoice.objects.get(tenant=world.tenant, month=self.LAST_MONTH)
        assert (again.plan, again.total_cents) == ("starter", 4900)
        this_month = services.invoice_generate(tenant=world.tenant, month=timezone.now().date())
        assert this_month.plan == "pro"  # a month under way follows the plan

    def test_a_plan_changed_during_the_month_bills_the_plan_it_ended_on(self, world):
        from tenants.services import tenant_update

        self._since(world.tenant, timezone.now() - timedelta(days=400))
        tenant_update(tenant=world.tenant, plan="pro")
        mid_month = datetime.combine(self.LAST_MONTH, datetime.min.time(), tzinfo=UTC) + timedelta(days=10)
        self._backdate_changes(world.tenant, mid_month)
        services.invoices_generate(month=self.LAST_MONTH)
        assert Invoice.objects.get(tenant=world.tenant, month=self.LAST_MONTH).plan == "pro"

    def test_a_tenant_cancelled_before_the_month_stays_unbilled_whatever_changes_later(self, world):
        from tenants.services import tenant_cancel, tenant_status_set, tenant_update

        self._since(world.tenant, timezone.now() - timedelta(days=400))
        tenant_cancel(tenant=world.tenant)
        self._backdate_changes(world.tenant, timezone.now() - timedelta(days=100))
        tenant_update(tenant=world.tenant, name="Acme Inc.")  # a later edit of the cancelled tenant
        assert not services.tenant_billed_for(tenant=world.tenant, month=self.LAST_MONTH)
        # Brought back this month: last month stays unbilled.
        tenant_status_set(tenant=world.tenant, status="active")
        invoice(world.tenant, month=self.LAST_MONTH)  # as an earlier run on what it knew might have
        assert services.invoices_generate(month=self.LAST_MONTH) == 0
        assert not Invoice.objects.filter(tenant=world.tenant, month=self.LAST_MONTH).exists()
        assert services.tenant_billed_for(tenant=world.tenant, month=timezone.now().date())

    def test_a_tenant_cancelled_during_the_month_is_billed_for_it(self, world):
        from tenants.services import tenant_cancel

        self._since(world.tenant, timezone.now() - timedelta(days=400))
        tenant_cancel(tenant=world.tenant)
        mid_month = datetime.combine(self.LAST_MONTH, datetime.min.time(), tzinfo=UTC) + timedelta(days=10)
        self._backdate_changes(world.tenant, mid_month)
        assert services.tenant_billed_for(tenant=world.tenant, month=self.LAST_MONTH)
        assert not services.tenant_billed_for(tenant=world.tenant, month=timezone.now().date())

    def test_a_month_that_has_not_begun_is_not_invoiced(self, world, console):
        from io import StringIO

        from django.core.management import CommandError, call_command

        upcoming = services.next_month(timezone.now().date().replace(day=1))
        with pytest.raises(ValueError, match="has not begun"):
            services.invoices_generate(month=upcoming)
        with pytest.raises(CommandError, match="has not begun"):
            call_command("usage_invoices", "--month", f"{upcoming:%Y-%m}", stdout=StringIO())
        page = console.post("/admin/usage/invoice/run/", {"month": f"{upcoming:%Y-%m}"})
        assert page.status_code == 200 and "That month has not begun." in page.content.decode()
        assert not Invoice.objects.exists()


class TestPartitions:
    @pytest.mark.django_db(transaction=True)
    def test_old_raw_rows_are_dropped_after_retention(self, world, settings):
        settings.USAGE_RAW_RETENTION_DAYS = 90
        old = timezone.now() - timedelta(days=200)
        recent = timezone.now() - timedelta(days=1)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                first = old.date().replace(day=1)
                cursor.execute(
                    f"CREATE TABLE usage_logs_p{first:%Y_%m} PARTITION OF usage_logs "
                    f"FOR VALUES FROM ('{first}') TO ('{services.next_month(first)}')"
                )
        events.usage_rows_insert([event(world.tenant, old), event(world.tenant, recent)])
        dropped = services.usage_partitions_prune()
        assert list(UsageLog.objects.values_list("timestamp", flat=True)) == [
            datetime.fromisoformat(recent.isoformat())
        ]
        if connection.vendor == "postgresql":
            assert dropped == [f"usage_logs_p{old:%Y_%m}"]

    @pytest.mark.skipif("connection.vendor != 'postgresql'")
    def test_old_rows_the_default_partition_caught_are_dropped_too(self, world, settings):
        settings.USAGE_RAW_RETENTION_DAYS = 90
        # No partition for a month 300 days back: its row lands in the default one.
        old, recent = timezone.now() - timedelta(days=300), timezone.now() - timedelta(days=1)
        events.usage_rows_insert([event(world.tenant, old), event(world.tenant, recent)])
        services.usage_partitions_prune()
        assert list(UsageLog.objects.values_list("timestamp", flat=True)) == [
            datetime.fromisoformat(recent.isoformat())
        ]

    def test_the_day_of_the_retention_cutoff_stays_whole_for_its_rollup(self, world, settings):
        settings.USAGE_RAW_RETENTION_DAYS = 90
        cutoff = services.raw_retention_cutoff()
        first_minute = datetime.combine(cutoff.date(), datetime.min.time(), tzinfo=UTC) + timedelta(seconds=1)
        events.usage_rows_insert([event(world.tenant, first_minute), event(world.tenant, cutoff)])
        services.usage_partitions_prune()
        assert UsageLog.objects.count() == 2
        services.usage_rollup(day=cutoff.date())
        assert DailyUsage.objects.get(tenant=world.tenant, day=cutoff.date()).requests == 2

    @pytest.mark.skipif("connection.vendor != 'postgresql'")
    def test_a_month_the_default_partition_caught_gets_its_partition_and_its_rows(self, world, settings):
        settings.USAGE_RAW_RETENTION_DAYS = 30
        later = timezone.now() + timedelta(days=130)  # beyond the partitions made so far
        events.usage_rows_insert(
            [event(world.tenant, later), event(world.tenant, later + timedelta(seconds=1))]
        )
        old = timezone.now() - timedelta(days=300)
        events.usage_rows_insert([event(world.tenant, old)])  # in the default partition too
        with mock.patch("django.utils.timezone.now", return_value=later):
            created = services.usage_partitions_ensure()
            services.usage_partitions_prune()
        assert created[0] == f"usage_logs_p{later:%Y_%m}"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {created[0]}")
            assert cursor.fetchone()[0] == 2
            cursor.execute("SELECT count(*) FROM usage_logs_default")
            assert cursor.fetchone()[0] == 0  # the month moved out, the old row pruned
        assert UsageLog.objects.count() == 2
        events.usage_rows_insert([event(world.tenant, later + timedelta(seconds=2))])
        assert UsageLog.objects.filter(timestamp__gte=later).count() == 3

    @pytest.mark.django_db(transaction=True)
    def test_a_month_moved_out_of_the_default_partition_while_flushes_write_to_it(self, world):
        if connection.vendor != "postgresql":
            pytest.skip("partitions are PostgreSQL's")
        import threading

        import psycopg

        from tests.live import database_url_of_tests

        later = timezone.now() + timedelta(days=130)  # a month with no partition yet
        events.usage_rows_insert([event(world.tenant, later + timedelta(seconds=n)) for n in range(20_000)])
        written, stop = [], threading.Event()

        def flushes() -> None:  # another process's flushes, into the same month, all along
            with psycopg.connect(database_url_of_tests(), autocommit=True) as other:
                while not stop.is_set():
                    moment = later + timedelta(hours=1, seconds=len(written))
                    try:
                        other.execute(
                            "INSERT INTO usage_logs (event_id, request_id, tenant_id, endpoint, method, "
                            'status_code, outcome, latency_ms, "timestamp") '
                            "VALUES (%s, '', %s, '/', 'GET', 200, 'ok', 1, %s)",
                            [uuid.uuid4(), world.tenant.id, moment],
                        )
                    except psycopg.errors.CheckViolation:
                        continue  # routed before the attach it waited for: a flush's batch is stored again
                    written.append(moment)

        writer = threading.Thread(target=flushes)
        writer.start()
        try:
            with mock.patch("django.utils.timezone.now", return_value=later):
                services.usage_partitions_ensure()
        finally:
            stop.set()
            writer.join()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM usage_logs_p{later:%Y_%m}")
            assert cursor.fetchone()[0] == 20_000 + len(written)
            cursor.execute(f"DROP TABLE usage_logs_p{later:%Y_%m}")  # DDL outlives this test's rows

    @pytest.mark.skipif("connection.vendor != 'postgresql'")
    def test_partitions_are_created_ahead(self, db):
        created = services.usage_partitions_ensure(months_ahead=3)
        assert len(created) == 4
        with connection.cursor() as cursor:
            cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE 'usage_logs_p%%'")
            names = {row[0] for row in cursor.fetchall()}
        assert set(created) <= names


@pytest.mark.redis
def test_metrics_of_the_limiter_and_the_usage_pipeline(world, client_for, api, buffer):
    from prometheus_client import REGISTRY

    samples = {
        "rate_limit_decisions_total": {"decision": "allowed", "plan": "starter", "window": "all"},
        "rate_limit_check_seconds_count": {},
        "usage_events_total": {"destination": "buffer"},
        "usage_events_flushed_total": {},
        "usage_flush_seconds_count": {},
    }

    def read() -> dict[str, float]:
        return {name: REGISTRY.get_sample_value(name, labels) or 0.0 for name, labels in samples.items()}

    before = read()
    client_for(world.admin).get("/api/v1/usage")  # stores what is pending first: nothing yet
    services.usage_flush()  # stores the usage read's own event
    after = read()
    assert {name: after[name] - before[name] for name in samples} == {
        "rate_limit_decisions_total": 1,
        "rate_limit_check_seconds_count": 1,
        "usage_events_total": 1,
        "usage_events_flushed_total": 1,
        "usage_flush_seconds_count": 2,
    }
    text = api.get("/metrics").content.decode()
    assert 'rate_limit_decisions_total{decision="allowed",plan="starter",window="all"}' in text


@pytest.mark.redis
def test_a_poison_event_does_not_hold_back_the_others(world, buffer, make_key):
    api_key, _ = make_key()
    good = event(world.tenant)
    good["api_key_id"] = str(api_key.id)
    gone_key = event(world.tenant)
    gone_key["api_key_id"] = str(uuid.uuid4())  # a key that no longer exists
    gone_tenant = event(world.tenant)
    gone_tenant["tenant_id"] = str(uuid.uuid4())  # a tenant deleted since
    nested = b"[" * 100_000  # deeper than the JSON decoder's recursion
    buffer.rpush(events.BUFFER_KEY, json.dumps(good), b"{not json", nested, json.dumps({"event_id": "x"}))
    buffer.rpush(events.BUFFER_KEY, json.dumps(gone_key), json.dumps(gone_tenant))
    assert services.usage_flush().inserted == 2
    stored = {str(row.event_id): row for row in UsageLog.objects.all()}
    assert stored[good["event_id"]].api_key_id == api_key.id
    assert stored[gone_key["event_id"]].api_key_id is None
    assert buffer.llen(events.BUFFER_KEY) == 0 and buffer.zcard(events.INFLIGHT_INDEX_KEY) == 0


@pytest.mark.redis
@pytest.mark.parametrize(
    "bad",
    [
        {"tenant_id": "not-a-uuid"},
        {"tenant_id": ["x"]},
        {"user_id": "nope"},
        {"timestamp": "yesterday"},
        {"timestamp": "2026-11-22T10:00:00"},
        {"timestamp": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC
        {"timestamp": "9999-12-31T23:00:00-05:00"},  # after year 9999 in UTC
        {"endpoint": None},
        {"endpoint": "/api/v1/a\x00b"},
        {"status_code": "200"},
        {"latency_ms": float("nan")},
        {"outcome": "splendid"},
        {"request_size_bytes": 99_999_999_999},
        {"endpoint": "/api/v1/\ud800"},
    ],
)
def test_an_event_no_row_can_hold_is_set_aside_and_the_rest_stored(world, buffer, client_for, bad):
    good = [event(world.tenant) for _ in range(3)]
    poison = {**event(world.tenant), **bad}
    buffer.rpush(events.BUFFER_KEY, json.dumps(good[0]), json.dumps(poison), *map(json.dumps, good[1:]))
    assert services.usage_flush().inserted == 3
    assert {str(row.event_id) for row in UsageLog.objects.all()} == {e["event_id"] for e in good}
    assert [json.loads(item)["event_id"] for item in buffer.lrange(events.DEAD_LETTER_KEY, 0, -1)] == [
        poison["event_id"]
    ]
    assert buffer.llen(events.BUFFER_KEY) == 0 and buffer.zcard(events.INFLIGHT_INDEX_KEY) == 0
    assert client_for(world.admin).get("/api/v1/usage").json()["totals"]["requests"] == 3


@pytest.mark.redis
def test_a_huge_declared_body_is_refused_counted_and_does_not_poison_the_pipeline(
    world, buffer, make_key, client_for
):
    _, secret = make_key()
    key = APIClient()
    key.credentials(HTTP_X_API_KEY=secret)
    refused = key.generic(
        "POST", "/api/v1/items", "{}", CONTENT_TYPE="application/json", CONTENT_LENGTH="99999999999"
    )
    assert refused.status_code == 413
    assert client_for(world.outsider).get("/api/v1/usage").status_code == 200
    assert client_for(world.admin).get("/api/v1/usage").json()["totals"] == {
        "requests": 1,
        "errors": 1,
        "rate_limited": 0,
    }
    row = UsageLog.objects.get(tenant=world.tenant, status_code=413)
    assert row.request_size_bytes is None  # refused unread: nothing was received
    assert buffer.llen(events.DEAD_LETTER_KEY) == 0


@pytest.mark.redis
def test_a_row_the_database_refuses_is_set_aside_alone(world, buffer):
    # A refusal the checks cannot foresee, made by the database itself: a trigger that rejects 418s.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION no_teapots() RETURNS trigger AS $$ BEGIN IF NEW.status_code = 418 THEN "
                "RAISE EXCEPTION 'no teapots'; END IF; RETURN NEW; "  # a plain error, not a row's refusal
                "END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER no_teapots BEFORE INSERT ON usage_logs "
                "FOR EACH ROW EXECUTE FUNCTION no_teapots()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER no_teapots BEFORE INSERT ON usage_logs WHEN NEW.status_code = 418 "
                "BEGIN SELECT RAISE(ABORT, 'no teapots'); END"
            )
    good = [event(world.tenant) for _ in range(4)]
    teapot = event(world.tenant, status=418)
    buffer.rpush(events.BUFFER_KEY, *map(json.dumps, [*good[:2], teapot, *good[2:]]))
    assert services.usage_flush().inserted == 4
    assert UsageLog.objects.count() == 4 and not UsageLog.objects.filter(status_code=418).exists()
    assert [json.loads(item)["event_id"] for item in buffer.lrange(events.DEAD_LETTER_KEY, 0, -1)] == [
        teapot["event_id"]
    ]
    assert buffer.zcard(events.INFLIGHT_INDEX_KEY) == 0
    # Once what refused it is put right, an operator puts it back, and it is stored.
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER no_teapots" + (" ON usage_logs" if connection.vendor == "postgresql" else "")
        )
    out = StringIO()
    call_command("usage_dead_letters", stdout=out)
    assert out.getvalue().startswith("1 event(s) set aside") and teapot["event_id"] in out.getvalue()
    call_command("usage_dead_letters", "--requeue", stdout=out)
    assert services.usage_flush().inserted == 1
    assert UsageLog.objects.filter(status_code=418).count() == 1 and buffer.llen(events.DEAD_LETTER_KEY) == 0


def refuse_every_row(on: bool) -> None:
    """As a constraint a deploy added that no event meets yet: the database refuses every row."""
    postgresql = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if on and postgresql:
            cursor.execute("ALTER TABLE usage_logs ADD CONSTRAINT not_yet CHECK (latency_ms < 0) NOT VALID")
        elif on:
            cursor.execute(
                "CREATE TRIGGER not_yet BEFORE INSERT ON usage_logs BEGIN SELECT RAISE(ABORT, 'no'); END"
            )
        elif postgresql:
            cursor.execute("ALTER TABLE usage_logs DROP CONSTRAINT not_yet")
        else:
            cursor.execute("DROP TRIGGER not_yet")


@pytest.mark.redis
def test_a_refusal_of_every_row_is_the_databases_and_the_batch_waits(world, buffer, client_for):
    refuse_every_row(True)
    buffer.rpush(events.BUFFER_KEY, *(json.dumps(event(world.tenant)) for _ in range(3)), b"{not json")
    with pytest.raises(DatabaseError):
        services.usage_flush()
    with pytest.raises(DatabaseError):
        services.usage_flush(recover_all=True)  # taken again: still nothing set aside twice
    refuse_every_row(False)
    assert buffer.llen(events.DEAD_LETTER_KEY) == 0 and buffer.zcard(events.INFLIGHT_INDEX_KEY) == 1
    assert client_for(world.admin).get("/api/v1/usage").json()["totals"]["requests"] == 3
    assert buffer.lrange(events.DEAD_LETTER_KEY, 0, -1) == [b"{not json"]  # once, with the batch


@pytest.mark.redis
def test_a_lone_event_refused_with_every_row_waits_too(world, buffer, client_for, settings):
    settings.USAGE_FLUSH_BATCH_SIZE = 1  # a quiet hour: each flush takes one event
    refuse_every_row(True)
    buffer.rpush(events.BUFFER_KEY, json.dumps(event(world.tenant)))
    with pytest.raises(DatabaseError):
        services.usage_flush()
    refuse_every_row(False)
    assert buffer.llen(events.DEAD_LETTER_KEY) == 0 and buffer.zcard(events.INFLIGHT_INDEX_KEY) == 1
    assert client_for(world.admin).get("/api/v1/usage").json()["totals"]["requests"] == 1


@pytest.mark.redis
def test_a_database_that_cannot_take_rows_at_all_leaves_the_batch_in_flight(world, buffer, client_for):
    batch = [event(world.tenant) for _ in range(3)]
    buffer.rpush(events.BUFFER_KEY, *map(json.dumps, batch))
    with connection.cursor() as cursor:  # as during a deploy that has not created it yet
        cursor.execute("ALTER TABLE usage_logs RENAME TO usage_logs_elsewhere")
    with pytest.raises(DatabaseError):
        services.usage_flush()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE usage_logs_elsewhere RENAME TO usage_logs")
    assert buffer.llen(events.DEAD_LETTER_KEY) == 0 and buffer.zcard(events.INFLIGHT_INDEX_KEY) == 1
    assert client_for(world.admin).get("/api/v1/usage").json()["totals"]["requests"] == 3
    assert buffer.zcard(events.INFLIGHT_INDEX_KEY) == 0


@pytest.mark.django_db(transaction=True)
def test_two_rollups_of_one_day_take_turns(world):
    if connection.vendor != "postgresql":
        pytest.skip("the race is PostgreSQL's (SQLite writes one transaction at a time)")
    import threading

    import psycopg

    from tests.live import database_url_of_tests

    events.usage_rows_insert([event(world.tenant) for _ in range(5)])
    day = timezone.now().date()
    # Another rollup of the day, half done: it has taken the day's lock, replaced the rows, not committed.
    other = psycopg.connect(database_url_of_tests())
    other.execute("SELECT pg_advisory_xact_lock(%s, %s)", [services.ROLLUP_LOCK, day.toordinal()])
    other.execute("DELETE FROM usage_daily WHERE day = %s", [day])
    other.execute(
        "INSERT INTO usage_daily (tenant_id, day, endpoint, method, status_class, requests, errors, "
        "rate_limited, latency_ms_sum) VALUES (%s, %s, '/api/v1/probe', 'GET', '2xx', 5, 0, 0, 10)",
        [world.tenant.id, day],
    )
    failures: list[Exception] = []

    def rollup() -> None:
        try:
            services.usage_rollup(day=day)
        except Exception as exc:
            failures.append(exc)
        finally:
            connection.close()

    second = threading.Thread(target=rollup)
    second.start()
    with psycopg.connect(database_url_of_tests()) as watcher:
        for _ in range(500):  # until the second rollup waits on a lock (at most about 5 s)
            if watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
                break
            second.join(0.01)
    other.commit()
    other.close()
    second.join(30)
    assert not failures
    assert list(DailyUsage.objects.filter(day=day).values_list("requests", flat=True)) == [5]
