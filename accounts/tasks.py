from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from accounts.services import sessions_prune as sessions_prune_service


@shared_task
def sessions_prune() -> int:
    """Drops sessions that ended or expired more than 30 days ago."""
    return sessions_prune_service(before=timezone.now() - timedelta(days=30))
