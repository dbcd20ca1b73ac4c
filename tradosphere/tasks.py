import time

from celery import shared_task

from tradosphere.bus import CELERY_HEARTBEAT_KEY, sync_redis


@shared_task(name="tradosphere.tasks.heartbeat", ignore_result=True, expires=10)
def heartbeat() -> None:
    """Proves a worker is consuming tasks; /healthz reads its age."""
    sync_redis().set(CELERY_HEARTBEAT_KEY, f"{time.time():.3f}", ex=120)
