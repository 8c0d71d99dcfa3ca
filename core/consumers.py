"""The base of every websocket here: JSON frames with a size cap, groups that
survive the channel layer going away for a moment, and no database hop per
frame.

Close codes the pages act on:

- 4400: the socket's own address is malformed (a bad ``after_seq``);
- 4401: not logged in (the page goes to the login form);
- 4403: not allowed (the page stops trying);
- 1012 (a server restarting) and 1013 (``RECONNECT_NOW``, the channel layer
  is away for a moment): the page reconnects at once, with a little jitter,
  and asks for what it missed;
- anything else: the page reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch

from core.errors import is_outage

logger = logging.getLogger(__name__)

BAD_REQUEST = 4400
NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
RECONNECT_NOW = 1013

# how long a consumer keeps trying the channel layer before it gives the
# socket back with RECONNECT_NOW (Redis restarting takes a second or two)
LAYER_RETRY_DELAYS_S = (0.1, 0.25, 0.5, 1.0, 1.5)


def in_pool(fn):
    """``fn`` as a coroutine on asgiref's thread pool, each call with its own
    pooled database connection: Channels' ``database_sync_to_async`` runs every
    socket of a process on one shared thread, where connects queue up."""
    from asgiref.sync import sync_to_async
    from django.db import close_old_connections

    def run(*args, **kwargs):
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


class LayerUnavailable(Exception):
    """The channel layer did not answer within the retries."""


async def with_layer_retry(operation, *args) -> Any:
    """Run a channel-layer call, retrying while Redis comes back."""
    for delay in (*LAYER_RETRY_DELAYS_S, None):
        try:
            return await operation(*args)
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as error:
            if delay is None:
                raise LayerUnavailable(str(error)) from error
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """``AsyncJsonWebsocketConsumer`` for this project.

    Subclasses call ``join(group)`` in ``connect`` (it raises
    ``LayerUnavailable`` when Redis stays away; ``websocket_connect`` then
    closes with ``RECONNECT_NOW``), ``publish`` for best-effort frames to a
    group, and implement ``recover`` for what to do after the layer was away.
    """

    MAX_FRAME = 4096

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.joined: list[str] = []
        self.accepted = False  # the handshake answered (an outage after it closes without a second accept)

    # --- the ASGI entry: the socket's own channel, with retries ---------------

    async def __call__(self, scope, receive, send) -> None:
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        if self.channel_layer is None:
            callables = [receive]
        else:
            try:
                self.channel_name = await with_layer_retry(self.channel_layer.new_channel)
            except LayerUnavailable:
                logger.warning("channel layer unavailable; socket asked to reconnect")
                await self._refuse_for_now(receive, send)
                return
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            callables = [receive, self.channel_receive]
        try:
            await await_many_dispatch(callables, self.dispatch)
        except StopConsumer:
            pass

    @staticmethod
    async def _refuse_for_now(receive, send) -> None:
        message = await receive()
        if message.get("type") == "websocket.connect":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": RECONNECT_NOW})

    async def dispatch(self, message) -> None:
        # Channels closes stale database connections before every handler (a
        # hop through the one database thread per frame and per wake-up);
        # these consumers touch the database only through database_sync_to_async,
        # which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        try:
            await handler(message)
        except StopConsumer:
            raise
        except Exception as error:
            if not is_outage(error):
                raise
            # the database restarting: the page comes back at once and re-reads what it missed
            logger.warning("database unavailable in a socket (%s); asked to reconnect", type(error).__name__)
            if message.get("type") == "websocket.connect" and not self.accepted:
                await self.accept()  # so that the close code reaches the page
            await self.close(code=RECONNECT_NOW)

    async def websocket_connect(self, message) -> None:
        try:
            await self.connect()
        except LayerUnavailable:
            logger.warning("channel layer unavailable at connect; socket asked to reconnect")
            await self.accept()
            await self.close(code=RECONNECT_NOW)

    async def websocket_disconnect(self, message) -> None:
        await self.disconnect(message.get("code", 1000))
        for group in self.joined:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # the process's membership goes with the socket anyway
                logger.debug("group_discard %s failed", group, exc_info=True)
        self.joined = []
        raise StopConsumer()

    async def accept(self, subprotocol=None, headers=None) -> None:
        # which process serves this socket (operations, and the scale-out tests)
        served_by = f"{socket.gethostname()}:{os.getpid()}".encode()
        await super().accept(subprotocol=subprotocol, headers=[*(headers or []), (b"x-served-by", served_by)])
        self.accepted = True

    # --- groups -----------------------------------------------------------------

    async def join(self, group: str) -> None:
        await with_layer_retry(self.channel_layer.group_add, group, self.channel_name)
        self.joined.append(group)

    async def leave(self, group: str) -> None:
        """Stop hearing ``group`` now (a socket refused after it joined)."""
        if group in self.joined:
            self.joined.remove(group)
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # the membership goes with the socket anyway
                logger.debug("group_discard %s failed", group, exc_info=True)

    async def publish(self, group: str, message: dict[str, Any]) -> bool:
        """Best effort (typing, who is here): False when the layer is away."""
        try:
            await self.channel_layer.group_send(group, message)
            return True
        except Exception:
            logger.debug("group_send to %s failed", group, exc_info=True)
            return False

    async def send_to(self, channel: str, message: dict[str, Any]) -> bool:
        try:
            await self.channel_layer.send(channel, message)
            return True
        except Exception:
            logger.debug("send to %s failed", channel, exc_info=True)
            return False

    async def layer_reconnected(self, event) -> None:
        """The channel layer was away: what was published meanwhile is lost."""
        await self.recover()

    async def recover(self) -> None:
        """Tell the page to re-read (it asks the server for what it missed)."""
        await self.send_json({"type": "resync"})

    # --- frames -------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """Oversized, binary or malformed frames get an error frame, never a crash."""
        if text_data is None or len(text_data) > self.MAX_FRAME:
            await self.send_error("frame_refused", f"Send JSON text frames under {self.MAX_FRAME // 1024} KiB.")
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):  # [[[[…]]]] nested past Python's limit
            await self.send_error("malformed_json", "Frames are JSON objects.")
            return
        if not isinstance(content, dict):
            await self.send_error("malformed_json", "Frames are JSON objects.")
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: dict, **kwargs) -> None:
        # a listening socket: a ping keeps proxies from closing it
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_error("unsupported", "This socket only listens.")

    async def send_error(self, code: str, detail: str) -> None:
        await self.send_json({"type": "error", "code": code, "detail": detail})

    async def broadcast(self, event) -> None:
        await self.send_json(event["payload"])
