"""Redis clients for the event bus, one of each kind per process."""

from functools import cache

import redis
import redis.asyncio as aredis
from django.conf import settings


@cache
def sync_redis() -> "redis.Redis":
    return redis.Redis.from_url(
        settings.REDIS_URL, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
    )


def async_redis() -> "aredis.Redis":
    # Not cached: an asyncio client belongs to the event loop that made it.
    return aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


LINKS_VERSION_KEY = "copier:links_version"
COPIER_HEARTBEAT_KEY = "copier:heartbeat"
CELERY_HEARTBEAT_KEY = "celery:heartbeat"
