"""Scale-out: two daphne processes sharing Redis and PostgreSQL. A message
sent by a client on one worker reaches a client on the other."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test import Client

from tickets.tests.factories import ticket_in_state

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
def two_workers():
    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        pytest.skip("needs PostgreSQL and Redis (the scale-out mode)")
    settings_dict = connection.settings_dict
    url = f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(DATABASE_URL=url, DEBUG="1", DB_POOL="0")
    ports = [_free_port(), _free_port()]
    servers = [
        subprocess.Popen([str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                          "cs_portal.asgi:application"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports
    ]
    try:
        for port in ports:
            for _ in range(100):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
        yield ports
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)


async def test_a_message_crosses_workers(two_workers, buyer, agent, order):
    import websockets

    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    buyer_cookie = await database_sync_to_async(_session)(buyer)
    agent_cookie = await database_sync_to_async(_session)(agent)
    first, second = two_workers

    def url(port):
        return f"ws://127.0.0.1:{port}/ws/tickets/{ticket.pk}/chat/?after_seq=2"

    headers = {"Origin": "http://127.0.0.1"}
    async with websockets.connect(url(first), additional_headers={**headers, "Cookie": f"sessionid={buyer_cookie}"}) as buyer_ws, \
            websockets.connect(url(second), additional_headers={**headers, "Cookie": f"sessionid={agent_cookie}"}) as agent_ws:
        await asyncio.sleep(0.3)  # both joined their group
        await agent_ws.send(json.dumps({"type": "message", "body": "跨进程你好", "client_msg_id": "x-1"}))
        ack = json.loads(await asyncio.wait_for(agent_ws.recv(), 10))
        while ack.get("type") != "ack":
            ack = json.loads(await asyncio.wait_for(agent_ws.recv(), 10))
        assert ack["seq"] == 3
        frame = json.loads(await asyncio.wait_for(buyer_ws.recv(), 10))
        while frame.get("type") != "message":
            frame = json.loads(await asyncio.wait_for(buyer_ws.recv(), 10))
        assert (frame["seq"], frame["body"], frame["author"]["id"]) == (3, "跨进程你好", agent.pk)
