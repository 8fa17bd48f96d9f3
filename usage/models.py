from django.db import models
from django.db.models.functions import Coalesce


class RateLimit(models.Model):
    """A tenant's own limits; an empty column falls back to the plan's default (settings.PLANS)."""

    tenant = models.OneToOneField(
        "tenants.Tenant", on_delete=models.CASCADE, primary_key=True, related_name="rate_limit"
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    requests_per_hour = models.PositiveIntegerField(null=True, blank=True)
    requests_per_day = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "rate_limits"
        constraints = [
            models.CheckConstraint(
                condition=(
                    (models.Q(requests_per_minute__isnull=True) | models.Q(requests_per_minute__gte=1))
                    & (models.Q(requests_per_hour__isnull=True) | models.Q(requests_per_hour__gte=1))
                    & (models.Q(requests_per_day__isnull=True) | models.Q(requests_per_day__gte=1))
                ),
                name="rate_limits_positive",
                violation_error_message="A rate limit is at least 1 request (leave it empty for the plan's).",
            )
        ]

    def __str__(self) -> str:
        return f"rate limits of {self.tenant_id}"


RATE_LIMITED = models.Q(status_code=429)
UNAUTHORIZED = models.Q(status_code__in=(401, 403))
# The requests API.md counts as errors: answered 400 or more, other than 429 (rate_limited).
ERRORS = models.Q(status_code__gte=400) & ~RATE_LIMITED
# The requests a tenant pays for: what was served, not refusals (a revoked key's, a suspension's, a
# throttled burst's) nor our failures (5xx). Over raw rows, and over daily rollups.
BILLABLE = models.Q(status_code__lt=500) & ~UNAUTHORIZED & ~RATE_LIMITED
ROLLED_BILLABLE = (
    models.Sum("requests")
    - models.Sum("rate_limited")
    - models.Sum("unauthorized")
    - Coalesce(models.Sum("requests", filter=models.Q(status_class="5xx")), 0)
)


class UsageLog(models.Model):
    """One request made with a tenant's credential. On PostgreSQL the table is partitioned by month
    (see the migration); `event_id` is ours, unique per request, so a batch delivered twice is stored once."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        CLIENT_ERROR = "client_error", "Client error"
        SERVER_ERROR = "server_error", "Server error"
        RATE_LIMITED = "rate_limited", "Rate limited"
        UNAUTHORIZED = "unauthorized", "Unauthorized"

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField()
    request_id = models.CharField(max_length=128)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    api_key = models.ForeignKey(
        "apikeys.ApiKey", on_delete=models.DO_NOTHING, null=True, blank=True, related_name="+", db_index=False
    )
    user_id = models.UUIDField(null=True, blank=True)
    endpoint = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    status_code = models.IntegerField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    latency_ms = models.FloatField()
    request_size_bytes = models.IntegerField(null=True, blank=True)
    response_size_bytes = models.IntegerField(null=True, blank=True)
    timestamp = models.DateTimeField()

    class Meta:
        db_table = "usage_logs"
        ordering = ["-timestamp"]
        constraints = [
            models.UniqueConstraint(fields=["event_id", "timestamp"], name="usage_logs_event_unique")
        ]
        indexes = [
            models.Index(fields=["tenant", "-timestamp"], name="usage_logs_tenant_ts"),
            models.Index(fields=["-timestamp"], name="usage_logs_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.endpoint} {self.status_code}"


class DailyUsage(models.Model):
    """Raw usage rolled up per tenant, day, endpoint and status class; what billing reads."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    endpoint = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    status_class = models.CharField(max_length=3, help_text="2xx, 3xx, 4xx or 5xx")
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    rate_limited = models.PositiveBigIntegerField(default=0)
    # A default in the database too: a worker of the previous release, still rolling up during a
    # deploy, inserts rows without this column.
    unauthorized = models.PositiveBigIntegerField(
        default=0,
        db_default=0,
        help_text="Answered 401 or 403: refused by the credential's or role's rights.",
    )
    latency_ms_sum = models.FloatField(default=0)

    class Meta:
        db_table = "usage_daily"
        ordering = ["-day"]
        verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "endpoint", "method", "status_class"], name="usage_daily_unique"
            )
        ]
        indexes = [models.Index(fields=["tenant", "day"], name="usage_daily_tenant_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.method} {self.endpoint} {self.status_class}: {self.requests}"


class RollupRun(models.Model):
    """When a day was last rolled up. A day rolled up before it ended (the hourly job's "today"), or
    never, is rolled up again by the next job: after the jobs were down, every day since catches up."""

    day = models.DateField(primary_key=True)
    rolled_at = models.DateTimeField()

    class Meta:
        db_table = "usage_rollup_runs"
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.day} rolled up at {self.rolled_at}"


class Invoice(models.Model):
    """A tenant's monthly statement, made by the billing job from the daily rollups. Money in cents."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="invoices")
    month = models.DateField(help_text="The first day of the month billed.")
    plan = models.CharField(max_length=32)
    requests = models.PositiveBigIntegerField(
        help_text="Billable requests: all but those refused (401, 403, 429) or failed (5xx)."
    )
    included_requests = models.PositiveBigIntegerField()
    overage_requests = models.PositiveBigIntegerField()
    base_cents = models.PositiveBigIntegerField()
    overage_cents = models.PositiveBigIntegerField()
    total_cents = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3, default="USD")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "invoices"
        ordering = ["-month"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "month"], name="invoices_tenant_month_unique")
        ]

    def __str__(self) -> str:
        # Without its amount: the console prints it where the Support group, which sees no money, looks too.
        return f"{self.tenant_id} {self.month:%Y-%m}"

    @property
    def total_amount(self) -> str:
        return f"{self.total_cents // 100:,}.{self.total_cents % 100:02d} {self.currency}"
