"""Websockets for the agent console."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts import roles
from tickets.events import CONSOLE, agent_group


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/console/``: queue and ticket changes, assignment offers, SLA
    alerts and shift reminders, for staff only."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        if not await database_sync_to_async(roles.is_agent)(user):
            await self.close(code=4403)
            return
        self.groups_joined = [CONSOLE, agent_group(user.pk)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    MAX_FRAME = 4096

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """Oversized, binary or malformed frames get an error frame, never a crash."""
        if text_data is None or len(text_data) > self.MAX_FRAME:
            await self.send_json({"type": "error", "code": "frame_refused", "detail": "Send JSON text frames under 4 KiB."})
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            await self.send_json({"type": "error", "code": "malformed_json", "detail": "Frames are JSON objects."})
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content, **kwargs) -> None:
        # the console only listens; a ping keeps proxies from closing the socket
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json({"type": "error", "code": "unsupported", "detail": "This socket only listens."})

    async def broadcast(self, event) -> None:
        await self.send_json(event["payload"])
