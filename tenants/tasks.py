from celery import shared_task

from tenants.idempotency import idempotency_records_prune


@shared_task(ignore_result=True)
def idempotency_records_expire() -> int:
    """Deletes the Idempotency-Key records older than their 24 hours."""
    return idempotency_records_prune()
