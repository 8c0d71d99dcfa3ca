"""The production recipe under the faults of a peak day, through real server
processes: ``scripts/serve`` with two ASGI workers on PostgreSQL and a Redis
of the test's own.

- an idle chat socket and an idle console socket stay open for 60 s and still
  receive the next message, and an idle keep-alive HTTP connection still
  answers (a balancer's upstream connection: the server must outlast its 60 s);
- Redis restarted during a session: the sockets recover and no message is lost;
- an ASGI worker killed: its clients reconnect to the other and replay from
  their last seq;
- a message sent through one worker reaches a socket on the other;
- a browser offering permessage-deflate gets uncompressed frames;
- sixteen connections opened together fall on both workers;
- a deploy (``SIGHUP`` to ``deploy/listen_first.py``) starts new workers
  beside the old ones and closes the old ones' sockets only once the new are
  up: no request refused or failed, every chat socket back on a new worker;
- a cold start holds the connections made while the app imports and answers
  them once its workers are up (``deploy/listen_first.py``).

The longer fault runs (minutes of load, every fault) are ``bench/rehearsal.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
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

from accounts.services import issue_api_token
from tests.live import BIN, ROOT, ChatClient, PrivateRedis, child_env, free_port, serve, stop
from tickets.models import Ticket
from tickets.tests.factories import ticket_in_state

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture(scope="module")
def served(django_db_setup, django_db_blocker, tmp_path_factory):
    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        pytest.skip("the production recipe needs PostgreSQL and Redis")
    tmp = tmp_path_factory.mktemp("serve")
    with django_db_blocker.unblock():
        url = _database_url()
    app = serve(database_url=url, tmp=tmp, workers=2, redis=PrivateRedis(tmp))
    yield app
    stop(app)


def _session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _token(user) -> str:
    return issue_api_token(user=user).key


async def _post(served, token: str, ticket_id: int, body: str) -> int:
    async with httpx.AsyncClient(base_url=served.base, timeout=10) as http:
        response = await http.post(f"/api/v1/tickets/{ticket_id}/messages/", json={"body": body},
                                   headers={"Authorization": f"Token {token}"})
    assert response.status_code == 201, response.text
    return response.json()["seq"]


async def _setup(buyer, agent, order):
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    cookies = [await database_sync_to_async(_session)(u) for u in (buyer, agent)]
    token = await database_sync_to_async(_token)(agent)
    return ticket, cookies, token


def _chat(served, ticket_id: int, cookie: str) -> ChatClient:
    return ChatClient(url=f"{served.ws_base}/ws/tickets/{ticket_id}/chat/", cookie=cookie, origin=served.origin)


async def _buyer_on_chat(served, buyer, agent, order) -> tuple[Ticket, ChatClient, str, str]:
    """A ticket with its buyer's chat page open: the ticket, the page, the
    agent's session cookie and API token."""
    ticket, (buyer_cookie, agent_cookie), token = await _setup(buyer, agent, order)
    chat = _chat(served, ticket.pk, buyer_cookie)
    chat.start(after_seq=ticket.last_seq)
    await asyncio.wait_for(chat.connected.wait(), 10)
    return ticket, chat, agent_cookie, token


def _assert_each_once_in_order(client: ChatClient, bodies: list[str]) -> None:
    assert [m for m in client.messages if m.get("duplicate")] == []
    seqs = [m["seq"] for m in client.messages]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert [b for b in client.bodies() if b in bodies] == bodies


def _keep_alive_get(sock: socket.socket, token: str) -> int:
    """One ``GET`` on an open HTTP/1.1 connection, the answer read whole; its status."""
    sock.sendall(f"GET /api/v1/tickets/?page_size=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Token {token}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection instead of answering"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
    assert b"transfer-encoding" not in headers, "expected a Content-Length answer"
    while len(body) < int(headers[b"content-length"]):
        body += sock.recv(65536)
    return int(head.split()[1])


async def test_idle_chat_and_console_sockets_stay_open_for_a_minute(served, buyer, agent, order):
    import websockets

    ticket, chat, agent_cookie, token = await _buyer_on_chat(served, buyer, agent, order)
    # and a keep-alive HTTP connection, as a balancer keeps its upstream ones
    http = socket.create_connection(served.address, timeout=10)
    assert _keep_alive_get(http, token) == 200
    async with websockets.connect(f"{served.ws_base}/ws/console/", ping_interval=None,
                                  additional_headers={"Origin": served.origin, "Cookie": f"sessionid={agent_cookie}"}) as console:
        # given: nothing at all crosses either socket for a minute (no pings either)
        await asyncio.sleep(61)
        assert console.close_code is None and chat.closes == []
        # the HTTP connection outlasted a balancer's 60 s idle timeout: the
        # server has not closed it (a balancer reusing it would lose the request)
        readable, _, _ = select.select([http], [], [], 0)
        assert readable == [], "the server closed an idle keep-alive connection within 61 s"
        assert _keep_alive_get(http, token) == 200
        http.close()
        # then: both still hear the next message
        seq = await _post(served, token, ticket.pk, "还在吗？")
        await chat.wait_for(lambda c: c.last_seq >= seq, timeout=10)
        while True:
            frame = json.loads(await asyncio.wait_for(console.recv(), 10))
            if frame.get("type") == "message.posted" and frame["ticket_id"] == ticket.pk:
                break
    await chat.close()
    assert chat.closes[:-1] == [] and chat.bodies()[-1] == "还在吗？"
    assert "Timeout reading" not in served.log_text()


async def test_redis_restarted_mid_session_loses_no_message(served, buyer, agent, order):
    import websockets

    ticket, chat, agent_cookie, token = await _buyer_on_chat(served, buyer, agent, order)
    console = await websockets.connect(f"{served.ws_base}/ws/console/", ping_interval=None,
                                       additional_headers={"Origin": served.origin, "Cookie": f"sessionid={agent_cookie}"})
    await _post(served, token, ticket.pk, "一")
    await chat.wait_for(lambda c: "一" in c.bodies())

    # when: Redis goes away; messages are stored meanwhile (their wake-ups are lost)
    served.redis.stop()
    await _post(served, token, ticket.pk, "二")
    await _post(served, token, ticket.pk, "三")
    await asyncio.sleep(1)
    served.redis.start()
    # then: the stored messages reach the buyer once each, in order, and the
    # console is told to re-read
    await chat.wait_for(lambda c: "三" in c.bodies(), timeout=20)
    await _post(served, token, ticket.pk, "四")
    await chat.wait_for(lambda c: "四" in c.bodies(), timeout=10)
    _assert_each_once_in_order(chat, ["一", "二", "三", "四"])
    frames = []
    while not any(f.get("type") == "resync" for f in frames):
        frames.append(json.loads(await asyncio.wait_for(console.recv(), 10)))
    assert console.close_code is None  # the console socket stayed open through it
    await console.close()
    await chat.close()


async def test_a_killed_worker_s_clients_reconnect_and_replay(served, buyer, agent, order):
    ticket, chat, _, token = await _buyer_on_chat(served, buyer, agent, order)
    await _post(served, token, ticket.pk, "甲")
    await chat.wait_for(lambda c: "甲" in c.bodies())
    victim = int(chat.served_by[-1].rsplit(":", 1)[1])
    assert victim in served.worker_pids()

    # when: the worker that serves the buyer dies without a goodbye
    os.kill(victim, signal.SIGKILL)
    await chat.wait_for(lambda c: len(c.closes) >= 1, timeout=10)
    await _post(served, token, ticket.pk, "乙")  # stored while the buyer is away
    # then: the buyer is back on a live worker and gets what it missed, once
    await chat.wait_for(lambda c: "乙" in c.bodies(), timeout=20)
    assert int(chat.served_by[-1].rsplit(":", 1)[1]) != victim
    await _post(served, token, ticket.pk, "丙")
    await chat.wait_for(lambda c: "丙" in c.bodies(), timeout=10)
    _assert_each_once_in_order(chat, ["甲", "乙", "丙"])
    await chat.close()


def test_a_bulk_job_started_on_a_web_worker_runs_on_the_celery_worker(served, supervisor, buyer, order):
    """The web workers no longer import Celery at start (``cs_portal/__init__``):
    a supervisor's click queues the job through the project's app on first
    use, and the Celery worker that ``scripts/serve`` runs beside them does it."""
    from incidents import services as incidents
    from incidents.models import BulkJob
    from tickets import sla
    from tickets.models import Message
    from tickets.services import open_ticket

    tickets = [open_ticket(actor=buyer, category="logistics_delay", subject=f"包裹 {n}", body="还没到",
                           order_id=order.pk) for n in range(2)]
    incident = incidents.open_incident(actor=supervisor, title="华东仓延误", grade=sla.GRADE_SERIOUS)
    incidents.link_tickets(actor=supervisor, incident_id=incident.pk, ticket_ids=[t.pk for t in tickets])
    job = incidents.create_bulk_job(actor=supervisor, kind="macro_reply", incident_id=incident.pk,
                                    params={"body": "仓库正在加急处理。"})
    # the CSRF cookie and header a page would carry (this server has no collected static files to render pages with)
    csrf = "t" * 32
    with httpx.Client(base_url=served.base, cookies={"sessionid": _session(supervisor), "csrftoken": csrf},
                      timeout=10) as http:
        started = http.post(f"/console/jobs/{job.pk}/run/", headers={
            "X-CSRFToken": csrf, "Origin": served.origin, "HX-Request": "true"})
    assert started.status_code == 200, started.text[:500]
    # queued at once, not left for the stalled-job sweep (BULK_STALLED_AFTER_S, then every 15 s), as it would be
    # if the web worker sent the task through Celery's default app to an AMQP broker that is not there
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == BulkJob.Status.DONE:
            break
        time.sleep(0.2)
    assert (job.status, job.done_count) == (BulkJob.Status.DONE, 2), served.log_text()[-3000:]
    assert Message.objects.filter(ticket__in=tickets, body="仓库正在加急处理。", author=supervisor).count() == 2


async def test_a_message_crosses_workers(served, buyer, agent, order):
    """Two workers on one port: the buyer's and the agent's sockets end up on
    different ones (they are opened until they do), and a message posted over
    the agent's reaches the buyer's."""
    ticket, (buyer_cookie, agent_cookie), _ = await _setup(buyer, agent, order)
    seq = await database_sync_to_async(lambda: Ticket.objects.get(pk=ticket.pk).last_seq)()
    buyer_chat = _chat(served, ticket.pk, buyer_cookie)
    buyer_chat.start(after_seq=seq)
    await asyncio.wait_for(buyer_chat.connected.wait(), 10)
    agents, agent_chat = [], None
    for _ in range(4):  # a batch at a time: workers that compete for connections at once share them out
        batch = [_chat(served, ticket.pk, agent_cookie) for _ in range(10)]
        for client in batch:
            client.start(after_seq=seq)
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in batch)), 15)
        agents += batch
        elsewhere = [c for c in batch if c.served_by[-1] != buyer_chat.served_by[-1]]
        if elsewhere:
            agent_chat = elsewhere[0]
            break
    if agent_chat is None:
        pytest.fail("40 sockets all landed on the buyer's worker")
    await agent_chat.send({"type": "message", "body": "跨进程你好", "client_msg_id": "x-1"})
    await buyer_chat.wait_for(lambda c: "跨进程你好" in c.bodies(), timeout=10)
    message = buyer_chat.messages[-1]
    assert (message["seq"], message["author"]["id"]) == (seq + 1, agent.pk)
    for client in (buyer_chat, *agents):
        await client.close()


async def test_a_browser_offering_compression_gets_uncompressed_frames(served, buyer, agent, order):
    """Browsers offer permessage-deflate; production declines it (``cs_portal.workers``:
    a compressor per socket costs more memory than chat frames save in bytes)."""
    from websockets.asyncio.client import connect

    ticket, (buyer_cookie, _), token = await _setup(buyer, agent, order)
    url = f"{served.ws_base}/ws/tickets/{ticket.pk}/chat/"
    async with connect(url, compression="deflate", origin=served.origin,
                       additional_headers={"Cookie": f"sessionid={buyer_cookie}"}) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        seq = await _post(served, token, ticket.pk, "没有压缩也送到")
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            if frame.get("type") == "message" and frame.get("seq") == seq:
                assert frame["body"] == "没有压缩也送到"
                break


async def test_connections_opened_together_are_shared_by_the_workers(served):
    """A burst of keep-alive connections (a balancer refilling its pool) falls
    on both workers, not all on the first to wake (``cs_portal.workers``)."""
    host, port = served.address
    workers = served.worker_pids()
    assert len(workers) == 2

    async def one() -> asyncio.StreamWriter:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /api/v1/tickets/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 401")
        return writer

    for _ in range(3):
        writers = await asyncio.gather(*(one() for _ in range(16)))
        held = subprocess.run(["ss", "-Htnp", "state", "established", f"sport = :{port}"], capture_output=True,
                              text=True, check=True).stdout
        per_worker = {pid: held.count(f"pid={pid},") for pid in workers}
        assert sum(per_worker.values()) == 16, held
        assert min(per_worker.values()) >= 5, per_worker
        for writer in writers:
            writer.close()
        await asyncio.sleep(2)  # the next burst from level ground (the board's accepts decay)


async def test_a_deploy_brings_the_new_workers_up_before_the_old_ones_close(served, buyer, agent, order):
    """``supervisorctl signal HUP web``: ``deploy/listen_first.py`` starts a new
    gunicorn (the code on disk, imported anew) beside the running one on the
    port it holds, and stops the old one once every new worker is up."""
    ticket, chat, _, token = await _buyer_on_chat(served, buyer, agent, order)
    await _post(served, token, ticket.pk, "甲")
    await chat.wait_for(lambda c: "甲" in c.bodies())
    old_workers = served.worker_pids()
    holder = served.holder_pid()

    statuses: list[int] = []
    deployed = asyncio.Event()

    async def keep_asking() -> None:  # an API client all through the deploy: a refusal raises here
        async with httpx.AsyncClient(base_url=served.base, timeout=10) as http:
            while not deployed.is_set():
                answer = await http.get("/api/v1/tickets/?page_size=1", headers={"Authorization": f"Token {token}"})
                statuses.append(answer.status_code)
                await asyncio.sleep(0.02)

    asking = asyncio.create_task(keep_asking())
    # when: the deploy
    os.kill(holder, signal.SIGHUP)
    # then: the old worker closes the buyer's socket as a restart (1012) once the new ones are up, and the
    # page is back at once on a new worker, with what was said meanwhile
    await chat.wait_for(lambda c: 1012 in c.closes, timeout=60)
    await _post(served, token, ticket.pk, "乙")
    await chat.wait_for(lambda c: "乙" in c.bodies(), timeout=20)
    assert int(chat.served_by[-1].rsplit(":", 1)[1]) not in old_workers
    deadline = time.monotonic() + 30
    while served.worker_pids() & old_workers and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not served.worker_pids() & old_workers and len(served.worker_pids()) == len(old_workers)
    deployed.set()
    await asking
    assert len(statuses) > 10 and set(statuses) == {200}
    _assert_each_once_in_order(chat, ["甲", "乙"])
    while "stopped server" not in served.log_text() and time.monotonic() < deadline:  # its master too
        await asyncio.sleep(0.1)
    assert "deploy: new server" in served.log_text() and "exited (0)" in served.log_text()
    assert served.holder_pid() == holder
    await chat.close()


def test_scripts_deploy_collects_the_static_files_and_replaces_the_web_and_celery_workers(served):
    """The README's deploy, one command: after it every web worker and the
    Celery worker are new, and pages render with the collected static files
    (a deploy that skipped ``collectstatic`` served a page naming a new file
    as a 500, and changed files as they were)."""
    import re

    from tests.live import _parent, _processes

    def celery_workers() -> set[int]:
        return {pid for pid, cmd in _processes() if "celery" in cmd and " worker " in cmd
                and _parent(pid) == served.process.pid}

    old_web, old_celery = served.worker_pids(), celery_workers()
    assert old_web and old_celery
    started = time.time()
    done = subprocess.run([str(ROOT / "scripts" / "deploy")], cwd=ROOT, env=served.env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (ROOT / "staticfiles" / "staticfiles.json").stat().st_mtime >= started - 1  # collected now
    assert "worker: stopped" in done.stdout and "worker: started" in done.stdout, done.stdout
    deadline = time.monotonic() + 60
    while (served.worker_pids() & old_web or len(served.worker_pids()) < len(old_web)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not served.worker_pids() & old_web and len(served.worker_pids()) == len(old_web)
    assert celery_workers() and not celery_workers() & old_celery
    page = httpx.get(f"{served.base}/accounts/login/", timeout=10)
    assert page.status_code == 200, served.log_text()[-3000:]
    stylesheet = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', page.text)
    assert stylesheet, page.text[:2000]  # named by its hash, from the manifest collectstatic wrote
    assert httpx.get(served.base + stylesheet.group(1), timeout=10).status_code == 200


def test_a_cold_start_holds_connections_until_the_workers_answer(tmp_path):
    """``deploy/listen_first.py`` binds before gunicorn imports the app, as
    supervisord starts it: a page reconnecting while the server starts is held
    in the backlog and answered once the workers are up, instead of refused
    until gunicorn binds (after the import, most of the start-up)."""
    port = free_port()
    env = child_env(DATABASE_URL=_database_url(), REDIS_URL=os.environ["REDIS_URL"], DEBUG="0",
                    SECRET_KEY="cold-start-test", ALLOWED_HOSTS="127.0.0.1", SECURE_SSL_REDIRECT="0",
                    SECURE_COOKIES="0", SECURE_HSTS_SECONDS="0", BIND=f"127.0.0.1:{port}", WEB_WORKERS="1",
                    WEB_LOG_LEVEL="info")
    started = time.monotonic()
    with (tmp_path / "gunicorn.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy" / "listen_first.py"), str(BIN / "gunicorn"),
             "--config", "python:cs_portal.gunicorn", "cs_portal.asgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except ConnectionRefusedError:
                assert process.poll() is None and time.monotonic() - started < 30, "never listened"
                time.sleep(0.01)
        connected = time.monotonic() - started
        with conn:
            conn.sendall(b"GET /api/v1/tickets/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            conn.settimeout(0.02)
            first_worker, response = None, b""
            while time.monotonic() - started < 60:
                if first_worker is None and any(_children(int(master)) for master in _children(process.pid)):
                    first_worker = time.monotonic() - started
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                response += chunk
        assert response.startswith(b"HTTP/1.1 401"), response[:200]
        # held from the first moments of the start-up, not from its end
        assert first_worker is not None and connected < first_worker / 2, (connected, first_worker)
    finally:
        process.terminate()
        process.wait(timeout=40)
    # the master's exit (its heap frozen out of the final collections, cs_portal.gunicorn.on_exit)
    # is still a clean one: status 0, its last log line written
    assert process.returncode == 0
    assert "Shutting down: Master" in (tmp_path / "gunicorn.log").read_text()


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def test_the_celery_worker_is_stopped_warm_and_killed_only_after_its_wait():
    """``supervisorctl restart worker`` (a deploy, a stop) sends TERM to the
    worker alone, whose warm shutdown lets running tasks finish; sent to its
    process group, the pool's processes died mid-task (WorkerLostError, seen
    with a six-second task). The group is killed only after ``stopwaitsecs``."""
    import configparser

    conf = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    conf.read(ROOT / "deploy" / "supervisord.conf")
    worker = conf["program:worker"]
    assert worker["stopsignal"] == "TERM"
    assert worker.getboolean("stopasgroup") is False and worker.getboolean("killasgroup") is True
    assert int(worker["stopwaitsecs"]) >= 60
