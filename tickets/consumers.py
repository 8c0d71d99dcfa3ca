"""Websockets for the agent console."""

from __future__ import annotations

from channels.db import database_sync_to_async

from accounts import roles
from core.consumers import FORBIDDEN, NOT_AUTHENTICATED, LiveConsumer
from core.errors import DomainError
from tickets.events import CONSOLE, agent_group, ticket_group


class ConsoleConsumer(LiveConsumer):
    """``/ws/console/``: queue and ticket changes, assignment offers, SLA
    alerts and shift reminders, for staff only."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=NOT_AUTHENTICATED)
            return
        if not await database_sync_to_async(roles.is_agent)(user):
            await self.close(code=FORBIDDEN)
            return
        await self.join(CONSOLE)
        await self.join(agent_group(user.pk))
        await self.accept()


class ChatConsumer(LiveConsumer):
    """``/ws/tickets/<id>/chat/?after_seq=N``: the ticket's conversation for its
    buyer, staff and (once brought in) its merchant.

    Lossless by construction: join the group first, then replay every stored
    message with ``seq > after_seq`` from the database, then stream, dropping
    what was already sent. When the channel layer was away, replay again.
    Scope is checked at connect and on every action.
    """

    MAX_FRAME = 8 * 1024
    BURST = 10  # messages per window and connection
    WINDOW_S = 10.0

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.ticket_id = int(self.scope["url_route"]["kwargs"]["ticket_id"])
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=NOT_AUTHENTICATED)
            return
        if not await self._may_see():
            await self.close(code=FORBIDDEN)
            return
        self.is_staff = await database_sync_to_async(roles.is_agent)(self.user)
        self.last_seq = self._after_seq()
        self.sent_times: list[float] = []
        self.group = ticket_group(self.ticket_id)
        await self.join(self.group)
        await self.accept()
        await self._replay()
        # the others see who joined (the buyer sees the merchant come in, agents
        # see who else has the ticket open); each of them answers "here" to us alone
        role = await database_sync_to_async(roles.role_of)(self.user)
        self.me = {"id": self.user.pk, "name": self.user.name, "role": role, "key": _viewer_key(self.channel_name)}
        await self.publish(self.group, {
            "type": "broadcast", "sender": self.channel_name, "payload": {"type": "joined", "author": self.me},
        })

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "me"):
            await self.publish(self.group, {
                "type": "broadcast", "sender": self.channel_name, "payload": {"type": "left", "author": self.me},
            })

    async def recover(self) -> None:
        # wake-ups published while the layer was away are lost; the database is not
        if hasattr(self, "last_seq"):
            await self._replay()

    def _after_seq(self) -> int:
        from urllib.parse import parse_qs

        raw = parse_qs(self.scope.get("query_string", b"").decode()).get("after_seq", ["0"])[0]
        return int(raw) if raw.isdigit() else 0

    @database_sync_to_async
    def _may_see(self) -> bool:
        from tickets.errors import TicketNotFound
        from tickets.selectors import get_ticket_for

        try:
            get_ticket_for(user=self.user, ticket_id=self.ticket_id)
        except TicketNotFound:
            return False
        return True

    @database_sync_to_async
    def _stored_after(self, seq: int) -> list[dict]:
        from tickets.events import message_payload
        from tickets.selectors import get_ticket_for, messages_visible_to

        ticket = get_ticket_for(user=self.user, ticket_id=self.ticket_id)
        return [message_payload(m) for m in messages_visible_to(user=self.user, ticket=ticket).filter(seq__gt=seq)]

    async def _replay(self) -> None:
        for frame in await self._stored_after(self.last_seq):
            await self._send_message(frame)

    async def _send_message(self, frame: dict) -> None:
        self.last_seq = max(self.last_seq, frame["seq"])
        await self.send_json(frame)

    async def receive_json(self, content: dict, **kwargs) -> None:
        if not await self._may_see():  # scope again on every action
            await self.close(code=FORBIDDEN)
            return
        kind = content.get("type")
        if kind == "message":
            await self._post(content)
        elif kind == "typing":
            await self.publish(self.group, {
                "type": "broadcast", "sender": self.channel_name,
                "payload": {"type": "typing", "author": self.me},
            })
        elif kind == "sync":
            # the client's periodic check: anything stored that a dropped wake-up
            # never announced comes now, in order (the database is the truth)
            await self._replay()
            await self.send_json({"type": "synced", "seq": self.last_seq})
        elif kind == "read":
            # stored (the read receipt and the console's unread counts come from it), then told to the others
            seq = content.get("seq", self.last_seq)
            try:
                await database_sync_to_async(_mark_read)(self.user, self.ticket_id, seq)
            except DomainError as error:
                await self.send_error(error.code, str(error.detail))
        elif kind == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_error("unsupported", "Frame types: message, typing, read, sync, ping.")

    async def _post(self, content: dict) -> None:
        import time

        now = time.monotonic()
        self.sent_times = [t for t in self.sent_times if now - t < self.WINDOW_S]
        if len(self.sent_times) >= self.BURST:
            await self.send_error("throttled", "Too many messages; wait a few seconds.")
            return
        self.sent_times.append(now)
        body, client_id = content.get("body"), content.get("client_msg_id")
        if not isinstance(body, str) or (client_id is not None and not isinstance(client_id, str)):
            await self.send_error("invalid", "A message has a text body and an optional client_msg_id.")
            return
        try:
            message = await database_sync_to_async(_post_message)(self.user, self.ticket_id, body, client_id)
        except DomainError as error:
            await self.send_error(error.code, str(error.detail))
            return
        await self.send_json({"type": "ack", "client_msg_id": client_id, "seq": message.seq})
        if message.seq > self.last_seq + 1:
            # our own message is newer than the last one we showed: a wake-up was lost, fill the gap
            await self._replay()

    async def broadcast(self, event) -> None:
        payload = event["payload"]
        if payload.get("type") == "message":
            if payload.get("internal") and not self.is_staff:
                return
            if payload["seq"] <= self.last_seq:
                return  # already sent by the replay
            if payload["seq"] > self.last_seq + 1:
                # a wake-up overtook another (or one was dropped): fill the gap from the database, in order
                await self._replay()
                return
            await self._send_message(payload)
        elif payload.get("type") in ("typing", "joined", "here", "left"):
            sender = event.get("sender")
            if sender == self.channel_name:
                return
            if payload["type"] == "joined" and sender and hasattr(self, "me"):
                await self.send_to(sender, {
                    "type": "broadcast", "sender": self.channel_name, "payload": {"type": "here", "author": self.me},
                })
            await self.send_json(payload)
        elif payload.get("type") == "read":
            if payload.get("author", {}).get("id") != self.user.pk:  # one's own receipts are no news
                await self.send_json(payload)
        else:
            await self.send_json(payload)


def _viewer_key(channel_name: str) -> str:
    """A stable, opaque id for one open socket (one person may have two tabs)."""
    import hashlib

    return hashlib.blake2s(channel_name.encode(), digest_size=6).hexdigest()


def _mark_read(user, ticket_id: int, seq) -> int:
    from tickets.services import mark_read

    return mark_read(actor=user, ticket_id=ticket_id, seq=seq)


def _post_message(user, ticket_id: int, body: str, client_id: str | None):
    from tickets.services import post_message

    return post_message(actor=user, ticket_id=ticket_id, body=body, client_msg_id=client_id)
