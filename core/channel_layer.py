"""The production channel layer: Redis pub/sub, one subscription per process.

Built on channels-redis's ``RedisPubSubChannelLayer`` rather than its
list-based ``RedisChannelLayer``, for three reasons found in production:

- **Idle sockets died.** The list layer waits for messages with a blocking
  ``BZPOPMIN`` of 5 s on a redis-py 8 connection whose socket timeout is also
  5 s: a socket that received nothing for ~5 s was closed with 1011. The
  pub/sub layer reads its subscription with a short poll that never times a
  socket out.
- **Cost per message.** The list layer pushes a copy per receiving process and
  pops each one with four Redis commands; pub/sub publishes once per group and
  each subscribed process fans out to its own sockets in memory.
- **State left behind.** The list layer keeps group members in Redis, so a
  killed process left dead members that every later message was copied to;
  here membership lives in the process and dies with it.

What this module adds to channels-redis:

- **Coalesced publishing.** What is published while a round trip to Redis
  is out goes, in order, in the next one as a pipeline (the stock layer
  makes one round trip per publish, one at a time under its lock).
- ``group_send_sync``: one ``PUBLISH`` (a pipeline for several groups) on a
  process-wide synchronous client, for code that runs outside an event loop
  (a request's ``on_commit``, a Celery task). ``async_to_sync(group_send)``
  would start a thread, an event loop and a connection pool per call.
  ``group_send_many_sync``: several events so, in one pipeline (what an HTTP
  request published, ``core.realtime.published_together``).
- **Recovery.** When the subscription connection fails (Redis restarted), the
  receiver logs it once, keeps trying (redis-py resubscribes on reconnect) and
  then wakes every socket of the process with ``{"type": "layer.reconnected"}``
  so each consumer re-reads from the database what it may have missed while
  the layer was away (the database is the truth; the layer only wakes).

Pub/sub delivers at most once: a message published while a process is not
subscribed is gone. That is why every consumer recovers from the database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from typing import Any

import redis
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _consistent_hash, _wrap_close, decode_hosts

logger = logging.getLogger(__name__)

RECONNECTED = {"type": "layer.reconnected"}

# options of the async pool that a synchronous client does not take
_ASYNC_ONLY_OPTIONS = {"address", "master_name", "sentinels", "sentinel_kwargs"}


class _Shard(RedisSingleShardConnection):
    """One Redis host: publishes coalesced into pipelines, and a receiver that
    survives Redis going away."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._outbox: list[tuple[list[tuple[str, bytes]], asyncio.Future]] = []
        self._sending = False  # a round trip of publishes is out
        self._sender: asyncio.Task | None = None

    async def _do_receiving(self) -> None:
        failed_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                    if failed_since is not None:
                        logger.warning("channel layer: subscriptions restored after %.1f s", loop.time() - failed_since)
                        failed_since = None
                        self.channel_layer.announce_reconnected()
                    self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception:
                if failed_since is None:
                    failed_since = loop.time()
                    logger.warning("channel layer: subscription connection lost; retrying", exc_info=True)
                await asyncio.sleep(0.25)

    # --- publishing: what callers publish while a round trip is out goes in the next one

    async def publish(self, channel: str, message: bytes) -> None:
        await self.publish_many([(channel, message)])

    async def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        """Publish ``items`` in order. With nothing on the way, at once, on the
        caller's own turn (the chat writer's batches never wait for a task
        switch). While a round trip is out, what others publish waits and goes
        in the next one, as one pipeline: a storm of sockets opening and
        closing (each announces itself) costs a few round trips instead of one
        each, and the order of publishing is kept."""
        if self._sending:
            sent = asyncio.get_running_loop().create_future()
            self._outbox.append((items, sent))
            await sent
            return
        self._sending = True
        try:
            await self._round_trip(items)
        finally:
            if self._outbox:  # what came meanwhile goes on without holding this caller
                self._sender = asyncio.get_running_loop().create_task(self._send_outbox())
            else:
                self._sending = False

    async def _send_outbox(self) -> None:
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    await self._round_trip([item for waiting, _ in batch for item in waiting])
                except Exception as error:  # each caller decides what a lost wake-up means
                    for _, sent in batch:
                        if not sent.done():
                            sent.set_exception(error)
                else:
                    for _, sent in batch:
                        if not sent.done():  # a caller cancelled meanwhile (its socket closed)
                            sent.set_result(None)
        finally:
            self._sending = False

    async def _round_trip(self, items: list[tuple[str, bytes]]) -> None:
        async with self._lock:
            self._ensure_redis()
            if len(items) == 1:
                await self._redis.publish(*items[0])
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, data in items:
                    pipe.publish(channel, data)
                await pipe.execute()


class _LoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [_Shard(host, self) for host in decode_hosts(kwargs.get("hosts"))]

    async def _subscribe_to_channel(self, channel: str) -> None:
        # the stock layer keeps the channel's queue when the subscribe fails;
        # a consumer that retries asks for a new channel, so drop it
        self.channels[channel] = asyncio.Queue()
        try:
            await self._get_shard(channel).subscribe(channel)
        except BaseException:
            self.channels.pop(channel, None)
            raise

    async def group_send_many(self, events: list[tuple[str, dict]]) -> None:
        by_shard: dict[int, list[tuple[str, bytes]]] = {}
        for group, message in events:
            channel = self._get_group_channel_name(group)
            shard = self._shards.index(self._get_shard(channel))
            by_shard.setdefault(shard, []).append((channel, self.channel_layer.serialize(message)))
        for index, items in by_shard.items():
            await self._shards[index].publish_many(items)

    def announce_reconnected(self) -> None:
        """Wake every socket of this process: the layer was away, look again."""
        data = self.channel_layer.serialize(RECONNECTED)
        for queue in self.channels.values():
            queue.put_nowait(data)


class RedisPubSubLayer(RedisPubSubChannelLayer):
    """``RedisPubSubChannelLayer`` with a synchronous publish and recovery."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._hosts = decode_hosts(kwargs.get("hosts"))
        self._prefix = kwargs.get("prefix", "asgi")
        self._sync_clients: dict[int, redis.Redis] = {}
        self._sync_lock = threading.Lock()

    def _get_layer(self) -> _LoopLayer:
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
            return layer

    async def group_send_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """``group_send`` of each ``(group, message)``, in order, one round trip
        per Redis host (the chat writer publishes a batch this way)."""
        await self._get_layer().group_send_many(events)

    # --- synchronous publishing ------------------------------------------------

    def group_channel(self, group: str) -> str:
        """The Redis channel a group is published on (as the loop layer names it)."""
        return f"{self._prefix}__group__{group}"

    def _sync_client(self, index: int) -> redis.Redis:
        client = self._sync_clients.get(index)
        if client is None:
            with self._sync_lock:
                client = self._sync_clients.get(index)
                if client is None:
                    host = self._hosts[index]
                    options = {k: v for k, v in host.items() if k not in _ASYNC_ONLY_OPTIONS}
                    options.setdefault("socket_connect_timeout", 2)
                    options.setdefault("socket_timeout", 2)
                    if "address" in host:
                        client = redis.Redis.from_url(host["address"], **options)
                    else:
                        client = redis.Redis(**options)
                    self._sync_clients[index] = client
        return client

    def group_send_sync(self, groups: str | Iterable[str], message: dict[str, Any]) -> None:
        """Publish ``message`` to each group from synchronous code: one round
        trip per Redis host however many groups. Raises on a Redis error (the
        caller decides whether a lost wake-up matters)."""
        names = [groups] if isinstance(groups, str) else list(groups)
        self.group_send_many_sync([(names, message)])

    def group_send_many_sync(self, events: Iterable[tuple[Iterable[str], dict[str, Any]]]) -> None:
        """Publish each ``(groups, message)`` from synchronous code, in order:
        one round trip per Redis host however many. Raises on a Redis error."""
        by_host: dict[int, list[tuple[str, bytes]]] = {}
        for names, message in events:
            data = self.serialize(message)
            for group in names:
                channel = self.group_channel(group)
                by_host.setdefault(_consistent_hash(channel, len(self._hosts)), []).append((channel, data))
        for index, publishes in by_host.items():
            client = self._sync_client(index)
            if len(publishes) == 1:
                client.publish(*publishes[0])
            else:
                with client.pipeline(transaction=False) as pipe:
                    for channel, data in publishes:
                        pipe.publish(channel, data)
                    pipe.execute()
