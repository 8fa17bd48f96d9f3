from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from usage.models import Invoice
from usage.services import raw_retention_start

MAX_SPAN = timedelta(days=366)
MAX_HOURLY_SPAN = timedelta(days=31)
# Periods stay well inside what datetimes can hold, so that their month and buckets can be computed.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


class UsageQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField(
        required=False,
        help_text="Default: the start of the current month (UTC), or with only `end`, of the month `end` "
        "closes; not earlier than the first day whose requests are still kept (USAGE_RAW_RETENTION_DAYS).",
    )
    end = serializers.DateTimeField(required=False, help_text="Default: one calendar month after `start`.")
    granularity = serializers.ChoiceField(choices=["hour", "day"], default="day")

    def validate(self, data: dict) -> dict:
        for name in ("start", "end"):
            if name in data and not EARLIEST <= data[name] < LATEST:
                raise serializers.ValidationError(
                    {name: [f"Must be from the year {EARLIEST.year} to before the year {LATEST.year}."]}
                )
        if "start" in data:
            start = data["start"].astimezone(UTC)
        else:
            # The calendar month: this one, or with only `end`, the one that `end` closes.
            anchor = (
                data["end"].astimezone(UTC) - timedelta(microseconds=1) if "end" in data else timezone.now()
            )
            start = anchor.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if "end" in data:
            end = data["end"].astimezone(UTC)
        else:
            end = _add_month(start)
        if end <= start:
            raise serializers.ValidationError({"end": ["Must be after start."]})
        if end - start > MAX_SPAN:
            raise serializers.ValidationError({"end": ["The period may span at most 366 days."]})
        if data["granularity"] == "hour" and end - start > MAX_HOURLY_SPAN:
            raise serializers.ValidationError({"granularity": ["Hourly series may span at most 31 days."]})
        kept_from = raw_retention_start()
        if "start" not in data and start < kept_from < end:
            start = kept_from  # the month asked for by default, from the first day still kept
        if start < kept_from:
            raise serializers.ValidationError(
                {
                    "start": [
                        f"Usage is kept request by request for {settings.USAGE_RAW_RETENTION_DAYS} days: "
                        f"from {kept_from:%Y-%m-%d}. Earlier months are in /api/v1/usage/invoices."
                    ]
                }
            )
        return {"start": start, "end": end, "granularity": data["granularity"]}


def _add_month(moment: datetime) -> datetime:
    year, month = divmod(moment.month, 12)
    try:
        return moment.replace(year=moment.year + year, month=month + 1)
    except ValueError:  # the 31st of a month followed by a shorter one
        return (moment.replace(day=1, year=moment.year + year, month=month + 1) + timedelta(days=31)).replace(
            day=1
        )


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class TotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Answers with a status of 400 or more, other than 429.")  # type: ignore[assignment]
    rate_limited = serializers.IntegerField(help_text="Answers with status 429.")


class EndpointUsageSerializer(serializers.Serializer):
    endpoint = serializers.CharField(help_text="The route pattern, e.g. /api/v1/items/{item_id}.")
    method = serializers.CharField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]
    p50_ms = serializers.FloatField()
    p95_ms = serializers.FloatField()


class SeriesPointSerializer(serializers.Serializer):
    bucket = serializers.DateTimeField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]


class UsageSummarySerializer(serializers.Serializer):
    period = PeriodSerializer()
    totals = TotalsSerializer()
    by_endpoint = EndpointUsageSerializer(many=True)
    series = SeriesPointSerializer(many=True)


class InvoiceSerializer(serializers.ModelSerializer):
    month = serializers.SerializerMethodField(help_text="The month billed, YYYY-MM.")

    class Meta:
        model = Invoice
        fields = [
            "id",
            "month",
            "plan",
            "requests",
            "included_requests",
            "overage_requests",
            "base_cents",
            "overage_cents",
            "total_cents",
            "currency",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_month(self, invoice: Invoice) -> str:
        return f"{invoice.month:%Y-%m}"
