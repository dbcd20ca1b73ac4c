"""Pushing "something changed" to a user's open dashboards."""

import logging

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def notify_user(user_id: int, reason: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            user_group(user_id), {"type": "copier.update", "reason": reason}
        )
    except (redis.RedisError, OSError) as e:
        # The page still shows the change on its next refresh.
        log.warning("could not push an update to user %s: %s", user_id, e)
