"""core.channel_layer on a real Redis: publishes made while a round trip is
out go together in the next one, in the order they were made, and each
publisher still hears of a failure. Runs where the suite has Redis (the
PostgreSQL run; the embedded run has the in-memory layer)."""

import asyncio
import os
import socket
import uuid

import pytest

from core.channel_layer import RedisPubSubLayer

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs the suite's Redis (REDIS_URL)")


def _layer(url: str) -> RedisPubSubLayer:
    return RedisPubSubLayer(hosts=[{"address": url}], prefix=f"test-{uuid.uuid4().hex[:8]}.")


async def test_concurrent_publishes_share_round_trips_and_keep_their_order():
    layer = _layer(os.environ["REDIS_URL"])
    shard = layer._get_layer()._shards[0]
    trips = []
    original = shard._round_trip

    async def counted(items):
        trips.append(len(items))
        await original(items)

    shard._round_trip = counted
    try:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await asyncio.sleep(0.2)  # the subscription is on its way to Redis
        await asyncio.gather(*(layer.group_send("room", {"type": "n", "n": n}) for n in range(50)))
        received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(50)]
        assert [m["n"] for m in received] == list(range(50))
        # the first went at once, the 49 that came meanwhile in one pipeline after it
        assert sum(trips) == 50 and trips[0] == 1 and len(trips) <= 3, trips
        # with nothing on the way, a publish goes on its own
        trips.clear()
        await layer.group_send("room", {"type": "n", "n": 50})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 50 and trips == [1]
    finally:
        await layer.flush()


async def test_every_waiting_publisher_hears_that_redis_is_away():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    layer = _layer(f"redis://127.0.0.1:{port}/0")
    try:
        results = await asyncio.gather(*(layer.group_send("room", {"type": "n"}) for _ in range(5)),
                                       return_exceptions=True)
        assert len(results) == 5 and all(isinstance(r, Exception) for r in results), results
        shard = layer._get_layer()._shards[0]
        assert shard._sending is False and shard._outbox == []  # nothing stuck for the next publisher
    finally:
        await layer.flush()
