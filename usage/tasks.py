from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from usage import services


@shared_task(ignore_result=True, acks_late=True)
def usage_flush() -> int:
    """Moves buffered usage events into usage_logs (beat: every few seconds)."""
    return services.usage_flush().inserted


@shared_task(ignore_result=True)
def usage_rollup_recent() -> None:
    """Rolls up yesterday (late events included), today so far, and earlier days missed. What the
    buffer holds is stored first: after an outage it holds the missed days' events."""
    services.usage_pending_flush()
    for day in services.usage_rollup_due(today=timezone.now().date()):
        services.usage_rollup(day=day)


@shared_task(ignore_result=True)
def usage_partitions_maintain() -> None:
    services.usage_partitions_ensure()
    services.usage_partitions_prune()


@shared_task(ignore_result=True)
def invoices_generate_previous_month() -> int:
    first_of_this_month = timezone.now().date().replace(day=1)
    return services.invoices_generate(month=first_of_this_month - timedelta(days=1))
