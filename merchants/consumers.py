"""``/ws/merchant/``: the merchant portal's live notices (a ticket needs the
merchant, the merchant is invited into a chat, a resend task arrives)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts import roles
from merchants.selectors import merchant_id_for
from merchants.services import merchant_group


class MerchantConsumer(AsyncJsonWebsocketConsumer):
    """For merchant staff only, and only their own merchant's group: the
    group name comes from the session's user, never from the client."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        merchant_id = await database_sync_to_async(_merchant_of)(user)
        if merchant_id is None:
            await self.close(code=4403)
            return
        self.group = merchant_group(merchant_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if text_data is None or len(text_data) > 1024:
            await self.send_json({"type": "error", "code": "frame_refused", "detail": "Send small JSON text frames."})
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            await self.send_json({"type": "error", "code": "malformed_json", "detail": "Frames are JSON objects."})
            return
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json({"type": "error", "code": "unsupported", "detail": "This socket only listens."})

    async def broadcast(self, event) -> None:
        await self.send_json(event["payload"])


def _merchant_of(user) -> int | None:
    if not roles.is_merchant_staff(user):
        return None
    return merchant_id_for(user=user)
