from celery import shared_task

from recommendations.remote import UpstreamError, UpstreamRejected, service_client


@shared_task(
    bind=True,
    ignore_result=True,
    acks_late=True,
    autoretry_for=(UpstreamError,),
    retry_backoff=2,
    retry_backoff_max=600,
    max_retries=20,
)
def pipeline_forward(self: object, tenant_id: str, kind: str, records: list[dict]) -> None:
    """Sends accepted items or interactions to the data pipeline, retrying until it takes them, or
    until it refuses them (a 4xx, logged and counted by the client: sending them again would not help)."""
    client = service_client("data_pipeline")
    if client is None:
        return
    try:
        client.post(f"/internal/pipeline/{kind}", {"tenant_id": tenant_id, kind: records})
    except UpstreamRejected:
        return


@shared_task(ignore_result=True)
def engine_train(tenant_id: str) -> None:
    from recommendations.services import engine_train as train

    train(tenant_id=tenant_id)


@shared_task(ignore_result=True)
def engines_train_stale() -> int:
    from recommendations.services import engines_train_stale as train_stale

    return train_stale()


@shared_task(ignore_result=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=5)
def items_embed(tenant_id: str, item_ids: list[str]) -> int:
    from recommendations.services import items_embed as embed

    return embed(tenant_id=tenant_id, item_ids=item_ids)
