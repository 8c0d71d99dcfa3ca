"""Chat benchmark: buyer–agent pairs talking through daphne, beside a plain
websocket relay measured in the same run.

    .venv/bin/python bench/chat.py [--clients 500,1000] [--seconds 20] [--warmup 5]
                                   [--period 1.25] [--layers redis,memory]
                                   [--ref worktree|HEAD|<commit>] [--json out.json]

What it does, on its own PostgreSQL database and Redis db (never anyone else's):

0. copies the code at ``--ref`` into a temporary directory, drops and recreates
   ``cs_bench_chat`` (``BENCH_CHAT_DATABASE_URL``; loopback, name must contain
   "bench") and empties Redis db 7 (``BENCH_CHAT_REDIS_URL``) -- the harness of
   ``bench/tickets.py``, imported from it;
1. migrates and, through the project's own services (``create_user``,
   ``open_ticket`` with channel ``chat``, the ``assign`` transition), creates
   one buyer, order and chat ticket per pair and a few agents who take the
   tickets in turn; every user gets a server-side session (the configured
   ``SESSION_ENGINE``), used as the ``sessionid`` cookie;
2. for each ``--clients`` size, one after the other: one daphne per channel
   layer in ``--layers``, with production settings (``redis``: ``REDIS_URL``
   set, channels-redis, the production layout; ``memory``: no ``REDIS_URL``,
   the in-memory layer of the embedded mode), then a plain ``websockets``
   relay in another process on another loopback port that does the same
   fan-out with no Django (pairs by URL path; the sender gets an ack and its
   own copy, the partner gets the message): the limit of the transport here;
3. against each of those servers: opens that many sockets
   (``/ws/tickets/<id>/chat/?after_seq=N``, session cookie, ``Origin``) a few
   at a time from one asyncio process, half buyers and half agents, one
   buyer and one agent per ticket; after ``--warmup`` s of load measures for
   ``--seconds`` s, stops sending and waits for every message in flight to
   reach the partner (at most ``--grace`` s; it stops early once nothing has
   arrived for 5 s). Each scenario gets fresh server processes and an
   emptied Redis db, so no group member is left over from the one before.

Load: each client sends one message every ``--period`` s (0.8/s by default:
the consumer allows 10 per 10 s per connection, so 1/s would be throttled by
jitter alone), with at most one message waiting for its ack -- a slow server
slows its senders down instead of queueing without bound, so the offered rate
(clients / period) and the achieved one are printed side by side. Delivery
latency is the time from ``send`` to the partner receiving the ``message``
frame, both on this process's monotonic clock (the message id rides in the
body). Lost = sent, not refused by the server, and never delivered to the
partner by the end of the grace period; the script exits 1 if any was lost.

Client and servers share the machine (2 cores here); the CPU used by the
client, the server process, PostgreSQL and Redis during the measured window
is printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.tickets import (  # noqa: E402  (the harness of the tickets benchmark)
    PYTHON,
    Config,
    Server,
    check_targets,
    free_port,
    log,
    machine_busy,
    manage,
    pct,
    proc_cpu_s,
    recreate_database,
    snapshot,
)

TAG = "bench#"  # message bodies start with TAG + message id
ORIGIN = "http://127.0.0.1"
CONNECT_CONCURRENCY = 16  # sockets being opened at once
ACK_TIMEOUT_S = 60.0
STALL_S = 5.0  # grace ends early when no message was delivered for this long


@dataclass
class ChatConfig(Config):
    """``bench.tickets.Config`` plus the chat options; the tickets-only fields are unused."""

    clients: list[int] = field(default_factory=lambda: [500, 1000])
    seconds: float = 20.0
    warmup_s: float = 5.0
    grace_s: float = 40.0
    period_s: float = 1.25
    agents: int = 20
    layers: list[str] = field(default_factory=lambda: ["redis", "memory"])
    layer: str = "redis"  # the layer of the daphne being started

    def app_env(self) -> dict[str, str]:
        env = super().app_env()
        if self.layer == "memory":
            env.pop("REDIS_URL", None)  # in-memory channel layer, local-memory cache
        return env


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
backend = settings.AUTHENTICATION_BACKENDS[0]

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
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit("set-up script failed")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    pairs = data["pairs"]
    statuses = Counter(p["status"] for p in pairs)
    log(f"set-up: {pairs_n} buyers, orders and chat tickets, {cfg.agents} agents, sessions in "
        f"{data['session_engine']}: {time.perf_counter() - started:.1f} s; ticket statuses {dict(statuses)}")
    return pairs, data["session_engine"]


# --- the plain websocket relay -----------------------------------------------


async def echo_server(port: int) -> None:
    """Relay each chat frame to both sockets on the same path, ack the sender:
    the fan-out the chat does, with no Django, database or channel layer."""
    from websockets.asyncio.server import broadcast, serve

    rooms: dict[str, set] = {}
    seqs: dict[str, int] = {}

    async def handler(ws) -> None:
        path = ws.request.path.split("?", 1)[0]
        room = rooms.setdefault(path, set())
        room.add(ws)
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if not isinstance(frame, dict) or frame.get("type") != "message":
                    continue
                seq = seqs[path] = seqs.get(path, 0) + 1
                broadcast(room, json.dumps({"type": "message", "seq": seq, "body": frame.get("body", "")}))
                await ws.send(json.dumps({"type": "ack", "client_msg_id": frame.get("client_msg_id"), "seq": seq}))
        finally:
            room.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None, backlog=2048):
        print("ready", flush=True)
        await asyncio.Future()


class EchoServer:
    def __init__(self, cfg: ChatConfig, label: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = cfg.workdir / f"{label}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([PYTHON, str(Path(__file__).resolve()), "--echo-server", str(self.port)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit(f"echo server did not start; log {self.log_path}")
        log(f"echo server pid {self.proc.pid} on ws://127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()


# --- CPU of the other processes ------------------------------------------------


def cpu_by_command(names: tuple[str, ...]) -> float:
    """user+system CPU seconds of every process whose command is in ``names``
    (PostgreSQL, redis-server), with that of their exited children (the
    postmaster collects its finished backends'), so the sum only grows."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        if comm in names:
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    return total


class Window:
    """CPU of client, server, PostgreSQL, Redis and the machine over the measured window."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = time.process_time()
        self.s0 = proc_cpu_s(self.server_pid)
        self.pg0 = cpu_by_command(("postgres",))
        self.r0 = cpu_by_command(("redis-server",))
        self.m0 = machine_busy()

    def stop(self) -> None:
        self.wall = time.monotonic() - self.t0
        self.client = time.process_time() - self.c0
        self.server = proc_cpu_s(self.server_pid) - self.s0
        self.postgres = cpu_by_command(("postgres",)) - self.pg0
        self.redis = cpu_by_command(("redis-server",)) - self.r0
        busy1, total1 = machine_busy()
        busy0, total0 = self.m0
        self.machine_cores = (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
        # CPU of everything else on the machine (other people's work competing with the run)
        self.other = max(0.0, self.machine_cores * self.wall - self.server - self.client - self.postgres - self.redis)


# --- the clients ---------------------------------------------------------------


@dataclass
class Msg:
    sent_at: float
    receiver: int
    measured: bool
    delivered: bool = False
    acked: bool = False
    refused: str = ""


@dataclass
class Conn:
    idx: int
    partner: int
    ticket: int
    cookie: str
    ws: object = None
    waiter: asyncio.Future | None = None


@dataclass
class Result:
    label: str
    clients: int
    offered: float
    connect_s: float = 0.0
    connect_failures: int = 0
    first_failure: str = ""
    sent: int = 0
    sent_in_window: int = 0
    delivered_in_window: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    server_errors: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    ack_timeouts: int = 0
    lost: int = 0
    lost_acked: int = 0  # of the lost, those the server had acked (committed and published)
    duplicates: int = 0
    closed_early: int = 0
    window: Window | None = None
    seconds: float = 0.0

    @property
    def sent_rate(self) -> float:
        return self.sent_in_window / self.seconds if self.seconds else 0.0

    @property
    def delivered_rate(self) -> float:
        return self.delivered_in_window / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return pct(self.latencies_ms, q)

    def row(self) -> dict:
        w = self.window
        return {
            "server": self.label, "clients": self.clients, "offered_per_s": self.offered,
            "sent_per_s": self.sent_rate, "delivered_per_s": self.delivered_rate,
            "p50_ms": self.p(50), "p99_ms": self.p(99), "max_ms": max(self.latencies_ms, default=float("nan")),
            "ack_p50_ms": pct(self.ack_ms, 50), "ack_p99_ms": pct(self.ack_ms, 99),
            "measured_deliveries": len(self.latencies_ms), "refused": dict(self.refused),
            "server_errors": dict(self.server_errors),
            "ack_timeouts": self.ack_timeouts, "lost": self.lost, "lost_acked": self.lost_acked,
            "duplicates": self.duplicates,
            "closed_early": self.closed_early, "connect_s": self.connect_s, "connect_failures": self.connect_failures,
            "cpu_s": None if w is None else {"server": w.server, "client": w.client, "postgres": w.postgres,
                                             "redis": w.redis, "other": w.other,
                                             "machine_busy_cores": w.machine_cores},
        }


async def run_scenario(cfg: ChatConfig, label: str, ws_base: str, server_pid: int, pairs: list[dict],
                       last_seq: dict[int, int], track_seq: bool) -> Result:
    """Open 2 x len(pairs) sockets, load them, measure one window, close them. ``last_seq``
    (ticket -> last stored seq) gives each socket its ``after_seq``; only daphne's frames
    update it (the relay numbers its frames on its own)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    n_clients = 2 * len(pairs)
    res = Result(label, n_clients, offered=n_clients / cfg.period_s, seconds=cfg.seconds)
    conns: list[Conn] = []
    for i, pair in enumerate(pairs):
        conns.append(Conn(2 * i, 2 * i + 1, pair["ticket"], pair["buyer_session"]))
        conns.append(Conn(2 * i + 1, 2 * i, pair["ticket"], pair["agent_session"]))
    msgs: dict[str, Msg] = {}
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(conn: Conn) -> None:
        url = f"{ws_base}/ws/tickets/{conn.ticket}/chat/?after_seq={last_seq.get(conn.ticket, 0)}"
        async with sem:
            try:
                conn.ws = await connect(url, open_timeout=60, compression=None, ping_interval=None, max_queue=None,
                                        additional_headers={"Origin": ORIGIN, "Cookie": f"sessionid={conn.cookie}"})
            except Exception as exc:  # noqa: BLE001 - counted and reported
                res.connect_failures += 1
                res.first_failure = res.first_failure or f"{type(exc).__name__}: {exc}"[:200]

    def on_frame(conn: Conn, raw: str, now: float) -> None:
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "message":
            seq = frame.get("seq")
            if track_seq and isinstance(seq, int) and seq > last_seq.get(conn.ticket, 0):
                last_seq[conn.ticket] = seq
            body = frame.get("body") or ""
            if not body.startswith(TAG):
                return
            msg = msgs.get(body[len(TAG):].split(" ", 1)[0])
            if msg is None or msg.receiver != conn.idx:
                return  # the sender's own copy, or a replay from an earlier scenario
            if msg.delivered:
                res.duplicates += 1
                return
            msg.delivered = True
            if msg.measured:
                res.latencies_ms.append((now - msg.sent_at) * 1000)
            if t0 <= now < t1:
                res.delivered_in_window += 1
        elif kind in ("ack", "error"):
            if conn.waiter is not None and not conn.waiter.done():
                conn.waiter.set_result("ack" if kind == "ack" else str(frame.get("code")))
            elif kind == "error":
                res.refused[f"unsolicited {frame.get('code')}"] += 1
        # joined, typing, read, ticket.changed: not measured

    async def reader(conn: Conn) -> None:
        try:
            async for raw in conn.ws:
                on_frame(conn, raw, time.monotonic())
        except ConnectionClosed:
            pass
        if not stopping:
            res.closed_early += 1

    async def sender(conn: Conn, rng: random.Random) -> None:
        next_at = start + rng.random() * cfg.period_s
        n = 0
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if now >= t1:
                return
            mid = f"{conn.idx}.{n}"
            n += 1
            conn.waiter = asyncio.get_running_loop().create_future()
            msg = msgs[mid] = Msg(now, conn.partner, measured=now >= t0)
            try:
                await conn.ws.send(json.dumps({"type": "message", "client_msg_id": uuid.uuid4().hex,
                                               "body": f"{TAG}{mid} 您好，请问我的快递到哪里了？"}))
            except ConnectionClosed:
                msg.refused = "closed"
                return
            res.sent += 1
            if msg.measured:
                res.sent_in_window += 1
            try:
                outcome = await asyncio.wait_for(conn.waiter, ACK_TIMEOUT_S)
            except asyncio.TimeoutError:
                res.ack_timeouts += 1  # it may still be delivered: judged at the end
            else:
                if outcome != "ack":
                    msg.refused = outcome
                    res.refused[outcome] += 1
                else:
                    msg.acked = True
                    if msg.measured:
                        res.ack_ms.append((time.monotonic() - now) * 1000)
            # never more than one per period, and never two waiting for an ack
            next_at = max(now + cfg.period_s, time.monotonic())

    stopping = False
    t0 = t1 = float("inf")
    started = time.monotonic()
    await asyncio.gather(*(open_one(c) for c in conns))
    res.connect_s = time.monotonic() - started
    opened = [c for c in conns if c.ws is not None]
    log(f"[{label} {n_clients}] {len(opened)}/{n_clients} sockets open in {res.connect_s:.1f} s "
        f"({len(opened) / max(res.connect_s, 1e-9):.0f}/s)"
        + (f"; {res.connect_failures} failed, first: {res.first_failure}" if res.connect_failures else ""))
    if res.connect_failures:
        for c in opened:
            await c.ws.close()
        return res
    readers = [asyncio.create_task(reader(c)) for c in conns]
    await asyncio.sleep(1.0)  # the joined frames of the last sockets settle

    start = time.monotonic()
    t0 = start + cfg.warmup_s
    t1 = t0 + cfg.seconds
    window = Window(server_pid)
    rng = random.Random(7)
    senders = [asyncio.create_task(sender(c, rng)) for c in conns]
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    window.start()
    await asyncio.sleep(max(0.0, t1 - time.monotonic()))
    window.stop()
    res.window = window

    # grace: the server works off what is in flight; stop when every message has reached its
    # partner, when nothing more arrived for STALL_S, or after --grace
    deadline = time.monotonic() + cfg.grace_s
    waiting, last_count, last_change = -1, -1, time.monotonic()
    while time.monotonic() < deadline:
        waiting = sum(1 for m in msgs.values() if not m.delivered and not m.refused)
        if waiting == 0:
            break
        if waiting != last_count:
            last_count, last_change = waiting, time.monotonic()
        elif time.monotonic() - last_change > STALL_S and all(t.done() for t in senders):
            break
        await asyncio.sleep(0.2)
    for task in senders:
        task.cancel()
    lost = [m for m in msgs.values() if not m.delivered and not m.refused]
    res.lost, res.lost_acked = len(lost), sum(m.acked for m in lost)
    if lost:
        ages = sorted(time.monotonic() - m.sent_at for m in lost)
        log(f"[{label} {n_clients}] {len(lost)} not delivered ({res.lost_acked} of them acked), sent "
            f"{ages[-1]:.0f}-{ages[0]:.0f} s ago")
    stopping = True
    await asyncio.gather(*(c.ws.close() for c in conns), return_exceptions=True)
    await asyncio.wait(readers, timeout=10)
    for task in readers:
        task.cancel()
    w = window
    log(f"[{label} {n_clients}] offered {res.offered:.0f}/s, sent {res.sent_rate:.0f}/s, delivered "
        f"{res.delivered_rate:.0f}/s; p50 {res.p(50):.0f} ms, p99 {res.p(99):.0f} ms, max "
        f"{max(res.latencies_ms, default=float('nan')):.0f} ms; refused {dict(res.refused) or 0}, lost {res.lost}, "
        f"ack timeouts {res.ack_timeouts}, closed early {res.closed_early}; CPU s server {w.server:.1f}, client "
        f"{w.client:.1f}, postgres {w.postgres:.1f}, redis {w.redis:.1f}, other {w.other:.1f}; machine "
        f"{w.machine_cores:.2f} cores busy")
    return res


# --- summary -------------------------------------------------------------------


def fmt(x: float, digits: int = 0) -> str:
    return "n/a" if x != x else f"{x:,.{digits}f}"


def summary(cfg: ChatConfig, results: list[Result]) -> dict:
    print("\n" + "=" * 132)
    print(f"SUMMARY  chat delivery, {cfg.seconds:.0f} s measured after {cfg.warmup_s:.0f} s warm-up, one message per "
          f"{cfg.period_s:g} s per client (at most one awaiting its ack); {os.cpu_count()} cores shared by client "
          "and servers")
    print("=" * 132)
    print(f"{'server':<15}{'clients':>8}{'offered/s':>10}{'sent/s':>7}{'deliv/s':>8}{'ack p50':>8}{'p50 ms':>8}"
          f"{'p99 ms':>8}{'max ms':>8}{'refused':>8}{'lost':>5}{'srv err':>8}{'open s':>7}  CPU s: {'server':>6}"
          f"{'client':>7}{'pg':>6}{'redis':>6}{'other':>6}{'busy':>6}")
    for r in results:
        w = r.window
        cpu = (f"{w.server:6.1f}{w.client:7.1f}{w.postgres:6.1f}{w.redis:6.1f}{w.other:6.1f}{w.machine_cores:6.2f}"
               if w else "   (not measured)")
        print(f"{r.label:<15}{r.clients:>8}{r.offered:>10.0f}{r.sent_rate:>7.0f}{r.delivered_rate:>8.0f}"
              f"{fmt(pct(r.ack_ms, 50)):>8}{fmt(r.p(50)):>8}{fmt(r.p(99)):>8}"
              f"{fmt(max(r.latencies_ms, default=float('nan'))):>8}{sum(r.refused.values()):>8}{r.lost:>5}"
              f"{sum(r.server_errors.values()):>8}{r.connect_s:>7.1f}        {cpu}")
    for r in results:
        if r.server_errors:
            print(f"  {r.label} {r.clients}: the server logged {dict(r.server_errors)}")
    ratios = []
    echo = {r.clients: r for r in results if r.label == "echo"}
    print()
    for r in results:
        e = echo.get(r.clients)
        if r.label == "echo" or e is None or not r.latencies_ms or not e.latencies_ms:
            continue
        item = {"server": r.label, "clients": r.clients, "p50": r.p(50) / e.p(50), "p99": r.p(99) / e.p(99),
                "msgs_per_s": r.delivered_rate / e.delivered_rate if e.delivered_rate else float("nan")}
        ratios.append(item)
        print(f"ratio {r.label}/echo at {r.clients:>5} clients: p50 {fmt(item['p50']):>7}x   p99 "
              f"{fmt(item['p99']):>7}x   messages/s {item['msgs_per_s']:5.2f}x")
    print(f"\nCode measured: {cfg.source}")
    print("Columns: offered = clients / period; sent (= acked) and deliv(ered to the partner) per second inside the "
          "window; ack p50 = send to the sender's ack (committed and published); p50/p99/max = send to the partner's "
          "'message' frame, for messages sent inside the window; refused = error frames (throttled, ...); lost = "
          "sent, not refused, never delivered by the end of the grace period; srv err = exceptions in the server log "
          "(sockets closing included); open s = time to open the sockets; CPU seconds over the window (pg = all of "
          "PostgreSQL on the machine, other = every other process, busy = cores of the machine in use).")
    competing = max((r.window.other / r.window.wall for r in results if r.window), default=0.0)
    if competing > 0.3:
        print(f"WARNING: other processes used up to {competing:.1f} of {os.cpu_count()} cores during the measured "
              "windows: the figures are pessimistic; rerun on a quiet machine to compare.")
    return {"results": [r.row() for r in results], "ratios": ratios, "source": cfg.source,
            "seconds": cfg.seconds, "warmup_s": cfg.warmup_s, "period_s": cfg.period_s, "cores": os.cpu_count()}


# --- main ----------------------------------------------------------------------


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))  # inherited by daphne and the relay
        soft = new
    if soft < need:
        raise SystemExit(f"open-files limit {soft} is below the {need} this run needs")


def parse_args(argv: list[str] | None = None) -> ChatConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="500,1000", help="comma-separated client counts (even; 2 per pair)")
    parser.add_argument("--seconds", type=float, default=20, help="measured window per scenario")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before the window")
    parser.add_argument("--grace", type=float, default=40,
                        help="at most this many seconds after the window for what is in flight to be delivered")
    parser.add_argument("--period", type=float, default=1.25,
                        help="seconds between one client's messages (the consumer allows 10 per 10 s)")
    parser.add_argument("--agents", type=int, default=20, help="agents sharing the tickets")
    parser.add_argument("--layers", default="redis,memory",
                        help="daphne rows: 'redis' (channels-redis, the production layout), 'memory' (in-memory layer)")
    parser.add_argument("--ref", default="worktree",
                        help="code to measure: 'worktree' (default) or a git commit/branch (e.g. HEAD)")
    parser.add_argument("--keep-snapshot", action="store_true", help="keep the code snapshot after the run")
    parser.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")
    a = parser.parse_args(argv)
    clients = sorted({int(x) for x in a.clients.split(",") if x.strip()})
    if not clients or any(c < 2 or c % 2 or c > 5000 for c in clients):
        parser.error("--clients: even numbers from 2 to 5000")
    layers = [x.strip() for x in a.layers.split(",") if x.strip()]
    if not layers or set(layers) - {"redis", "memory"}:
        parser.error("--layers: redis and/or memory")
    if not (1 <= a.seconds <= 300 and 0 <= a.warmup <= 120 and 1 <= a.grace <= 300):
        parser.error("--seconds 1..300, --warmup 0..120, --grace 1..300")
    if not (0.5 <= a.period <= 60) or not (1 <= a.agents <= 500):
        parser.error("--period 0.5..60 (10 messages per 10 s is the consumer's limit), --agents 1..500")
    return ChatConfig(
        database_url=os.environ.get("BENCH_CHAT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cs_bench_chat"),
        redis_url=os.environ.get("BENCH_CHAT_REDIS_URL", "redis://127.0.0.1:6379/7"),
        # fields of the tickets benchmark this one does not use
        tickets_small=0, tickets_large=0, requests=0, warmup=0, intake_requests=0, intake_seconds=0, concurrency=0,
        explain=False, json_path=a.json_path, ref=a.ref, keep_snapshot=a.keep_snapshot,
        clients=clients, seconds=a.seconds, warmup_s=a.warmup, grace_s=a.grace, period_s=a.period,
        agents=a.agents, layers=layers,
    )


def server_errors(log_path: Path, offset: int) -> Counter:
    """Exceptions the server logged after ``offset``, by class (the last line of each traceback)."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return Counter(m.group(1).rsplit(".", 1)[-1]
                   for m in re.finditer(r"^([A-Za-z_][\w.]*(?:Error|Exception|Full))(?::|$)", text, re.M))


def flush_redis(cfg: ChatConfig) -> None:
    """Empty the bench Redis db: each scenario starts with no group members left by the last one."""
    import redis  # a dependency of channels-redis, in the venv

    client = redis.Redis.from_url(cfg.redis_url)
    client.flushdb()
    client.close()


def measure(cfg: ChatConfig, kind: str, n: int, pairs: list[dict], last_seq: dict[int, int]) -> Result:
    """One scenario on a fresh server process: ``kind`` is a channel layer for daphne, or ``echo``."""
    flush_redis(cfg)
    if kind == "echo":
        server, label = EchoServer(cfg, f"echo-{n}"), "echo"
    else:
        cfg.layer = kind
        server, label = Server(cfg, f"{kind}-{n}"), f"daphne+{kind}"
    server.start()
    try:
        offset = server.log_path.stat().st_size
        ws_base = server.base.replace("http://", "ws://")
        res = asyncio.run(run_scenario(cfg, label, ws_base, server.proc.pid, pairs[: n // 2], last_seq,
                                       track_seq=kind != "echo"))
        time.sleep(1.0)  # the server drops the last sockets
    finally:
        server.stop()
    res.server_errors = server_errors(server.log_path, offset)
    if res.server_errors:
        log(f"[{label} {n}] the server logged {dict(res.server_errors)} (see {server.log_path})")
    return res


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--echo-server":
        raise_fd_limit(2 * 5000 + 256)
        asyncio.run(echo_server(int(sys.argv[2])))
        return 0
    cfg = parse_args(argv)
    started = time.perf_counter()
    check_targets(cfg)
    if urlsplit(cfg.redis_url).path.strip("/") in ("", "0"):
        raise SystemExit("use a Redis db of its own for the bench (BENCH_CHAT_REDIS_URL, default db 7)")
    raise_fd_limit(2 * max(cfg.clients) + 1024)
    log(f"CS Workbench chat benchmark; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        f"clients {cfg.clients}, layers {cfg.layers}")
    snapshot(cfg)
    recreate_database(cfg)
    manage(cfg, "migrate", "--noinput", "-v0")
    pairs, _ = setup_data(cfg, max(cfg.clients) // 2)
    last_seq = {p["ticket"]: p["last_seq"] for p in pairs}

    results: list[Result] = []
    for n in cfg.clients:  # each size on fresh servers, daphne rows then the relay, back to back
        for kind in [*cfg.layers, "echo"]:
            results.append(measure(cfg, kind, n, pairs, last_seq))

    data = summary(cfg, results)
    if cfg.json_path:
        Path(cfg.json_path).write_text(json.dumps(data, indent=2, ensure_ascii=False))
    if not cfg.keep_snapshot:
        import shutil

        shutil.rmtree(cfg.app, ignore_errors=True)
    lost = sum(r.lost for r in results)
    failed = sum(r.connect_failures for r in results)
    log(f"done in {time.perf_counter() - started:.0f} s; server logs in {cfg.workdir}")
    if lost or failed:
        print(f"FAILED: {lost} message(s) lost, {failed} socket(s) failed to open", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
