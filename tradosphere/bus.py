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


def _stream_id(raw: str) -> tuple[int, int]:
    ms, _, seq = raw.partition("-")
    return int(ms), int(seq or 0)


async def trim_acknowledged(client: "aredis.Redis", stream: str) -> int:
    """Delete the entries every consumer group has read and acknowledged; return how many.

    Streams are not capped by length: a cap would drop entries nobody has
    read when consumers fall behind. A stream no group reads is kept whole.
    """
    groups = await client.xinfo_groups(stream)
    if not groups:
        return 0
    keep: tuple[int, int] | None = None
    for group in groups:
        ms, seq = _stream_id(group["last-delivered-id"])
        oldest = (ms, seq + 1)  # everything after the last delivery is still to be read
        if group["pending"]:
            summary = await client.xpending(stream, group["name"])
            oldest = min(oldest, _stream_id(summary["min"]))
        keep = oldest if keep is None else min(keep, oldest)
    assert keep is not None
    trimmed: int = await client.xtrim(stream, minid=f"{keep[0]}-{keep[1]}", approximate=False)
    return trimmed
