"""core.realtime.published_together on the production layer (Redis pub/sub):
what a block publishes reaches the sockets when the block ends, in order, in
one round trip; an HTTP request is such a block; a transaction rolled back
publishes nothing; Redis away loses the wake-ups, never the request. Runs
where the suite has Redis (the PostgreSQL run)."""

import asyncio
import logging
import os
import socket
import threading
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from core import realtime
from core.channel_layer import RedisPubSubLayer
from core.realtime import publish_on_commit, published_together, send_now

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs the suite's Redis (REDIS_URL)")


@pytest.fixture
def layer(monkeypatch):
    """A layer of its own on the suite's Redis, counting its round trips."""
    layer = RedisPubSubLayer(hosts=[{"address": os.environ["REDIS_URL"]}], prefix=f"t-{uuid.uuid4().hex[:8]}.")
    monkeypatch.setattr(realtime, "get_channel_layer", lambda: layer)
    client = layer._sync_client(0)
    layer.trips = []
    original_publish, original_pipeline = client.publish, client.pipeline

    def publish(*args, **kwargs):
        layer.trips.append(1)
        return original_publish(*args, **kwargs)

    def pipeline(*args, **kwargs):
        pipe = original_pipeline(*args, **kwargs)
        execute = pipe.execute

        def counted():
            layer.trips.append(len(pipe.command_stack))
            return execute()

        pipe.execute = counted
        return pipe

    monkeypatch.setattr(client, "publish", publish)
    monkeypatch.setattr(client, "pipeline", pipeline)
    return layer


async def _listening(layer, *groups):
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    await asyncio.sleep(0.2)  # the subscription is on its way to Redis
    return channel


async def _received(layer, channel, count):
    return [(await asyncio.wait_for(layer.receive(channel), 5))["payload"]["n"] for _ in range(count)]


async def test_a_block_s_publishes_arrive_when_it_ends_in_order_in_one_round_trip(layer):
    channel = await _listening(layer, "room", "console")
    inside, release = threading.Event(), threading.Event()

    def publish():
        with published_together():
            send_now(["room"], {"n": 0})
            send_now(["room", "console"], {"n": 1})
            with published_together():  # a nested block leaves the sending to the outer one
                send_now(["console"], {"n": 2})
            inside.set()
            release.wait(5)

    publishing = asyncio.ensure_future(sync_to_async(publish, thread_sensitive=False)())
    try:
        assert await asyncio.get_running_loop().run_in_executor(None, inside.wait, 5)
        await asyncio.sleep(0.2)
        assert layer.trips == []  # nothing has left for Redis yet
    finally:
        release.set()
        await publishing
    assert await _received(layer, channel, 4) == [0, 1, 1, 2]  # "room" and "console" each got 1
    assert layer.trips == [4]
    await layer.flush()


async def test_a_long_block_sends_what_it_kept_every_few_dozen_events(layer):
    channel = await _listening(layer, "room")

    def publish():
        with published_together():
            for n in range(realtime.TOGETHER_MAX + 3):
                send_now(["room"], {"n": n})
            assert layer.trips == [realtime.TOGETHER_MAX]  # sent before the block ended

    await sync_to_async(publish, thread_sensitive=False)()
    assert await _received(layer, channel, realtime.TOGETHER_MAX + 3) == list(range(realtime.TOGETHER_MAX + 3))
    assert layer.trips == [realtime.TOGETHER_MAX, 3]
    await layer.flush()


@pytest.mark.django_db(transaction=True)
async def test_a_rolled_back_transaction_publishes_nothing_from_the_block(layer):
    channel = await _listening(layer, "room")

    def publish():
        with published_together():
            with transaction.atomic():
                publish_on_commit(["room"], {"n": 0})
                try:
                    with transaction.atomic():
                        publish_on_commit(["room"], {"n": 99})  # its savepoint rolls back
                        raise ValueError
                except ValueError:
                    pass
            try:
                with transaction.atomic():
                    publish_on_commit(["room"], {"n": 98})
                    raise ValueError
            except ValueError:
                pass
            with transaction.atomic():
                publish_on_commit(["room"], {"n": 1})

    await sync_to_async(publish, thread_sensitive=False)()
    assert await _received(layer, channel, 2) == [0, 1]
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.3)
    assert layer.trips == [2]
    await layer.flush()


def test_redis_away_loses_the_wake_ups_not_the_block(monkeypatch, caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    away = RedisPubSubLayer(hosts=[{"address": f"redis://127.0.0.1:{port}/0"}], prefix="t-away.")
    monkeypatch.setattr(realtime, "get_channel_layer", lambda: away)
    with caplog.at_level(logging.WARNING, logger="core.realtime"), published_together():
        send_now(["room"], {"n": 0})
        send_now(["room", "hall"], {"n": 1})
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["publish to room, hall failed"]


@pytest.mark.django_db(transaction=True)
def test_an_http_request_is_one_block(layer, client, agent, buyer, merchant):
    """A remedy through the API publishes the buyer's notice, the console's
    and the budget after its commit, all in the request's one round trip."""
    from compensation.tests.factories import remedy_ticket

    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    client.force_login(agent)
    layer.trips.clear()
    response = client.post(f"/api/v1/tickets/{ticket.pk}/remedies/", {"kind": "coupon", "reason": "延误补偿"},
                           content_type="application/json", headers={"Idempotency-Key": "together-1"})
    assert response.status_code == 201, response.content
    assert len(layer.trips) == 1 and layer.trips[0] >= 3, layer.trips
