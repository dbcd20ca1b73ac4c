from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from copier.notify import user_group


class DashboardConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Pushes the signed-in user's own copier updates; nobody else's."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The socket only pushes; anything a client sends is ignored.
        return

    async def copier_update(self, message: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "update", **{k: v for k, v in message.items() if k != "type"}}
        )
