from datetime import datetime

from celery import shared_task

from apikeys import services


@shared_task(ignore_result=True)
def api_key_touch(key_id: str, at: str) -> None:
    services.api_key_touch(key_id=key_id, at=datetime.fromisoformat(at))


@shared_task(ignore_result=True)
def api_keys_expire() -> int:
    return services.api_keys_expire()
