"""Chat benchmark: buyer–agent pairs talking through the app as production runs
it, beside a plain websocket relay measured in the same run (issue #11, goals 3
and 4).

    .venv/bin/python bench/chat.py [--scenarios throughput,latency,reconnect]
                                   [--clients 1000,2000,1000] [--seconds 20] [--warmup 5]
                                   [--period 0.95] [--slow-period 10] [--reconnect-mode restart|kill|reload]
                                   [--server prod|daphne] [--workers 2] [--layers redis]
                                   [--client-procs auto] [--ref worktree|HEAD|<commit>] [--json out.json]

Scenarios (each on fresh server processes and an emptied Redis db, the app's
row then the relay's, with the same clients and the same load):

- **throughput**: 1,000 clients (500 buyer–agent pairs), each sending one
  message every ``--period`` s (0.95: about 1/s) with at most one awaiting its
  ack. Goal: at least 1,000 messages/s stored (acked) and delivered, none lost.
- **latency**: 2,000 clients at a person's pace, one message every
  ``--slow-period`` s (10) each. Goal: delivery p99 under 100 ms.
- **reconnect**: 1,000 clients connected, ``--prelude`` messages each
  exchanged, then the server is restarted (``--reconnect-mode restart``: SIGTERM
  to the gunicorn master, whose workers close every socket with 1012, then
  started again on the same port once it has exited; ``kill``: SIGKILL to the
  worker holding the most sockets, which gunicorn replaces; ``reload``: SIGHUP to
  ``deploy/listen_first.py``, a deploy: a new server started beside the old on the
  port it holds, the old one stopped (its sockets closed with 1012) once every new
  worker is up, so a client's outage starts at its close, and the goal counts from
  there in this mode; the
  relay, and daphne, are restarted in every mode) while one message
  per ticket is stored through the chat services (``store_chat_batch``, what
  the sockets' writer calls; ``post_message`` for any it hands back), so every
  client has something to replay. Each client reconnects as ``static/js/chat.js``
  does (0.2–1 s after a 1012/1013, else exponential backoff from 0.5–1 s) with
  ``after_seq`` = the last seq it saw. Recovery of a client = from the signal
  until it is connected again AND has every message stored on its ticket that it
  had not seen. Goal: the last client within 3 s, none missed or duplicated.

What it does, on its own PostgreSQL database and Redis db (never anyone else's):

0. the harness (``bench/harness.py``): a copy of the code at ``--ref``,
   ``cs_bench_chat`` (``BENCH_CHAT_DATABASE_URL``; loopback, name with "bench")
   dropped and recreated, Redis db 7 (``BENCH_CHAT_REDIS_URL``) emptied, ``migrate``;
1. through the project's own services (``create_user``, ``open_ticket`` with
   channel ``chat``, the ``assign`` transition): one buyer, order and chat
   ticket per pair and ``--agents`` agents who take the tickets in turn; every
   user gets a server-side session (the configured ``SESSION_ENGINE``), sent as
   the ``sessionid`` cookie;
2. the server: ``--server prod`` (default) is gunicorn with ``--config
   python:cs_portal.gunicorn`` and ``--workers`` uvicorn workers on one port,
   as ``scripts/serve`` runs it; ``--server daphne`` one daphne process.
   ``--layers redis`` (default): ``REDIS_URL`` set, the production channel
   layer (Redis pub/sub); ``memory``: the in-memory layer (one process only:
   ``--workers 1`` or daphne);
3. the relay: a plain ``websockets`` server in another process that does the
   same fan-out with no Django (rooms by URL path; the sender gets an ack and
   its own copy, the partner the message; ``after_seq`` replays from its
   append-only log, kept in a file in the reconnect scenario, where "posting
   during the outage" appends to that file): the limit of the transport here;
4. the clients: ``--client-procs`` asyncio processes (uvloop; ``auto``: 2 from
   1,000 clients up) each holding whole pairs, so a message's send and its
   delivery are timed on one clock; sockets opened 16 at a time with the
   session cookie and ``Origin: http://127.0.0.1:<port>``. Like the page they
   answer ``resync`` with ``sync``, send ``sync`` every ``--sync-every`` s (20)
   and reconnect on their own; a message whose socket closed before its ack is
   sent again with the same ``client_msg_id`` once reconnected (the page's outbox).

Figures: delivery latency = send → the partner's ``message`` frame; ack =
send → the sender's ``ack``; rates count acks and deliveries arriving inside the
``--seconds`` window (after ``--warmup`` s of load). Lost = sent, not refused,
never delivered to the partner by the end of the grace period; gaps = messages
stored on a ticket (read from the database afterwards) that one of its sockets
never received. CPU over the window: the server's whole process tree (master
and workers), the client processes, PostgreSQL, Redis, everything else.
Exceptions in the server's log are counted by class. Exit status 1 if a
message was lost or missed, a socket failed to open, or a goal was missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402  (the harness every benchmark shares)
    PYTHON,
    Config,
    Server,
    add_server_args,
    check_server_args,
    check_targets,
    cpu_by_command,
    flush_redis,
    free_port,
    log,
    machine_busy,
    manage,
    pct,
    proc_cpu_s,
    recreate_database,
    scheduler_grouping,
    snapshot,
)

TAG = "bench#"  # message bodies start with TAG + message id
SCENARIOS = ("throughput", "latency", "reconnect")
DEFAULT_CLIENTS = {"throughput": 1000, "latency": 2000, "reconnect": 1000}
CONNECT_CONCURRENCY = 16  # sockets being opened at once (all client processes together)
ACK_TIMEOUT_S = 60.0
STALL_S = 5.0  # grace ends early when no message was delivered for this long
RECOVERY_TIMEOUT_S = 90.0  # the reconnect scenario gives up on a client after this
GOAL_RATE = 1000.0  # messages/s stored and delivered (throughput)
GOAL_P99_MS = 100.0  # delivery p99 at a person's pace (latency)
GOAL_RECOVERY_S = 3.0  # the last client back and replayed (reconnect)


@dataclass
class ChatConfig(Config):
    """The harness's ``Config`` plus the chat options."""

    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    clients: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CLIENTS))
    seconds: float = 20.0
    warmup_s: float = 5.0
    grace_s: float = 40.0
    period_s: float = 0.95
    slow_period_s: float = 10.0
    sync_every_s: float = 20.0
    agents: int = 20
    layers: list[str] = field(default_factory=lambda: ["redis"])
    client_procs: int = 0  # 0: auto
    reconnect_mode: str = "restart"
    prelude: int = 2
    relay: bool = True
    deflate: bool = False  # clients offer permessage-deflate, as browsers do
    layer: str = "redis"  # the layer of the server being started
    loadavg: float = 0.0  # the 1-minute load average when the run started

    def app_env(self) -> dict[str, str]:
        env = super().app_env()
        if self.layer == "memory":
            env.pop("REDIS_URL", None)  # in-memory channel layer, local-memory cache
        return env

    def procs_for(self, clients: int) -> int:
        return self.client_procs or (2 if clients >= 1000 else 1)


# --- set-up through the project's own code -----------------------------------

SETUP = r'''
import importlib, json, sys
import django
django.setup()
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.utils import timezone
from accounts import roles
from accounts.services import create_user
from merchants.models import Merchant, Order
from tickets import services as tickets
from tickets.models import Ticket

pairs_n, agents_n = int(sys.argv[1]), int(sys.argv[2])
SessionStore = importlib.import_module(settings.SESSION_ENGINE).SessionStore
# the backend a login records: the first that can load a user (axes, first in the list, only refuses logins)
from django.utils.module_loading import import_string
backend = next(b for b in settings.AUTHENTICATION_BACKENDS if hasattr(import_string(b), "get_user"))

def session(user):
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = backend
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return store.session_key

merchant = Merchant.objects.create(code="BENCHCHAT", name="基准聊天商家")
agents = [create_user(username=f"chat_agent{a}", password=None, role=roles.AGENT, display_name=f"客服{a}")
          for a in range(agents_n)]
agent_sessions = [session(a) for a in agents]
pairs = []
for i in range(pairs_n):
    buyer = create_user(username=f"chat_buyer{i}", password=None, role=roles.BUYER, display_name=f"买家{i}")
    order = Order.objects.create(order_no=f"BC{i:08d}", buyer=buyer, merchant=merchant, amount_fen=9_900,
                                 status="shipped", placed_at=timezone.now(),
                                 items=[{"sku": "S", "name": "蓝牙耳机", "qty": 1, "price_fen": 9900}])
    ticket = tickets.open_ticket(actor=buyer, category="logistics_delay", subject="快递三天没动了",
                                 body="请帮我查一下物流", order_id=order.pk, channel="chat")
    agent = agents[i % agents_n]
    tickets.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    ticket = Ticket.objects.get(pk=ticket.pk)
    pairs.append({"ticket": ticket.pk, "status": ticket.status, "last_seq": ticket.last_seq,
                  "buyer": buyer.pk, "agent": agent.pk,
                  "buyer_session": session(buyer), "agent_session": agent_sessions[i % agents_n]})
print(json.dumps({"session_engine": settings.SESSION_ENGINE, "pairs": pairs}))
'''


def setup_data(cfg: ChatConfig, pairs_n: int) -> tuple[list[dict], str]:
    env = cfg.app_env()
    env["DJANGO_SETTINGS_MODULE"] = "cs_portal.settings"
    env["PYTHONPATH"] = str(cfg.app)
    started = time.perf_counter()
    result = subprocess.run([PYTHON, "-c", SETUP, str(pairs_n), str(cfg.agents)], cwd=cfg.app, env=env,
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit("set-up script failed")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    pairs = data["pairs"]
    statuses = Counter(p["status"] for p in pairs)
    log(f"set-up: {pairs_n} buyers, orders and chat tickets, {cfg.agents} agents, sessions in "
        f"{data['session_engine']}: {time.perf_counter() - started:.1f} s; ticket statuses {dict(statuses)}")
    return pairs, data["session_engine"]


def db_seqs(cfg: ChatConfig, tickets: list[int]) -> dict[int, list[int]]:
    """The public messages' seqs of each ticket, from the database (the truth)."""
    import psycopg

    with psycopg.connect(cfg.database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT ticket_id, array_agg(seq ORDER BY seq) FROM tickets_message "
                            "WHERE ticket_id = ANY(%s) AND NOT internal GROUP BY ticket_id", [tickets]).fetchall()
    return {ticket: list(seqs) for ticket, seqs in rows}


def db_last_seq(cfg: ChatConfig, tickets: list[int]) -> dict[int, int]:
    import psycopg

    with psycopg.connect(cfg.database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT id, last_seq FROM tickets_ticket WHERE id = ANY(%s)", [tickets]).fetchall()
    return dict(rows)


# --- posting while the server is away (the app) ---------------------------------

POSTER = r'''
import asyncio, json, sys, time
import django
django.setup()
from django.db import close_old_connections
from accounts.models import User
from core.realtime import send_events
from tickets.models import Ticket
from tickets.rules import viewer_of
from tickets.services.chat import ChatPost, store_chat_batch
from tickets.services.messages import post_message

items = json.loads(sys.stdin.readline())  # [{"ticket": id, "author": user id, "body": text}]
users = {u.pk: u for u in User.objects.filter(pk__in={i["author"] for i in items})}
viewers = {pk: viewer_of(u) for pk, u in users.items()}
Ticket.objects.filter(pk__in=[i["ticket"] for i in items]).count()  # connection and statements warm
close_old_connections()
print("ready", flush=True)
sys.stdin.readline()
t0 = time.monotonic()
posted, via_service, refused = {}, 0, []
for start in range(0, len(items), 100):
    chunk = items[start:start + 100]
    outcome = store_chat_batch(posts=[ChatPost(viewers[i["author"]], i["ticket"], i["body"], None) for i in chunk],
                               reads=[])
    asyncio.run(send_events(outcome.events))
    for item, result in zip(chunk, outcome.results):
        if result is None:  # a reply that moves the ticket: the full service
            message = post_message(actor=users[item["author"]], ticket_id=item["ticket"], body=item["body"])
            posted[item["ticket"]] = message.seq
            via_service += 1
        elif isinstance(result, Exception):
            refused.append(f"{item['ticket']}: {type(result).__name__}")
        else:
            posted[item["ticket"]] = result.seq
print(json.dumps({"seconds": time.monotonic() - t0, "done_at": time.monotonic(), "posted": posted,
                  "via_service": via_service, "refused": refused}), flush=True)
'''


class Poster:
    """A Django process, set up and warm before the fault, that stores one
    message per ticket when told to."""

    def __init__(self, cfg: ChatConfig, pairs: list[dict]) -> None:
        env = cfg.app_env()
        env["DJANGO_SETTINGS_MODULE"] = "cs_portal.settings"
        env["PYTHONPATH"] = str(cfg.app)
        env["DB_POOL"] = "0"
        self.proc = subprocess.Popen([PYTHON, "-c", POSTER], cwd=cfg.app, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=open(cfg.workdir / "poster.log", "a"), text=True)
        items = [{"ticket": p["ticket"], "author": p["agent"] if i % 2 == 0 else p["buyer"],
                  "body": f"{TAG}outage.{p['ticket']} 系统通知：物流信息已更新，请查看。"} for i, p in enumerate(pairs)]
        self.proc.stdin.write(json.dumps(items) + "\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"poster did not start; see {cfg.workdir / 'poster.log'}")

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        line = self.proc.stdout.readline()
        self.proc.wait(timeout=30)
        if not line.strip():
            raise SystemExit("poster failed (see poster.log in the work directory)")
        return json.loads(line)


# --- the plain websocket relay -----------------------------------------------


async def relay_server(port: int, state: str | None) -> None:
    """Relay each chat frame to every socket on the same path and ack the
    sender, numbering frames per path; a socket's ``after_seq`` gets the frames
    after it from the log (kept in ``state``, a JSON-lines file, when given).
    SIGTERM closes every socket with 1012 (a server restarting), as uvicorn does."""
    from websockets.asyncio.server import broadcast, serve
    from websockets.exceptions import ConnectionClosed

    rooms: dict[str, set] = {}
    history: dict[str, list[tuple[int, str]]] = {}
    seqs: dict[str, int] = {}
    store = None
    if state:
        path = Path(state)
        if path.exists():
            for line in path.read_text().splitlines():
                item = json.loads(line)
                seqs[item["room"]] = item["seq"]
                history.setdefault(item["room"], []).append(
                    (item["seq"], json.dumps({"type": "message", "seq": item["seq"], "body": item["body"]})))
        store = open(path, "a")

    async def handler(ws) -> None:
        room_path, _, query = ws.request.path.partition("?")
        try:
            after = int(parse_qs(query).get("after_seq", ["0"])[0] or 0)
        except ValueError:
            after = 0
        room = rooms.setdefault(room_path, set())
        room.add(ws)
        # join, then replay (no await in between: nothing newer can come first)
        for seq, text in history.get(room_path, []):
            if seq > after:
                broadcast([ws], text)
        try:
            async for raw in ws:  # ends quietly on a normal close; 1012 and 1006 raise below
                frame = json.loads(raw)
                if not isinstance(frame, dict):
                    continue
                if frame.get("type") == "sync":
                    await ws.send(json.dumps({"type": "synced", "seq": seqs.get(room_path, 0)}))
                    continue
                if frame.get("type") != "message":
                    continue
                seq = seqs[room_path] = seqs.get(room_path, 0) + 1
                body = frame.get("body", "")
                text = json.dumps({"type": "message", "seq": seq, "body": body})
                if store is not None:
                    history.setdefault(room_path, []).append((seq, text))
                    store.write(json.dumps({"room": room_path, "seq": seq, "body": body}) + "\n")
                    store.flush()
                broadcast(room, text)
                await ws.send(json.dumps({"type": "ack", "client_msg_id": frame.get("client_msg_id"), "seq": seq}))
        except ConnectionClosed:
            pass
        finally:
            room.discard(ws)

    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None, backlog=4096,
                     max_queue=None) as server:
        print("ready", flush=True)
        await stop
        server.close(close_connections=False)
        await asyncio.gather(*(ws.close(1012, "restarting") for ws in list(server.connections)),
                             return_exceptions=True)


class Relay:
    """The relay process, with the same interface as ``Server`` where the scenarios use it."""

    kind = "relay"
    label = "relay"

    def __init__(self, cfg: ChatConfig, label: str, state: Path | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        self.log_path = cfg.workdir / f"relay-{label}.log"
        self.state = state
        self.proc: subprocess.Popen | None = None
        self.dead_cpu_s = 0.0
        self.started_at = self.answered_at = float("nan")

    def launch(self) -> None:
        if getattr(self, "_log", None):
            self._log.close()
        self._log = open(self.log_path, "a")
        self.started_at = time.monotonic()
        args = [PYTHON, str(Path(__file__).resolve()), "--relay", str(self.port)]
        if self.state is not None:
            args.append(str(self.state))
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, text=True)

    def wait_ready(self, timeout: float = 30, quiet: bool = False) -> None:
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit(f"relay did not start; log {self.log_path}")
        self.answered_at = time.monotonic()
        if not quiet:
            log(f"relay pid {self.proc.pid} on {self.ws_base}")

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def worker_pids(self) -> list[int]:
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []

    def signal(self, sig: int) -> float:
        at = time.monotonic()
        self.proc.send_signal(sig)
        return at

    def reap(self, timeout: float) -> bool:
        return Server.reap(self, timeout)  # the same wait4 bookkeeping

    def stop(self, timeout: float = 15) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            if not self.reap(timeout):
                self.proc.kill()
                self.reap(5)
        if getattr(self, "_log", None):
            self._log.close()

    def cpu_s(self) -> float:
        live = proc_cpu_s(self.proc.pid) if self.proc is not None and self.proc.returncode is None else 0.0
        return self.dead_cpu_s + (live if live == live else 0.0)

    def append_outage(self, pairs: list[dict]) -> dict[int, int]:
        """Store one message per room while the relay is away (the relay's
        'database' is its log file); returns the last seq of each ticket."""
        last: dict[str, int] = {}
        if self.state.exists():
            for line in self.state.read_text().splitlines():
                item = json.loads(line)
                last[item["room"]] = item["seq"]
        out = {}
        with open(self.state, "a") as f:
            for p in pairs:
                room = f"/ws/tickets/{p['ticket']}/chat/"
                seq = last.get(room, 0) + 1
                f.write(json.dumps({"room": room, "seq": seq,
                                    "body": f"{TAG}outage.{p['ticket']} 系统通知：物流信息已更新，请查看。"}) + "\n")
                out[p["ticket"]] = seq
        return out


# --- the client processes --------------------------------------------------------


@dataclass
class Msg:
    sent_at: float
    receiver: int
    measured: bool
    delivered: bool = False
    acked: bool = False
    refused: str = ""
    ticket: int = 0
    seq: int | None = None  # from the ack


@dataclass
class Client:
    idx: int
    partner: int
    ticket: int
    cookie: str
    after_seq: int
    last_seq: int = 0
    restarting_until: float = 0.0  # the page's "retry every second" window after a 1012/1013
    ws: object = None
    waiter: asyncio.Future | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    seen: dict = field(default_factory=dict)  # seq -> first arrival (monotonic)
    opens: list = field(default_factory=list)
    closes: list = field(default_factory=list)  # (monotonic, code)
    served_by: list = field(default_factory=list)
    failed_connects: int = 0
    first_failure: str = ""
    duplicates: int = 0
    out_of_order: int = 0
    sent_n: int = 0
    acked_seq: int | None = None
    gave_up: bool = False


@dataclass
class Stats:
    sent: int = 0
    sent_in_window: int = 0
    acked_in_window: int = 0
    delivered_in_window: int = 0
    latencies_ms: list = field(default_factory=list)
    ack_ms: list = field(default_factory=list)
    refused: Counter = field(default_factory=Counter)
    ack_timeouts: int = 0
    resent: int = 0
    lost: int = 0
    lost_acked: int = 0
    cpu_window_s: float = 0.0
    loop_lag_ms: list = field(default_factory=list)


def page_delay(code: int | None, attempts: int, rng: random.Random, c=None) -> tuple[float, int]:
    """``reconnectDelay`` of static/js/chat.js: (delay in s, attempts after).
    After a 1012/1013 the page keeps retrying every 0.2–1 s for 30 s (a
    restart refuses connections for a moment) before it backs off again."""
    now = time.monotonic()
    if code in (1012, 1013) and c is not None:
        c.restarting_until = now + 30.0
    if code in (1012, 1013) or (c is not None and now < getattr(c, "restarting_until", 0.0)):
        return 0.2 + rng.random() * 0.8, 0
    delay = min(30.0, 1.0 * 2 ** attempts) * (0.5 + rng.random() / 2)
    return delay, min(attempts + 1, 10)


class Fleet:
    """One client process's sockets (whole pairs), driven by the parent's commands."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.clients = [Client(**c) for c in spec["clients"]]
        for c in self.clients:
            c.last_seq = c.after_seq
        self.by_idx = {c.idx: c for c in self.clients}
        self.msgs: dict[str, Msg] = {}
        self.stats = Stats()
        self.window = (float("inf"), float("inf"))
        self.stopping = False
        self.rng = random.Random(spec["proc"] * 7919 + 7)
        self.sem = asyncio.Semaphore(spec["connect_concurrency"])
        self.tasks: list[asyncio.Task] = []
        self.initial = {c.idx: asyncio.get_running_loop().create_future() for c in self.clients}

    # sockets

    async def run_client(self, c: Client) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        attempts = 0
        first = True
        headers = {"Origin": self.spec["origin"], "Cookie": f"sessionid={c.cookie}"}
        while not self.stopping:
            url = f"{self.spec['ws_base']}/ws/tickets/{c.ticket}/chat/?after_seq={c.last_seq}"
            try:
                if first:
                    async with self.sem:
                        ws = await connect(url, open_timeout=60, compression=self.spec["compression"],
                                           ping_interval=None, max_queue=None, additional_headers=headers)
                else:
                    ws = await connect(url, open_timeout=30, compression=self.spec["compression"],
                                       ping_interval=None, max_queue=None, additional_headers=headers)
            except Exception as exc:  # noqa: BLE001 - counted; the page sees a 1006 close and backs off
                c.failed_connects += 1
                c.first_failure = c.first_failure or f"{type(exc).__name__}: {exc}"[:200]
                if first and c.failed_connects >= 3:
                    c.gave_up = True
                    self.initial[c.idx].done() or self.initial[c.idx].set_result(False)
                    return
                delay, attempts = page_delay(1006, attempts, self.rng, c)
                await asyncio.sleep(delay)
                continue
            attempts = 0
            c.ws = ws
            c.opens.append(time.monotonic())
            c.served_by.append(ws.response.headers.get("x-served-by", ""))
            c.connected.set()
            if first:
                first = False
                self.initial[c.idx].done() or self.initial[c.idx].set_result(True)
            try:
                async for raw in ws:
                    self.on_frame(c, raw, time.monotonic())
            except ConnectionClosed:
                pass
            code = ws.close_code
            c.connected.clear()
            c.ws = None
            c.closes.append((time.monotonic(), code))
            if c.waiter is not None and not c.waiter.done():
                c.waiter.set_result("closed")
            if self.stopping or code in (4401, 4403):
                return
            delay, attempts = page_delay(code, attempts, self.rng, c)
            await asyncio.sleep(delay)

    def on_frame(self, c: Client, raw: str, now: float) -> None:
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "message":
            seq = frame.get("seq")
            if isinstance(seq, int):
                if seq in c.seen:
                    c.duplicates += 1
                    return
                c.seen[seq] = now
                if seq < c.last_seq:
                    c.out_of_order += 1
                else:
                    c.last_seq = seq
            body = frame.get("body") or ""
            if not body.startswith(TAG):
                return
            msg = self.msgs.get(body[len(TAG):].split(" ", 1)[0])
            if msg is None or msg.receiver != c.idx or msg.delivered:
                return  # the sender's own copy, or an outage message
            msg.delivered = True
            if msg.measured:
                self.stats.latencies_ms.append((now - msg.sent_at) * 1000)
            if self.window[0] <= now < self.window[1]:
                self.stats.delivered_in_window += 1
        elif kind in ("ack", "error"):
            if c.waiter is not None and not c.waiter.done():
                c.acked_seq = frame.get("seq") if kind == "ack" else None
                c.waiter.set_result("ack" if kind == "ack" else str(frame.get("code")))
            elif kind == "error":
                self.stats.refused[f"unsolicited {frame.get('code')}"] += 1
        elif kind == "resync" and c.ws is not None:
            asyncio.ensure_future(self._send_quietly(c, '{"type":"sync"}'))
        # joined, here, left, typing, read, synced, ticket.changed: not measured

    @staticmethod
    async def _send_quietly(c: Client, text: str) -> None:
        try:
            if c.ws is not None:
                await c.ws.send(text)
        except Exception:  # noqa: BLE001 - a closing socket; the reconnect replays
            pass

    async def syncer(self) -> None:
        """The page's periodic ``sync`` (every --sync-every s per socket, random
        phase), each socket on its own timer as pages are: the server sees them
        arrive spread out, not in bursts."""
        every = self.spec["sync_every"]
        if every <= 0:
            return

        async def page(c: Client) -> None:
            await asyncio.sleep(self.rng.random() * every)
            while not self.stopping:
                if c.ws is not None:
                    await self._send_quietly(c, '{"type":"sync"}')
                await asyncio.sleep(every)

        await asyncio.gather(*(page(c) for c in self.clients))

    async def open_all(self) -> dict:
        started = time.monotonic()
        self.tasks = [asyncio.create_task(self.run_client(c)) for c in self.clients]
        await asyncio.gather(*self.initial.values())
        opened = sum(1 for c in self.clients if c.opens)
        self.tasks.append(asyncio.create_task(self.syncer()))
        failures = [c.first_failure for c in self.clients if c.first_failure]
        return {"event": "opened", "opened": opened, "failed": sum(c.gave_up for c in self.clients),
                "connect_s": time.monotonic() - started, "first_failure": failures[0] if failures else "",
                "served_by": dict(Counter(c.served_by[-1] for c in self.clients if c.served_by))}

    # load

    async def send_awaiting_ack(self, c: Client, frame: str, deadline: float) -> str:
        """Send, wait for the ack; a socket that closes first gets the frame
        again once reconnected (the page's outbox, same client_msg_id)."""
        from websockets.exceptions import ConnectionClosed

        tries = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            if c.ws is None:
                try:
                    await asyncio.wait_for(c.connected.wait(), remaining)
                except asyncio.TimeoutError:
                    return "timeout"
                continue
            if tries:
                self.stats.resent += 1
            tries += 1
            c.waiter = asyncio.get_running_loop().create_future()
            try:
                await c.ws.send(frame)
            except (ConnectionClosed, AttributeError):
                await asyncio.sleep(0.05)
                continue
            try:
                outcome = await asyncio.wait_for(asyncio.shield(c.waiter), deadline - time.monotonic())
            except asyncio.TimeoutError:
                return "timeout"
            if outcome == "closed":
                continue
            return outcome

    async def sender(self, c: Client, start: float, t0: float, t1: float, period: float) -> None:
        next_at = start + self.rng.random() * period
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if now >= t1:
                return
            mid = f"{c.idx}.{c.sent_n}"
            c.sent_n += 1
            msg = self.msgs[mid] = Msg(now, c.partner, measured=now >= t0, ticket=c.ticket)
            frame = json.dumps({"type": "message", "client_msg_id": uuid.uuid4().hex,
                                "body": f"{TAG}{mid} 您好，请问我的快递到哪里了？"})
            self.stats.sent += 1
            if msg.measured:
                self.stats.sent_in_window += 1
            outcome = await self.send_awaiting_ack(c, frame, now + ACK_TIMEOUT_S)
            acked_at = time.monotonic()
            if outcome == "timeout":
                self.stats.ack_timeouts += 1  # it may still be delivered: judged at the end
            elif outcome != "ack":
                msg.refused = outcome
                self.stats.refused[outcome] += 1
            else:
                msg.acked = True
                msg.seq = c.acked_seq
                if msg.measured:
                    self.stats.ack_ms.append((acked_at - now) * 1000)
                if t0 <= acked_at < t1:
                    self.stats.acked_in_window += 1
            # on schedule, never two waiting for an ack, no catching up after a slow ack
            next_at = max(next_at + period, time.monotonic())

    async def load(self, cmd: dict) -> dict:
        self.stats = Stats()
        start, t0, t1 = cmd["start"], cmd["t0"], cmd["t1"]
        self.window = (t0, t1)
        senders = [asyncio.create_task(self.sender(c, start, t0, t1, cmd["period"])) for c in self.clients if c.opens]

        async def cpu_window() -> None:
            """This process's CPU over the window, and how late its event loop
            wakes up (a busy client would show here before anywhere else)."""
            await asyncio.sleep(max(0.0, t0 - time.monotonic()))
            c0 = time.process_time()
            while time.monotonic() < t1:
                asked = time.monotonic()
                await asyncio.sleep(0.05)
                self.stats.loop_lag_ms.append((time.monotonic() - asked - 0.05) * 1000)
            self.stats.cpu_window_s = time.process_time() - c0

        meter = asyncio.create_task(cpu_window())
        await asyncio.sleep(max(0.0, t1 - time.monotonic()))
        await meter
        # grace: what is in flight arrives; stop when everything reached its partner,
        # when nothing more arrived for STALL_S, or after --grace
        deadline = time.monotonic() + cmd["grace"]
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            waiting = sum(1 for m in self.msgs.values() if not m.delivered and not m.refused)
            if waiting == 0 and all(t.done() for t in senders):
                break
            if waiting != last_count:
                last_count, last_change = waiting, time.monotonic()
            elif time.monotonic() - last_change > STALL_S and all(t.done() for t in senders):
                break
            await asyncio.sleep(0.2)
        for task in senders:
            task.cancel()
        lost = [m for m in self.msgs.values() if not m.delivered and not m.refused]
        self.stats.lost, self.stats.lost_acked = len(lost), sum(m.acked for m in lost)
        self.lost = lost  # checked again later: did a sync or a replay bring them?
        self.msgs.clear()
        s = self.stats
        return {"event": "loaded", "sent": s.sent, "sent_in_window": s.sent_in_window,
                "acked_in_window": s.acked_in_window, "delivered_in_window": s.delivered_in_window,
                "latencies_ms": s.latencies_ms, "ack_ms": s.ack_ms, "refused": dict(s.refused),
                "ack_timeouts": s.ack_timeouts, "resent": s.resent, "lost": s.lost, "lost_acked": s.lost_acked,
                "cpu_window_s": s.cpu_window_s, "loop_lag_ms": s.loop_lag_ms, **self.socket_counts()}

    def socket_counts(self) -> dict:
        return {"duplicates": sum(c.duplicates for c in self.clients),
                "out_of_order": sum(c.out_of_order for c in self.clients),
                "closes": sum(len(c.closes) for c in self.clients),
                "failed_connects": sum(c.failed_connects for c in self.clients),
                "served_by": dict(Counter(c.served_by[-1] for c in self.clients if c.served_by))}

    async def expect(self, cmd: dict) -> dict:
        """Wait until every client is connected and has seen its ticket's last
        seq (or the timeout), then hand back what each one saw and when."""
        target = {int(k): v for k, v in cmd["last_seq"].items()}
        deadline = time.monotonic() + cmd["timeout"]
        while time.monotonic() < deadline:
            if all(c.ws is not None and c.last_seq >= target.get(c.ticket, 0) for c in self.clients if c.opens):
                break
            await asyncio.sleep(0.05)
        return {"event": "expected", "clients": [
            {"idx": c.idx, "ticket": c.ticket, "after_seq": c.after_seq, "seen": c.seen, "opens": c.opens,
             "closes": c.closes, "failed_connects": c.failed_connects, "duplicates": c.duplicates,
             "out_of_order": c.out_of_order, "connected": c.ws is not None, "served_by": c.served_by}
            for c in self.clients]}

    def seen_report(self) -> dict:
        late = []  # messages lost at the end of the grace period: arrived since? when?
        for m in getattr(self, "lost", []):
            receiver = self.by_idx[m.receiver]
            arrived = receiver.seen.get(m.seq) if m.seq is not None else None
            late.append({"ticket": m.ticket, "seq": m.seq, "acked": m.acked,
                         "arrived_after_s": None if arrived is None else arrived - m.sent_at})
        return {"event": "seen", "late": late, "clients": [
            {"idx": c.idx, "ticket": c.ticket, "after_seq": c.after_seq, "seen": sorted(c.seen)}
            for c in self.clients]}

    async def close_all(self) -> dict:
        self.stopping = True
        unexpected = sum(len(c.closes) for c in self.clients)
        await asyncio.gather(*(c.ws.close() for c in self.clients if c.ws is not None), return_exceptions=True)
        await asyncio.wait(self.tasks, timeout=10)
        for task in self.tasks:
            task.cancel()
        return {"event": "closed", "unexpected_closes": unexpected}


async def client_process(pipe, spec: dict) -> None:
    loop = asyncio.get_running_loop()
    fleet = Fleet(spec)
    pipe.send(await fleet.open_all())
    while True:
        cmd = await loop.run_in_executor(None, pipe.recv)
        kind = cmd["cmd"]
        if kind == "load":
            pipe.send(await fleet.load(cmd))
        elif kind == "expect":
            pipe.send(await fleet.expect(cmd))
        elif kind == "seen":
            pipe.send(fleet.seen_report())
        elif kind == "close":
            pipe.send(await fleet.close_all())
            return


def client_entry(pipe, spec: dict) -> None:
    """A client process (multiprocessing, spawn): one event loop, uvloop."""
    raise_fd_limit(len(spec["clients"]) + 256)
    try:
        import uvloop

        uvloop.run(client_process(pipe, spec))
    except ImportError:
        asyncio.run(client_process(pipe, spec))


class Clients:
    """The client processes of one row; pairs are never split between them."""

    def __init__(self, cfg: ChatConfig, server, pairs: list[dict], after: dict[int, int]) -> None:
        procs = min(cfg.procs_for(2 * len(pairs)), len(pairs))
        ctx = multiprocessing.get_context("spawn")
        self.pipes, self.procs = [], []
        for k in range(procs):
            mine = pairs[k::procs]
            clients = []
            for i, p in mine:
                base = after.get(p["ticket"], 0)
                clients.append({"idx": 2 * i, "partner": 2 * i + 1, "ticket": p["ticket"],
                                "cookie": p["buyer_session"], "after_seq": base})
                clients.append({"idx": 2 * i + 1, "partner": 2 * i, "ticket": p["ticket"],
                                "cookie": p["agent_session"], "after_seq": base})
            spec = {"proc": k, "clients": clients, "ws_base": server.ws_base, "origin": server.base,
                    "connect_concurrency": max(1, CONNECT_CONCURRENCY // procs), "sync_every": cfg.sync_every_s,
                    "compression": "deflate" if cfg.deflate else None}
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_entry, args=(child, spec), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def send(self, cmd: dict) -> None:
        for pipe in self.pipes:
            pipe.send(cmd)

    def gather(self, timeout: float = 600) -> list[dict]:
        out = []
        for pipe, proc in zip(self.pipes, self.procs):
            if not pipe.poll(timeout):
                raise SystemExit(f"client process {proc.pid} did not answer within {timeout:.0f} s")
            out.append(pipe.recv())
        return out

    def ask(self, cmd: dict, timeout: float = 600) -> list[dict]:
        self.send(cmd)
        return self.gather(timeout)

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(pid) for pid in self.pids)

    def close(self) -> dict:
        try:
            replies = self.ask({"cmd": "close"}, timeout=60)
        except (SystemExit, EOFError, BrokenPipeError):
            replies = []
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        return {"unexpected_closes": sum(r.get("unexpected_closes", 0) for r in replies)}


# --- CPU over a window ----------------------------------------------------------


class Window:
    """CPU of the server tree, the client processes, PostgreSQL, Redis and the machine."""

    def __init__(self, server, clients: Clients) -> None:
        self.server_obj, self.clients_obj = server, clients

    def start(self) -> "Window":
        self.t0 = time.monotonic()
        self.s0 = self.server_obj.cpu_s()
        self.c0 = self.clients_obj.cpu_s()
        self.pg0 = cpu_by_command(("postgres",))
        self.r0 = cpu_by_command(("redis-server",))
        self.m0 = machine_busy()
        return self

    def stop(self) -> "Window":
        self.wall = time.monotonic() - self.t0
        self.server = self.server_obj.cpu_s() - self.s0
        self.client = self.clients_obj.cpu_s() - self.c0
        self.postgres = cpu_by_command(("postgres",)) - self.pg0
        self.redis = cpu_by_command(("redis-server",)) - self.r0
        busy1, total1 = machine_busy()
        busy0, total0 = self.m0
        self.machine_cores = (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
        # everything else on the machine (other people's work competing with the run; this script's parent)
        self.other = max(0.0, self.machine_cores * self.wall - self.server - self.client - self.postgres - self.redis)
        # the app server's memory with every socket open (the relay has no such figure)
        self.server_mb = self.server_obj.pss_mb() if hasattr(self.server_obj, "pss_mb") else 0.0
        return self

    def as_dict(self) -> dict:
        return {"wall_s": self.wall, "server": self.server, "client": self.client, "postgres": self.postgres,
                "redis": self.redis, "other": self.other, "machine_busy_cores": self.machine_cores,
                "server_mb": self.server_mb}


# --- one row --------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    server: str  # label
    layer: str
    clients: int
    procs: int
    offered: float = 0.0
    seconds: float = 0.0
    connect_s: float = 0.0
    connect_failures: int = 0
    first_failure: str = ""
    served_by: dict = field(default_factory=dict)
    load: dict = field(default_factory=dict)
    gaps: int = 0
    window: dict | None = None
    server_errors: dict = field(default_factory=dict)
    reconnect: dict = field(default_factory=dict)
    unexpected_closes: int = 0
    open_server_cpu_s: float = 0.0

    @property
    def is_relay(self) -> bool:
        return self.server == "relay"

    def rate(self, key: str) -> float:
        return self.load.get(key, 0) / self.seconds if self.seconds else float("nan")

    def lat(self, q: float) -> float:
        return pct(self.load.get("latencies_ms", []), q)

    def ack(self, q: float) -> float:
        return pct(self.load.get("ack_ms", []), q)

    def lag(self, q: float) -> float:
        return pct(self.load.get("loop_lag_ms", []), q)

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "load"}
        lats = self.load.get("latencies_ms", [])
        out["load"] = {k: v for k, v in self.load.items() if k not in ("latencies_ms", "ack_ms", "loop_lag_ms")}
        out["client_loop_lag_ms"] = {"p50": self.lag(50), "p99": self.lag(99),
                                     "max": max(self.load.get("loop_lag_ms", []), default=float("nan"))}
        if self.scenario != "reconnect":
            out["figures"] = {
                "offered_per_s": self.offered, "stored_per_s": self.rate("acked_in_window"),
                "delivered_per_s": self.rate("delivered_in_window"), "sent_per_s": self.rate("sent_in_window"),
                "ack_p50_ms": self.ack(50), "ack_p99_ms": self.ack(99), "p50_ms": self.lat(50),
                "p99_ms": self.lat(99), "max_ms": max(lats, default=float("nan")), "measured": len(lats),
            }
        return out


def merge_loads(replies: list[dict]) -> dict:
    out: dict = {"refused": Counter(), "served_by": Counter()}
    for r in replies:
        for key, value in r.items():
            if key == "event":
                continue
            if key in ("refused", "served_by"):
                out[key].update(value)
            elif isinstance(value, list):
                out.setdefault(key, []).extend(value)
            else:
                out[key] = out.get(key, 0) + value
    out["refused"], out["served_by"] = dict(out["refused"]), dict(out["served_by"])
    return out


def server_errors(log_path: Path, offset: int) -> dict:
    """Exceptions the server logged after ``offset``, by class (the last line
    of each traceback), and gunicorn's worker timeouts and kills."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return {}
    found = Counter(m.group(1).rsplit(".", 1)[-1]
                    for m in re.finditer(r"^([A-Za-z_][\w.]*(?:Error|Exception|Full))(?::|$)", text, re.M))
    found["WORKER TIMEOUT"] += len(re.findall(r"WORKER TIMEOUT", text))
    found["worker killed"] += len(re.findall(r"Worker \(pid:\d+\) was sent SIG", text))
    return {k: v for k, v in found.items() if v}


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def make_server(cfg: ChatConfig, scenario: str, kind: str, n: int, state: Path | None = None):
    # no channel-layer state or throttle counters from the row before; the sessions stay cached,
    # as a server's restart leaves them (emptied, every socket's first connect read its session
    # from the database: a miss that a page opened since its login does not pay)
    flush_redis(cfg, keep="*django.contrib.sessions.cached_db*")
    if kind == "relay":
        return Relay(cfg, f"{scenario}-{n}", state), "relay", "-"
    cfg.layer = kind
    server = Server(cfg, f"{scenario}-{kind}-{n}")
    return server, server.label, kind


def open_clients(cfg: ChatConfig, server, row: Row, pairs: list[dict], after: dict[int, int]) -> Clients:
    cpu0 = server.cpu_s()
    clients = Clients(cfg, server, list(enumerate(pairs)), after)
    replies = clients.gather(timeout=600)
    row.open_server_cpu_s = server.cpu_s() - cpu0
    row.connect_s = max(r["connect_s"] for r in replies)
    row.connect_failures = sum(r["failed"] for r in replies)
    row.first_failure = next((r["first_failure"] for r in replies if r["first_failure"]), "")
    row.served_by = dict(sum((Counter(r["served_by"]) for r in replies), Counter()))
    opened = sum(r["opened"] for r in replies)
    spread = ""
    if len(row.served_by) > 1:
        spread = "; per process " + ", ".join(str(v) for _, v in sorted(row.served_by.items()))
    log(f"[{row.scenario} {row.server} {row.clients}] {opened}/{row.clients} sockets open in {row.connect_s:.1f} s "
        f"({opened / max(row.connect_s, 1e-9):.0f}/s, server CPU {row.open_server_cpu_s * 1000 / max(opened, 1):.1f} ms "
        f"per socket) from {len(clients.procs)} client process(es){spread}"
        + (f"; {row.connect_failures} failed, first: {row.first_failure}" if row.connect_failures else ""))
    return clients


def check_gaps(cfg: ChatConfig, replies: list[dict], final: dict[int, list[int]] | None = None) -> tuple[int, int]:
    """Messages stored on a client's ticket after its first after_seq that it
    never received (and, for the relay, against its own numbering)."""
    tickets = sorted({c["ticket"] for r in replies for c in r["clients"]})
    truth = final if final is not None else db_seqs(cfg, tickets)
    gaps = clients_with_gaps = 0
    for r in replies:
        for c in r["clients"]:
            seen = set(int(s) for s in c["seen"])
            missing = [s for s in truth.get(c["ticket"], []) if s > c["after_seq"] and s not in seen]
            gaps += len(missing)
            clients_with_gaps += bool(missing)
    return gaps, clients_with_gaps


def run_load_row(cfg: ChatConfig, scenario: str, kind: str, n: int, pairs: list[dict]) -> Row:
    """throughput / latency: open n sockets, load them, measure one window."""
    period = cfg.period_s if scenario == "throughput" else cfg.slow_period_s
    server, label, layer = make_server(cfg, scenario, kind, n)
    row = Row(scenario, label, layer, n, cfg.procs_for(n), offered=n / period, seconds=cfg.seconds)
    tickets = [p["ticket"] for p in pairs]
    after = db_last_seq(cfg, tickets) if kind != "relay" else {}
    server.start()
    offset = log_size(server.log_path)
    clients = None
    try:
        clients = open_clients(cfg, server, row, pairs, after)
        if row.connect_failures:
            return row
        time.sleep(1.0)  # the joined/here frames of the last sockets settle
        start = time.monotonic() + 0.5
        t0 = start + cfg.warmup_s
        t1 = t0 + cfg.seconds
        clients.send({"cmd": "load", "start": start, "t0": t0, "t1": t1, "period": period, "grace": cfg.grace_s})
        time.sleep(max(0.0, t0 - time.monotonic()))
        window = Window(server, clients).start()
        time.sleep(max(0.0, t1 - time.monotonic()))
        row.window = window.stop().as_dict()
        replies = clients.gather(timeout=cfg.grace_s + ACK_TIMEOUT_S + 120)
        row.load = merge_loads(replies)
        row.window["client_self"] = row.load.get("cpu_window_s", 0.0)
        if kind != "relay":
            time.sleep(1.0)
            seen = clients.ask({"cmd": "seen"})
            row.gaps, _ = check_gaps(cfg, seen)
            late = [x for r in seen for x in r["late"]]
            if late:
                row.load["lost_detail"] = late
                came = sorted(x["arrived_after_s"] for x in late if x["arrived_after_s"] is not None)
                log(f"[{scenario} {label} {n}] {len(late)} message(s) not delivered to the partner within the grace "
                    f"period ({sum(x['acked'] for x in late)} acked): {len(came)} arrived later (a sync or a replay), "
                    f"{came[0] if came else 0:.1f}-{came[-1] if came else 0:.1f} s after sending; first: {late[:3]}")
        row.unexpected_closes = clients.close()["unexpected_closes"]
        clients = None
        time.sleep(1.0)  # the server drops the last sockets
    finally:
        if clients is not None:
            clients.close()
        server.stop()
        row.server_errors = server_errors(server.log_path, offset)
    w = row.window
    log(f"[{scenario} {label} {n}] offered {row.offered:.0f}/s, stored {row.rate('acked_in_window'):.0f}/s, "
        f"delivered {row.rate('delivered_in_window'):.0f}/s; ack p50 {row.ack(50):.0f} ms; delivery p50 "
        f"{row.lat(50):.1f} ms, p99 {row.lat(99):.1f} ms; refused {row.load.get('refused') or 0}, lost "
        f"{row.load.get('lost', 0)}, gaps {row.gaps}, ack timeouts {row.load.get('ack_timeouts', 0)}, closes "
        f"{row.load.get('closes', 0)}; CPU s server {w['server']:.1f}, clients {w['client']:.1f}, postgres "
        f"{w['postgres']:.1f}, redis {w['redis']:.1f}, other {w['other']:.1f}; machine {w['machine_busy_cores']:.2f} "
        "cores busy" + (f"; server memory {w['server_mb']:.0f} MB (PSS) with {n} sockets" if w.get("server_mb") else "")
        + (f"; server log: {row.server_errors}" if row.server_errors else ""))
    return row


def run_reconnect_row(cfg: ChatConfig, kind: str, n: int, pairs: list[dict]) -> Row:
    """Connect n clients, exchange a few messages, restart (or kill a worker of)
    the server while one message per ticket is stored, measure the recovery."""
    mode = cfg.reconnect_mode
    state = cfg.workdir / f"relay-state-{n}.jsonl" if kind == "relay" else None
    if state is not None and state.exists():
        state.unlink()
    server, label, layer = make_server(cfg, "reconnect", kind, n, state)
    row = Row("reconnect", label, layer, n, cfg.procs_for(n))
    tickets = [p["ticket"] for p in pairs]
    after = db_last_seq(cfg, tickets) if kind != "relay" else {}
    server.start()
    offset = log_size(server.log_path)
    clients = poster = None
    marks: dict[str, float] = {}
    try:
        clients = open_clients(cfg, server, row, pairs, after)
        if row.connect_failures:
            return row
        time.sleep(1.0)
        # the prelude: a few messages each, all delivered, then quiet
        start = time.monotonic() + 0.5
        t1 = start + cfg.prelude * 1.0
        clients.send({"cmd": "load", "start": start, "t0": start, "t1": t1, "period": 1.0, "grace": cfg.grace_s})
        prelude = merge_loads(clients.gather(timeout=cfg.grace_s + ACK_TIMEOUT_S + 120))
        row.load = {"prelude_sent": prelude.get("sent", 0), "prelude_lost": prelude.get("lost", 0),
                    "prelude_refused": prelude.get("refused", {})}
        poster = Poster(cfg, pairs) if kind != "relay" else None
        time.sleep(1.0)
        served = Counter(prelude.get("served_by", {}))
        window = Window(server, clients).start()
        # the fault
        if mode == "kill" and server.kind == "prod":
            by_pid = Counter()
            for who, count in served.items():
                if who.rsplit(":", 1)[-1].isdigit():
                    by_pid[int(who.rsplit(":", 1)[-1])] += count
            alive = server.worker_pids()
            victim = max(alive, key=lambda pid: by_pid.get(pid, 0))
            marks["fault"] = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            row.reconnect["killed_worker"] = {"pid": victim, "sockets": by_pid.get(victim, 0)}
            poster.go()
            marks["down"] = marks["fault"]
            # gunicorn notices and boots a replacement; the others serve meanwhile
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (set(server.worker_pids()) - set(alive)):
                time.sleep(0.02)
            marks["replacement_forked"] = time.monotonic()
            posted = poster.result()
            marks["posted"] = posted["done_at"]
            expected = db_last_seq(cfg, tickets)
        elif mode == "reload" and server.kind == "prod":
            # a deploy (deploy/listen_first.py): a new server imports and starts its workers beside the old,
            # then the old one is stopped (its workers close their sockets with 1012); the port never closes
            old_workers = set(server.worker_pids())
            marks["fault"] = server.signal(signal.SIGHUP)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and set(server.worker_pids()) & old_workers:
                time.sleep(0.02)
            marks["down"] = time.monotonic()  # the old workers are gone
            poster.go()
            while time.monotonic() < deadline and len(set(server.worker_pids()) - old_workers) < server.workers:
                time.sleep(0.02)
            marks["replacements_forked"] = time.monotonic()
            posted = poster.result()
            marks["posted"] = posted["done_at"]
            expected = db_last_seq(cfg, tickets)
        else:
            sig = signal.SIGKILL if mode == "kill" else signal.SIGTERM
            marks["fault"] = server.signal(sig)
            if not server.reap(60):
                raise SystemExit(f"{label} did not exit within 60 s of {sig.name}")
            marks["down"] = time.monotonic()
            if kind == "relay":
                expected = server.append_outage(pairs)
                marks["posted"] = time.monotonic()
                server.launch()
                server.wait_ready(quiet=True)
                marks["up"] = server.answered_at
            else:
                poster.go()
                server.launch()
                while time.monotonic() - marks["down"] < 90 and not server.listening():
                    if server.proc.poll() is not None:
                        raise SystemExit(f"{label} exited on restart; log:\n{server.tail(30)}")
                    time.sleep(0.01)
                marks["up"] = time.monotonic()  # listening (its workers may still be booting)
                posted = poster.result()
                marks["posted"] = posted["done_at"]
                expected = db_last_seq(cfg, tickets)
        if poster is not None:
            row.reconnect["posted"] = len(posted["posted"])
            row.reconnect["posted_via_post_message"] = posted["via_service"]
            row.reconnect["post_refused"] = posted["refused"]
        replies = clients.ask({"cmd": "expect", "last_seq": expected, "timeout": RECOVERY_TIMEOUT_S},
                              timeout=RECOVERY_TIMEOUT_S + 60)
        row.window = window.stop().as_dict()
        truth = db_seqs(cfg, tickets) if kind != "relay" else {
            t: list(range(1, last + 1)) for t, last in expected.items()}
        row.reconnect.update(recovery(marks, replies, truth))
        row.reconnect["mode"] = mode if kind != "relay" else ("kill" if mode == "kill" else "restart")
        row.reconnect["marks_s"] = {k: v - marks["fault"] for k, v in marks.items()}
        row.gaps = row.reconnect["missed"]
        if kind != "relay":
            row.served_by = dict(Counter(c["served_by"][-1] for r in replies for c in r["clients"] if c["served_by"]))
        row.unexpected_closes = clients.close()["unexpected_closes"]
        clients = None
        time.sleep(1.0)
    finally:
        if clients is not None:
            clients.close()
        if poster is not None and poster.proc.poll() is None:
            poster.proc.kill()
        server.stop()
        row.server_errors = server_errors(server.log_path, offset)
    rc = row.reconnect
    log(f"[reconnect {label} {n}] {rc['mode']}: affected {rc['affected']}, back and replayed "
        f"{rc['recovered']}/{rc['clients']}; recovery p50 {rc['p50_s']:.2f} s, p99 {rc['p99_s']:.2f} s, max "
        f"{rc['max_s']:.2f} s; each client's own outage (close to back and replayed) p50 {rc['gap_p50_s']:.2f} s, "
        f"max {rc['gap_max_s']:.2f} s; missed {rc['missed']}, duplicated {rc['duplicates']}; marks "
        + ", ".join(f"{k} {v:+.2f} s" for k, v in rc["marks_s"].items())
        + (f"; server log: {row.server_errors}" if row.server_errors else ""))
    return row


def recovery(marks: dict[str, float], replies: list[dict], truth: dict[int, list[int]]) -> dict:
    """Per client: from the fault until it is connected again (if the fault
    closed it) and has every stored message it had not seen before the fault."""
    fault = marks["fault"]
    times, missed, dups, affected, not_back, replayed = [], 0, 0, 0, 0, 0
    gaps = []  # each closed client's own outage: from its close to back and replayed
    failed_connects = 0
    reopen_first, reopen_last = float("inf"), float("-inf")
    clients = [c for r in replies for c in r["clients"]]
    for c in clients:
        seen = {int(s): t for s, t in c["seen"].items()}
        needed = [s for s in truth.get(c["ticket"], []) if s > c["after_seq"] and not (s in seen and seen[s] < fault)]
        missing = [s for s in needed if s not in seen]
        missed += len(missing)
        dups += c["duplicates"]
        failed_connects += c["failed_connects"]
        closed = [t for t, _ in c["closes"] if t >= fault]
        back = fault
        if closed:
            affected += 1
            reopened = [t for t in c["opens"] if t > max(closed)]
            if not reopened or not c["connected"]:
                not_back += 1
                times.append(float("inf"))
                continue
            back = reopened[0]
            reopen_first, reopen_last = min(reopen_first, back), max(reopen_last, back)
            if any(seen.get(s, 0) >= back for s in needed) and marks.get("posted", 0) <= back:
                replayed += 1
        if missing:
            times.append(float("inf"))
            continue
        arrived = max((seen[s] for s in needed), default=fault)
        times.append(max(back, arrived) - fault)
        if closed:
            gaps.append(max(back, arrived) - min(closed))
    finite = [t for t in times if t != float("inf")]
    return {
        "clients": len(clients), "affected": affected, "recovered": len(finite), "not_back": not_back,
        "p50_s": pct(times, 50), "p99_s": pct(times, 99), "max_s": max(times, default=float("nan")),
        "within_goal": sum(1 for t in times if t <= GOAL_RECOVERY_S), "missed": missed, "duplicates": dups,
        "failed_connects": failed_connects, "replayed_after_reconnect": replayed,
        "first_back_s": reopen_first - fault if affected else float("nan"),
        "last_back_s": reopen_last - fault if affected else float("nan"),
        "gap_p50_s": pct(gaps, 50), "gap_max_s": max(gaps, default=float("nan")),
    }


# --- summary -------------------------------------------------------------------


def fmt(x: float, digits: int = 0) -> str:
    if x != x:
        return "n/a"
    if x == float("inf"):
        return "inf"
    return f"{x:,.{digits}f}"


def cpu_cells(w: dict | None) -> str:
    if not w:
        return "   (not measured)"
    return (f"{w['server']:7.1f}{w['client']:7.1f}{w['postgres']:6.1f}{w['redis']:6.1f}{w['other']:6.1f}"
            f"{w['machine_busy_cores']:6.2f}")


def summary(cfg: ChatConfig, rows: list[Row], elapsed_s: float) -> tuple[dict, list[str]]:
    missed_goals: list[str] = []
    width = 150
    print("\n" + "=" * width)
    print(f"SUMMARY  chat, {cfg.server_label()} (app rows) beside the plain websockets relay (one process); "
          f"{os.cpu_count()} cores shared by clients, servers, PostgreSQL and Redis ({scheduler_grouping()}); "
          f"run took {elapsed_s / 60:.1f} min")
    print("=" * width)
    load_rows = [r for r in rows if r.scenario != "reconnect"]
    if load_rows:
        print(f"Load: {cfg.seconds:.0f} s measured after {cfg.warmup_s:.0f} s of load; throughput = one message per "
              f"{cfg.period_s:g} s per client, latency = one per {cfg.slow_period_s:g} s; at most one awaiting its "
              f"ack; sync every {cfg.sync_every_s:g} s per socket (the page's)")
        print(f"{'scenario':<11}{'server':<24}{'layer':<7}{'clients':>8}{'procs':>6}{'offered/s':>10}{'stored/s':>9}"
              f"{'deliv/s':>8}{'ack p50':>8}{'ack p99':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'lost':>5}"
              f"{'gaps':>5}{'refused':>8}{'srv err':>8}{'open s':>7}{'cli lag':>8}  CPU s:{'server':>7}{'client':>7}{'pg':>6}"
              f"{'redis':>6}{'other':>6}{'busy':>6}")
        for r in load_rows:
            lats = r.load.get("latencies_ms", [])
            print(f"{r.scenario:<11}{r.server:<24}{r.layer:<7}{r.clients:>8}{r.procs:>6}{r.offered:>10.0f}"
                  f"{fmt(r.rate('acked_in_window')):>9}{fmt(r.rate('delivered_in_window')):>8}{fmt(r.ack(50), 1):>8}"
                  f"{fmt(r.ack(99), 1):>8}{fmt(r.lat(50), 1):>8}{fmt(r.lat(99), 1):>8}"
                  f"{fmt(max(lats, default=float('nan'))):>8}{r.load.get('lost', 0):>5}{r.gaps:>5}"
                  f"{sum(r.load.get('refused', {}).values()):>8}{sum(r.server_errors.values()):>8}"
                  f"{r.connect_s:>7.1f}{fmt(r.lag(99), 1):>8}       {cpu_cells(r.window)}")
    rec_rows = [r for r in rows if r.scenario == "reconnect"]
    if rec_rows:
        print()
        print(f"Reconnect: {cfg.prelude} message(s) per client exchanged, then the fault; one message stored per "
              "ticket during the outage; clients reconnect as chat.js does; recovery = fault -> connected again and "
              "every missed message received")
        print(f"{'server':<24}{'layer':<7}{'clients':>8}{'fault':>9}{'affected':>9}{'down s':>7}{'listen':>7}"
              f"{'posted s':>9}{'first back':>11}{'last back':>10}{'rec p50':>8}{'rec p99':>8}{'rec max':>8}"
              f"{'<=3 s':>7}{'missed':>7}{'dup':>5}{'failed conn':>12}{'srv err':>8}  CPU s:{'server':>7}"
              f"{'client':>7}{'pg':>6}{'redis':>6}{'other':>6}{'busy':>6}")
        for r in rec_rows:
            rc = r.reconnect
            if not rc:
                print(f"{r.server:<24}{r.layer:<7}{r.clients:>8}  not measured ({r.connect_failures} sockets failed "
                      f"to open: {r.first_failure})")
                continue
            m = rc["marks_s"]
            print(f"{r.server:<24}{r.layer:<7}{r.clients:>8}{rc['mode'][:9]:>9}{rc['affected']:>9}"
                  f"{fmt(m.get('down', float('nan')), 2):>7}{fmt(m.get('up', float('nan')), 2):>7}"
                  f"{fmt(m.get('posted', float('nan')), 2):>9}{fmt(rc['first_back_s'], 2):>11}"
                  f"{fmt(rc['last_back_s'], 2):>10}{fmt(rc['p50_s'], 2):>8}{fmt(rc['p99_s'], 2):>8}"
                  f"{fmt(rc['max_s'], 2):>8}{str(rc['within_goal']) + '/' + str(rc['clients']):>7}"
                  f"{rc['missed']:>7}{rc['duplicates']:>5}{rc['failed_connects']:>12}"
                  f"{sum(r.server_errors.values()):>8}       {cpu_cells(r.window)}")
    for r in rows:
        if r.server_errors:
            print(f"  {r.scenario} {r.server} {r.clients}: the server logged {r.server_errors}")
        if r.connect_failures:
            print(f"  {r.scenario} {r.server} {r.clients}: {r.connect_failures} sockets failed to open "
                  f"({r.first_failure})")
        if r.unexpected_closes and r.scenario != "reconnect":
            print(f"  {r.scenario} {r.server} {r.clients}: {r.unexpected_closes} socket close(s) the client did not ask "
                  "for")
    # ratios against the relay of the same scenario and size
    relay = {(r.scenario, r.clients): r for r in load_rows if r.is_relay}
    print()
    ratios = []
    for r in load_rows:
        e = relay.get((r.scenario, r.clients))
        if r.is_relay or e is None or not r.load.get("latencies_ms") or not e.load.get("latencies_ms"):
            continue
        item = {"scenario": r.scenario, "server": r.server, "layer": r.layer, "clients": r.clients,
                "p50": r.lat(50) / e.lat(50), "p99": r.lat(99) / e.lat(99),
                "delivered_per_s": r.rate("delivered_in_window") / e.rate("delivered_in_window")
                if e.rate("delivered_in_window") else float("nan")}
        ratios.append(item)
        print(f"ratio app/relay, {r.scenario} {r.layer} {r.clients} clients: p50 {fmt(item['p50'], 1)}x, p99 "
              f"{fmt(item['p99'], 1)}x, delivered/s {item['delivered_per_s']:.2f}x")
    # goals (app rows)
    print()
    for r in rows:
        if r.is_relay:
            continue
        tag = f"{r.scenario} {r.layer} {r.clients} clients"
        if r.connect_failures:
            missed_goals.append(f"{tag}: {r.connect_failures} sockets failed to open")
            continue
        if r.scenario == "throughput":
            stored, delivered = r.rate("acked_in_window"), r.rate("delivered_in_window")
            judged = r.offered >= GOAL_RATE  # a smaller run cannot offer the goal's rate
            ok = (stored >= GOAL_RATE and delivered >= GOAL_RATE or not judged) and not r.load.get("lost") \
                and not r.gaps
            verdict = ("MET" if ok else "MISSED") if judged else \
                ("rate not judged below 1,000 offered/s; lossless" if ok else "MISSED (lost messages)")
            print(f"goal throughput (>= {GOAL_RATE:,.0f}/s stored and delivered, 0 lost) {tag}: stored "
                  f"{stored:,.0f}/s, delivered {delivered:,.0f}/s, lost {r.load.get('lost', 0)}, gaps {r.gaps}: "
                  f"{verdict}")
        elif r.scenario == "latency":
            ok = r.lat(99) < GOAL_P99_MS and not r.load.get("lost") and not r.gaps
            print(f"goal latency (delivery p99 < {GOAL_P99_MS:.0f} ms, 0 lost) {tag}: p99 {fmt(r.lat(99), 1)} ms, "
                  f"lost {r.load.get('lost', 0)}: {'MET' if ok else 'MISSED'}")
        else:
            rc = r.reconnect
            # a deploy (reload) closes no socket until the new server is up: its clients' outage starts at
            # their close, not at the signal; a restart or a kill closes them at once, and counts from the signal
            took = rc["gap_max_s"] if rc["mode"] == "reload" else rc["max_s"]
            since = "of its close" if rc["mode"] == "reload" else "of the fault"
            ok = took <= GOAL_RECOVERY_S and not rc["missed"] and not rc["duplicates"]
            print(f"goal reconnect (every client back and replayed within {GOAL_RECOVERY_S:.0f} s {since}, 0 missed or "
                  f"duplicated) {tag}, {rc['mode']}: max {fmt(took, 2)} s, missed {rc['missed']}, "
                  f"duplicated {rc['duplicates']}: {'MET' if ok else 'MISSED'}")
        if not ok:
            missed_goals.append(tag)
    print(f"\nCode measured: {cfg.source}")
    print("Columns: offered = clients / period; stored = acks and deliv(ered to the partner) per second arriving inside "
          "the window; ack = send -> the sender's ack; p50/p99/max = send -> the partner's 'message' frame for messages "
          "sent inside the window; lost = sent, not refused, never delivered to the partner; gaps = stored messages "
          "(database; the relay: its log) a socket of the ticket never received; srv err = exceptions and worker "
          "timeouts/kills in the server log; open s = time to open the sockets; cli lag = p99 of how late the client "
          "processes' event loops woke up in the window (ms; the client is not the limit while this stays small); "
          "CPU seconds over the window: server = "
          "its whole process tree (gunicorn master + workers), client = the client processes, pg = all of PostgreSQL, "
          "other = every other process (this script's parent included), busy = cores of the machine in use. "
          "Reconnect marks are seconds after the fault: down = the old server exited (restart; reload: its old "
          "workers), listen = the new one accepts TCP connections (its workers may still be booting), posted = the outage messages committed; first/last back = sockets open again; failed conn = "
          "connection attempts refused during the outage (each followed by the page's backoff).")
    competing = max((r.window["other"] / r.window["wall_s"] for r in rows if r.window and r.window.get("wall_s")),
                    default=0.0)
    if competing > 0.3:
        print(f"WARNING: other processes used up to {competing:.1f} of {os.cpu_count()} cores during the measured "
              "windows: the figures are pessimistic; rerun on a quiet machine to compare.")
    data = {"rows": [r.as_dict() for r in rows], "ratios": ratios, "source": cfg.source,
            "server": cfg.server_label(), "seconds": cfg.seconds, "warmup_s": cfg.warmup_s,
            "period_s": cfg.period_s, "slow_period_s": cfg.slow_period_s, "sync_every_s": cfg.sync_every_s,
            "cores": os.cpu_count(), "elapsed_s": elapsed_s, "missed_goals": missed_goals,
            "load_average_at_start": cfg.loadavg}
    return data, missed_goals


# --- main ----------------------------------------------------------------------


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))  # inherited by the servers and the relay
        soft = new
    if soft < need:
        raise SystemExit(f"open-files limit {soft} is below the {need} this run needs")


def parse_clients(text: str, scenarios: list[str], parser: argparse.ArgumentParser) -> dict[str, int]:
    parts = [x.strip() for x in text.split(",") if x.strip()]
    try:
        numbers = [int(x) for x in parts]
    except ValueError:
        parser.error("--clients: one number for every scenario, or three (throughput,latency,reconnect)")
    if len(numbers) == 1:
        out = {s: numbers[0] for s in SCENARIOS}
    elif len(numbers) == 3:
        out = dict(zip(SCENARIOS, numbers))
    else:
        parser.error("--clients: one number for every scenario, or three (throughput,latency,reconnect)")
    if any(n < 2 or n % 2 or n > 5000 for n in out.values()):
        parser.error("--clients: even numbers from 2 to 5000 (two per pair)")
    return out


def parse_args(argv: list[str] | None = None) -> ChatConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="throughput,latency,reconnect (any of them)")
    parser.add_argument("--clients", default=",".join(str(DEFAULT_CLIENTS[s]) for s in SCENARIOS),
                        help="clients per scenario: one number for all, or three for throughput,latency,reconnect "
                             "(default 1000,2000,1000; even, two per pair)")
    parser.add_argument("--seconds", type=float, default=20, help="measured window (throughput, latency)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before the window")
    parser.add_argument("--grace", type=float, default=40,
                        help="at most this many seconds after the window for what is in flight to be delivered")
    parser.add_argument("--period", type=float, default=0.95,
                        help="throughput: seconds between one client's messages (the consumer allows 20 per 10 s)")
    parser.add_argument("--slow-period", type=float, default=10, help="latency: seconds between one client's messages")
    parser.add_argument("--sync-every", type=float, default=20,
                        help="each socket sends the page's periodic 'sync' this often (0: never)")
    parser.add_argument("--prelude", type=int, default=2, help="reconnect: messages each client sends before the fault")
    parser.add_argument("--reconnect-mode", choices=("restart", "kill", "reload"), default="restart",
                        help="restart: SIGTERM to the gunicorn master, started again once it exited; kill: SIGKILL "
                             "to the worker with the most sockets (gunicorn replaces it); reload: SIGHUP to the "
                             "port's holder (a deploy: a new server beside the old, the old one closing with 1012 once the new is up, the "
                             "port keeps listening). The relay (and daphne) restart in every mode (kill: SIGKILL).")
    parser.add_argument("--agents", type=int, default=20, help="agents sharing the tickets")
    parser.add_argument("--layers", default="redis",
                        help="app rows: 'redis' (the production Redis pub/sub layer, default), 'memory' (in-memory "
                             "layer: one process only, so --workers 1 or --server daphne)")
    parser.add_argument("--client-procs", default="auto",
                        help="client processes ('auto': 2 from 1,000 clients up, else 1)")
    parser.add_argument("--no-relay", action="store_true", help="skip the relay rows")
    parser.add_argument("--deflate", action="store_true",
                        help="clients offer permessage-deflate, as browsers do (default: no compression offered)")
    parser.add_argument("--ref", default="worktree",
                        help="code to measure: 'worktree' (default) or a git commit/branch (e.g. HEAD)")
    parser.add_argument("--keep-snapshot", action="store_true", help="keep the code snapshot after the run")
    parser.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")
    add_server_args(parser)
    a = parser.parse_args(argv)
    check_server_args(parser, a)
    scenarios = [x.strip() for x in a.scenarios.split(",") if x.strip()]
    if not scenarios or set(scenarios) - set(SCENARIOS):
        parser.error(f"--scenarios: any of {','.join(SCENARIOS)}")
    scenarios = [s for s in SCENARIOS if s in scenarios]
    clients = parse_clients(a.clients, scenarios, parser)
    layers = [x.strip() for x in a.layers.split(",") if x.strip()]
    if not layers or set(layers) - {"redis", "memory"}:
        parser.error("--layers: redis and/or memory")
    if "memory" in layers and a.server == "prod" and a.workers > 1:
        parser.error("--layers memory: the in-memory layer cannot cross processes; use --workers 1 or --server daphne")
    if not (1 <= a.seconds <= 600 and 0 <= a.warmup <= 120 and 1 <= a.grace <= 300):
        parser.error("--seconds 1..600, --warmup 0..120, --grace 1..300")
    if not (0.5 <= a.period <= 60) or not (0.5 <= a.slow_period <= 600) or not (1 <= a.agents <= 500):
        parser.error("--period 0.5..60 (20 messages per 10 s is the consumer's limit), --slow-period 0.5..600, "
                     "--agents 1..500")
    if not (0 <= a.sync_every <= 600) or not (1 <= a.prelude <= 20):
        parser.error("--sync-every 0..600, --prelude 1..20")
    procs = 0 if a.client_procs == "auto" else int(a.client_procs)
    if not 0 <= procs <= 8:
        parser.error("--client-procs: auto or 1..8")
    return ChatConfig(
        database_url=os.environ.get("BENCH_CHAT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cs_bench_chat"),
        redis_url=os.environ.get("BENCH_CHAT_REDIS_URL", "redis://127.0.0.1:6379/7"),
        json_path=a.json_path, ref=a.ref, keep_snapshot=a.keep_snapshot, server=a.server, workers=a.workers,
        scenarios=scenarios, clients=clients, seconds=a.seconds, warmup_s=a.warmup, grace_s=a.grace,
        period_s=a.period, slow_period_s=a.slow_period, sync_every_s=a.sync_every, agents=a.agents, layers=layers,
        client_procs=procs, reconnect_mode=a.reconnect_mode, prelude=a.prelude, relay=not a.no_relay,
        deflate=a.deflate,
    )


def estimate_s(cfg: ChatConfig) -> float:
    """A rough duration of the whole run on this 2-core machine."""
    pairs = max(cfg.clients[s] for s in cfg.scenarios) // 2
    total = 30 + pairs * 0.04  # snapshot, migrate, set-up through the services
    for s in cfg.scenarios:
        n = cfg.clients[s]
        for app in [True] * len(cfg.layers) + [False] * cfg.relay:
            per_row = 8 + n / (100 if app else 1000)  # start, open the sockets (~100/s on the app), close
            if s == "reconnect":
                per_row += cfg.prelude + 8 + (n / 100 if app else 2)
            else:
                per_row += cfg.warmup_s + cfg.seconds + 6
            total += per_row
    return total


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) in (3, 4) and sys.argv[1] == "--relay":
        raise_fd_limit(2 * 5000 + 256)
        asyncio.run(relay_server(int(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else None))
        return 0
    cfg = parse_args(argv)
    started = time.perf_counter()
    check_targets(cfg)
    if urlsplit(cfg.redis_url).path.strip("/") in ("", "0"):
        raise SystemExit("use a Redis db of its own for the bench (BENCH_CHAT_REDIS_URL, default db 7)")
    biggest = max(cfg.clients[s] for s in cfg.scenarios)
    raise_fd_limit(2 * biggest + 1024)
    cfg.loadavg = os.getloadavg()[0]
    log(f"CS Workbench chat benchmark; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; server "
        f"{cfg.server_label()}, layers {cfg.layers}; scenarios "
        + ", ".join(f"{s} {cfg.clients[s]} clients" for s in cfg.scenarios)
        + f"; expect about {estimate_s(cfg) / 60:.0f} min")
    snapshot(cfg)
    recreate_database(cfg)
    manage(cfg, "migrate", "--noinput", "-v0")
    pairs, _ = setup_data(cfg, biggest // 2)

    rows: list[Row] = []
    missed_goals: list[str] = []
    kinds = [*cfg.layers, *(["relay"] if cfg.relay else [])]
    try:
        for scenario in cfg.scenarios:
            n = cfg.clients[scenario]
            for kind in kinds:  # the app's rows, then the relay's, back to back
                if scenario == "reconnect":
                    rows.append(run_reconnect_row(cfg, kind, n, pairs[: n // 2]))
                else:
                    rows.append(run_load_row(cfg, scenario, kind, n, pairs[: n // 2]))
    finally:
        elapsed = time.perf_counter() - started
        if rows:
            data, missed_goals = summary(cfg, rows, elapsed)
            if cfg.json_path:
                Path(cfg.json_path).write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        if not cfg.keep_snapshot:
            shutil.rmtree(cfg.app, ignore_errors=True)
    log(f"done in {elapsed:.0f} s; server logs in {cfg.workdir}")
    lost = sum(r.load.get("lost", 0) + r.gaps for r in rows)
    failed = sum(r.connect_failures for r in rows)
    if lost or failed or missed_goals:
        print(f"FAILED: {lost} message(s) lost or missed, {failed} socket(s) failed to open, goals missed: "
              f"{', '.join(missed_goals) or 'none'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
