"""The two knobs for going past one database and one Redis (docs/SCALING.md):
a read replica for the reads that may lag, and channel-layer groups sharded
over several Redis servers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from channels_redis.utils import _consistent_hash
from django.conf import settings
from django.db import connection

from core.channel_layer import RedisPubSubLayer
from core.db_router import REPLICA, ReplicaRouter, replica_reads
from tests.live import PrivateRedis
from tickets.models import Ticket

ROOT = Path(settings.BASE_DIR)


def test_the_router_sends_nothing_anywhere_without_a_replica():
    router = ReplicaRouter()
    assert REPLICA not in settings.DATABASES
    with replica_reads():
        assert router.db_for_read(Ticket) is None
    assert router.db_for_write(Ticket) is None
    assert router.allow_migrate("default", "tickets") is True
    assert router.allow_migrate(REPLICA, "tickets") is False


def test_replica_reads_end_with_their_block():
    from core.db_router import _reading_from_replica

    with replica_reads():
        assert _reading_from_replica.get() is True
        with replica_reads():
            pass
        assert _reading_from_replica.get() is True
    assert _reading_from_replica.get() is False


PROBE = """
from django.db import connections
from django.test.utils import CaptureQueriesContext
from incidents import selectors
from tickets.models import Ticket
with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(connections["replica"]) as replica:
    board = selectors.dashboard()
    Ticket.objects.count()
print(len(primary.captured_queries), len(replica.captured_queries), board.waiting_chats)
"""


REPORTS_PROBE = """
from datetime import timedelta
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from reports import selectors
from reports.rules import Period
today = timezone.localdate()
month = Period(first=today - timedelta(days=29), last=today)
with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(connections["replica"]) as replica:
    for group_by in (None, "agent", "queue"):
        selectors.summary(period=month, group_by=group_by)
    selectors.carriers(period=month)
print(len(primary.captured_queries), len(replica.captured_queries))
"""


def _with_replica(probe: str) -> list[int]:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "test", "ALLOWED_HOSTS": "localhost",
           "DATABASE_URL": url, "DATABASE_REPLICA_URL": url}
    done = subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", probe], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [int(x) for x in done.stdout.split()[-3:]]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_a_replica_every_report_query_goes_there_in_its_session():
    """The summaries (with the grouped percentiles' own SQL) and the carriers
    read only from the replica alias, each in its reporting transaction."""
    primary, replica = _with_replica(REPORTS_PROBE)[-2:]
    assert primary == 0
    assert replica > 0


@pytest.mark.postgres
@pytest.mark.django_db
def test_with_a_replica_the_dashboard_reads_there_and_the_rest_stays_on_the_primary():
    """Production settings with ``DATABASE_REPLICA_URL`` (here the test database
    itself, as a stand-in for a streaming replica): every query of the
    dashboard goes to the replica alias, any other read to the primary."""
    from django.test.utils import CaptureQueriesContext

    from incidents import selectors

    with CaptureQueriesContext(connection) as alone:
        selectors.dashboard()
    primary, replica, waiting = _with_replica(PROBE)
    assert primary == 1  # the count outside the dashboard
    assert replica == len(alone.captured_queries) > 0  # every figure of the board
    assert waiting == 0


def test_channel_groups_are_sharded_over_several_redis_servers(tmp_path):
    """With two servers listed, each group lives on the one its name hashes to:
    a socket in groups on both servers hears both, and each server carries only
    its own groups' subscriptions."""
    servers = [PrivateRedis(tmp_path / "a"), PrivateRedis(tmp_path / "b")]
    for server in servers:
        (server.tmp).mkdir()
        server.start()
    try:
        layer = RedisPubSubLayer(hosts=[{"address": s.url} for s in servers], prefix="shard-test.")
        names = [f"ticket-{i}" for i in range(40)]
        on = {index: next(n for n in names if _consistent_hash(layer.group_channel(n), 2) == index)
              for index in (0, 1)}

        async def scenario() -> tuple[list[str], list[dict]]:
            channel = await layer.new_channel()
            for group in on.values():
                await layer.group_add(group, channel)
            subscribed = []
            for index, server in enumerate(servers):
                client = redis.Redis.from_url(server.url)
                subscribed.append([c.decode() for c in client.pubsub_channels()])
                client.close()
            for index, group in on.items():
                await layer.group_send(group, {"type": "chat.message", "text": f"to shard {index}"})
            # and from synchronous code (a request's on_commit, a Celery task), both groups at once
            await asyncio.to_thread(layer.group_send_sync, list(on.values()), {"type": "chat.message", "text": "sync"})
            got = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(4)]
            await layer.flush()
            return subscribed, got

        subscribed, got = asyncio.run(scenario())
        assert any(on[0] in c for c in subscribed[0]) and not any(on[0] in c for c in subscribed[1])
        assert any(on[1] in c for c in subscribed[1]) and not any(on[1] in c for c in subscribed[0])
        assert sorted(m["text"] for m in got) == ["sync", "sync", "to shard 0", "to shard 1"]
    finally:
        for server in servers:
            server.stop()


def test_production_settings_list_every_channel_redis_in_order():
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "test", "ALLOWED_HOSTS": "localhost",
           "REDIS_URL": "redis://127.0.0.1:6379/4",
           "CHANNEL_REDIS_URLS": "redis://10.0.0.1:6379/0,redis://10.0.0.2:6379/0"}
    code = ("from django.conf import settings; c = settings.CHANNEL_LAYERS['default']['CONFIG']; "
            "print(*[h['address'] for h in c['hosts']], c['prefix'])")
    done = subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0", "cs0."]
