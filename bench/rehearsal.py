"""A Double-11 rehearsal (issue #10 item 3): the production shape under a mixed
peak load for several minutes, with faults injected on a timeline, then every
invariant checked against the database.

    .venv/bin/python bench/rehearsal.py [--minutes 4] [--quick]
                                        [--faults worker,redis,postgres,celery] [--no-bulk-remedy]
                                        [--buyers 40] [--agents 8] [--wave 120] [--region-tickets 250]
                                        [--ref worktree|HEAD|<commit>] [--json out.json] [--keep-snapshot]

The shape (what ``scripts/serve`` runs in production): supervisord with
gunicorn and 2 uvicorn workers on one port, the Celery worker and Celery beat;
PostgreSQL (its own database ``cs_bench_rehearsal``, dropped and created fresh:
``BENCH_REHEARSAL_DATABASE_URL``, loopback only, the name must contain "bench")
and a PRIVATE ``redis-server`` on a free port (never the machine's shared Redis,
which this script does not touch). The code is a snapshot of ``--ref`` (the
working tree by default), so edits made while it runs change nothing.

The load, all at once for ``--minutes`` (every request with a timeout, every
status recorded with its time; money POSTs and replies retried with the same
``Idempotency-Key`` / ``client_msg_id`` after a 503, a timeout or a dropped
connection; a new ticket is retried only when the request surely did nothing):

- buyers open chat tickets through the API and talk over the chat socket
  (``client_msg_id``, acks, an outbox sent again after a reconnect, ``sync``
  every 20 s, reconnect as ``static/js/chat.js`` does: at once after 1012/1013),
  a few of them disputing a settled order (a hold on the merchant);
- agents (each with a console socket) find new chats, take them (``assign``;
  a 409 when another agent was first), open the chat, answer every buyer
  message through the API, apply one remedy per ticket (coupon, resend +
  coupon or refund) and resolve the ticket when the buyer is done;
- a supervisor approves (or now and then rejects) pending remedies;
- merchants read their balance and request payouts (some beyond what is
  withdrawable, some two at once);
- a carrier posts routine events, repeats some (idempotent on ``event_id``)
  and, on the timeline, a wave of lost parcels in one region that raises a
  grade-2 incident; the incident supervisor links the region's open tickets,
  runs a bulk macro reply on them and (unless ``--no-bulk-remedy``) a bulk
  coupon remedy;
- the supervisor's dashboard is polled (the page once, then its figures).

The faults, on a timeline (``--faults`` chooses; each is recorded with its
window and the time until each kind of client recovered):

- ``worker``: SIGKILL to the ASGI worker holding the most chat sockets
  (gunicorn forks a new one);
- ``deploy``: ``supervisorctl signal HUP web``, a deploy (``deploy/listen_first.py``
  starts a new server beside the running one and stops the old one once every
  new worker is up; its chat sockets close with 1012 and come back);
- ``celery``: SIGKILL to the Celery worker (its main process and its pool)
  while the bulk macro job is between 10 % and 70 % done; supervisord starts
  it again and the stalled-job sweep (every 15 s, after 30 s of silence)
  resumes the job;
- ``redis``: the private Redis killed and started again 3 s later (channel
  layer, cache, sessions' cache and Celery broker all go);
- ``postgres``: every backend of the rehearsal database terminated
  (``pg_terminate_backend``). Restarting the whole PostgreSQL server is not
  done: the machine's server is shared with other work.

After the run it prints PASS/FAIL for: every acknowledged chat message (and
API reply) stored exactly once with the acknowledged seq; seq without gaps on
every ticket written during the run; every stored message delivered to every
socket open on its ticket (the partner's included, replays allowed); no agent
quota, buyer daily cap (self-service) or day budget exceeded and the counters
exact; ``manage.py verify_ledger``; each bulk item done exactly once and every
job finished; no merchant's available balance below zero at any movement and
no payout beyond what was withdrawable; no 500 outside the outage windows;
no client hang; every fault recovered. Then the figures: throughput and
p50/p99 per action, errors per fault by status/code, time to recover per
fault and client kind. Exit status 1 when a check fails.

Run it on a quiet machine (2 cores here): ``docs/RELIABILITY.md`` has the
command, the figures of a run and what each fault showed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chat import page_delay  # noqa: E402  (the page's reconnect rule, kept in one place)
from bench.harness import (  # noqa: E402  (the harness every benchmark shares)
    PYTHON,
    Config,
    check_targets,
    cpu_by_command,
    free_port,
    gunicorn_workers,
    log,
    machine_busy,
    manage,
    pct,
    process_tree,
    recreate_database,
    seed_demo,
    snapshot,
    tree_cpu_s,
)

BIN = Path(PYTHON).parent
FAULTS = ("worker", "deploy", "celery", "redis", "postgres")
WAVE_REGION = "广东"
WAVE_CARRIER = "中通快递"
REQUEST_TIMEOUT_S = 10.0  # every HTTP request
CONNECT_TIMEOUT_S = 3.0
OP_DEADLINE_S = 45.0  # a request and its retries
ACK_TIMEOUT_S = 45.0  # a chat message until its ack
WS_OPEN_TIMEOUT_S = 10.0
SYNC_EVERY_S = 20.0  # the page's periodic sync
REDIS_DOWN_S = 3.0
RECOVERY_LIMIT_S = 60.0  # a client kind not back this long after a fault has not recovered
HOLD_SLACK_S = 10.0  # a hold placed this close before a payout may have committed after it
MACRO = ("{buyer_name}您好，您的订单 {order_no} 由{carrier}承运（单号 {tracking_no}），因华南区域丢件潮我们已向"
         "承运商发起核查，24 小时内给您答复。")
SUBJECT_TAG = "RH-CHAT"
TAG_RE = re.compile(r"\[(rh[0-9a-f]{12})\]")

# per action: statuses that are a correct answer besides 2xx (a race lost, a cap, a refusal)
EXPECTED = {
    "assign": {409},
    # 403 below_ticket_tier: a chat whose deadline passed climbed above the agent's tier (tiers are roles)
    "resolve": {403, 409},
    "remedy": {422},
    "approve": {409, 422},
    "reject": {409},
    "payout": {422},
}
RETRY_STATUSES = {502, 503, 504}
WS_LABEL = {"close": "closed", "fail": "connect failed", "error": "error frame"}


# --- configuration ---------------------------------------------------------------------


@dataclass
class RehearsalConfig(Config):
    minutes: float = 4.0
    quick: bool = False
    buyers: int = 40
    agents: int = 8
    wave: int = 120
    region_tickets: int = 250
    faults: list[str] = field(default_factory=lambda: list(FAULTS))
    bulk_remedy: bool = True
    msg_period_s: float = 6.0
    msgs_per_ticket: int = 8
    celery_concurrency: int = 2
    db_pool_max: int = 8
    agent_quota: int = 6
    buyer_cap: int = 2
    budget_fen: int = 25_000
    loadavg: float = 0.0

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    def app_env(self) -> dict[str, str]:
        env = super().app_env()
        env.update(DB_POOL_MAX=str(self.db_pool_max), LOG_LEVEL="WARNING")
        return env


# --- a Redis of our own ------------------------------------------------------------------


class PrivateRedis:
    """``redis-server`` on a free loopback port, no persistence: killed and
    started again by the ``redis`` fault. The machine's shared Redis is never touched."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/1"

    def accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--maxclients", "2000"],
            stdout=open(self.dir / "redis.log", "a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.accepting():
                return
            time.sleep(0.02)
        raise SystemExit("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


# --- the production recipe -----------------------------------------------------------------


class Serve:
    """``scripts/serve`` from the snapshot: supervisord with gunicorn + uvicorn
    workers, the Celery worker and beat; ``supervisorctl`` talks to it."""

    def __init__(self, cfg: RehearsalConfig, redis: PrivateRedis) -> None:
        self.cfg = cfg
        self.redis = redis
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        self.origin = self.base
        self.run_dir = cfg.workdir / "run"
        self.log_path = cfg.workdir / "serve.log"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        env = self.cfg.app_env()
        env.update(BIND=f"127.0.0.1:{self.port}", WEB_WORKERS=str(self.cfg.workers), SKIP_MIGRATE="1",
                   SKIP_COLLECTSTATIC="1",  # the harness collected them in its snapshot
                   RUN_DIR=str(self.run_dir), CELERY_CONCURRENCY=str(self.cfg.celery_concurrency), PYTHON=PYTHON,
                   ACCESS_LOG="0", CELERY_LOG_LEVEL="warning")
        return env

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["bash", str(self.cfg.app / "scripts" / "serve")], cwd=self.cfg.app,
                                     env=self.env(), stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 90
        import httpx

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"scripts/serve exited ({self.proc.returncode}):\n{self.tail(40)}")
            try:
                answered = httpx.get(self.base + "/api/v1/tickets/", timeout=2).status_code in (401, 403)
            except httpx.HTTPError:
                answered = False
            if answered and len(self.web_workers()) >= self.cfg.workers and self.pid("worker") and self.pid("beat"):
                log(f"scripts/serve up on {self.base}: supervisord {self.proc.pid}, gunicorn {self.pid('web')} "
                    f"workers {sorted(self.web_workers())}, celery worker {self.pid('worker')}, beat {self.pid('beat')}")
                return
            time.sleep(0.3)
        raise SystemExit(f"scripts/serve did not come up within 90 s:\n{self.tail(40)}")

    def ctl(self, *args: str) -> str:
        result = subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.cfg.app / "deploy" / "supervisord.conf"),
                                 *args], cwd=self.cfg.app, env=self.env(), capture_output=True, text=True, timeout=15)
        return result.stdout.strip()

    def pid(self, program: str) -> int:
        try:
            out = self.ctl("pid", program)
            return int(out) if out.isdigit() else 0
        except (subprocess.TimeoutExpired, OSError):
            return 0

    def web_workers(self) -> list[int]:
        holder = self.pid("web")  # deploy/listen_first.py, gunicorn's parent
        return gunicorn_workers(holder) if holder else []

    def cpu_s(self) -> float:
        return tree_cpu_s(self.proc.pid) if self.proc and self.proc.poll() is None else float("nan")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)
            log("scripts/serve stopped")
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            log("scripts/serve did not stop within 60 s: killed")
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- set-up and checks through the project's own code ----------------------------------------

SETUP = r'''
import importlib, json, random, sys
from datetime import timedelta
import django
django.setup()
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.utils import timezone
from django.utils.module_loading import import_string
from accounts import roles
from accounts.models import User
from accounts.services import create_user, issue_api_token
from compensation import services as comp
from merchants import services as escrow
from merchants.models import Merchant, MerchantStaff, Order, Shipment
from tickets import services as tickets
from tickets.models import AgentProfile

spec = json.loads(sys.argv[1])
rng = random.Random(1111)
now = timezone.now()
SessionStore = importlib.import_module(settings.SESSION_ENGINE).SessionStore
backend = next(b for b in settings.AUTHENTICATION_BACKENDS if hasattr(import_string(b), "get_user"))

def session(user):
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = backend
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return store.session_key

def person(user):
    return {"id": user.pk, "username": user.username, "token": issue_api_token(user=user).key, "cookie": session(user)}

lead = create_user(username="rh_lead", password=None, role=roles.SUPERVISOR, display_name="演练主管")
approver = create_user(username="rh_approver", password=None, role=roles.SUPERVISOR, display_name="审批主管")
agents = [create_user(username=f"rh_agent{i}", password=None, role=roles.AGENT, display_name=f"演练客服{i}")
          for i in range(1, spec["agents"] + 1)]
# chats wait in the queue for an agent to take them (nobody is online for auto-assignment)
AgentProfile.objects.update(presence="offline")
# today's budget: what the demo data spent already plus the rehearsal's own
from compensation.models import BudgetDay
spent = BudgetDay.objects.filter(date=timezone.localdate()).values_list("spent_fen", flat=True).first() or 0
comp.update_policy(actor=lead, changes={"agent_monthly_quota": spec["agent_quota"], "buyer_daily_cap": spec["buyer_cap"],
                                        "daily_budget_fen": spent + spec["budget_fen"]}, reason="Double-11 rehearsal")

rh = Merchant.objects.create(code="RH01", name="演练旗舰店")
m001 = Merchant.objects.get(code="M001")
merchants = list(Merchant.objects.filter(code__in=["M001", "M002", "M003"]).order_by("code"))
n = 0

def order(buyer, merchant, amount, *, region="浙江", status="shipped", carrier="顺丰速运", tracking=None):
    global n
    n += 1
    o = Order.objects.create(order_no=f"RH{n:08d}", buyer=buyer, merchant=merchant, amount_fen=amount,
                             status=status, placed_at=now - timedelta(days=3), region=region,
                             shipping_address=f"{region} 演练地址 {n}",
                             items=[{"sku": "RH-1", "name": "演练商品", "qty": 1, "price_fen": amount}])
    s = Shipment.objects.create(order=o, carrier=carrier, tracking_no=tracking or f"RHS{n:09d}",
                                status="in_transit", shipped_at=now - timedelta(days=2))
    return o, s

buyers, routine = [], []
for i in range(1, spec["buyers"] + 1):
    b = create_user(username=f"rh_buyer{i}", password=None, role=roles.BUYER, display_name=f"演练买家{i}")
    small, s1 = order(b, rh, 2_990)
    large, s2 = order(b, rh, 12_900)
    settled, _ = order(b, m001, 3_990, status="delivered")
    escrow.record_order_paid(order=small)
    escrow.record_order_paid(order=large)
    escrow.record_order_paid(order=settled)
    escrow.confirm_receipt(actor=b, order_id=settled.pk)  # the money reached merchant M001: a dispute holds it
    routine += [{"carrier": s1.carrier, "tracking_no": s1.tracking_no}, {"carrier": s2.carrier, "tracking_no": s2.tracking_no}]
    buyers.append({**person(b), "orders": [{"id": small.pk, "amount_fen": 2_990, "settled": False},
                                            {"id": large.pk, "amount_fen": 12_900, "settled": False},
                                            {"id": settled.pk, "amount_fen": 3_990, "settled": True}]})
buyer_users = list(User.objects.filter(username__startswith="rh_buyer").order_by("pk"))
# the merchants' available balances: settled sales, so payouts have room for the whole run
for merchant in merchants:
    for k in range(4):
        buyer = buyer_users[(k * 7 + merchant.pk) % len(buyer_users)]
        o, _ = order(buyer, merchant, 60_000, status="delivered")
        escrow.record_order_paid(order=o)
        escrow.confirm_receipt(actor=buyer, order_id=o.pk)
# the region of the wave: parcels the carrier will report lost, and open tickets already there
wave = []
for i in range(spec["wave"]):
    buyer = buyer_users[i % len(buyer_users)]
    _, s = order(buyer, rh, 4_590, region=spec["region"], carrier=spec["carrier"], tracking=f"RHW{i:07d}")
    wave.append({"carrier": s.carrier, "tracking_no": s.tracking_no})
for i in range(spec["region_tickets"]):
    buyer = buyer_users[(i * 3) % len(buyer_users)]
    o, _ = order(buyer, rh, 5_990, region=spec["region"], carrier="圆通速递")
    tickets.open_ticket(actor=buyer, category="not_received", subject="华南包裹一直没到", body="物流三天没更新了",
                        order_id=o.pk, channel="web")
staff = []
for merchant in merchants:
    user = MerchantStaff.objects.filter(merchant=merchant).select_related("user").first().user
    staff.append({**person(user), "merchant_id": merchant.pk, "code": merchant.code})
system = User.objects.get(username="order-system")
print(json.dumps({
    "lead": person(lead), "approver": person(approver), "agents": [person(a) for a in agents], "buyers": buyers,
    "merchants": staff, "carrier": {"id": system.pk, "token": issue_api_token(user=system).key},
    "routine": routine, "wave": wave,
}))
'''

CHECKS = r'''
import json, sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone as dt_timezone
import django
django.setup()
from django.db.models import Count, Min, Q
from django.utils import timezone
from compensation.models import AgentQuota, BudgetDay, BuyerCounter, IdempotencyRecord, Remedy
from compensation.services.policy import get_policy, period_of
from incidents.models import BulkJob, BulkJobItem, Incident
from merchants.escrow import Figures
from merchants.models import FundHold, Merchant, MerchantAccount, Movement, Payout
from tickets.models import Message, Ticket

spec = json.loads(sys.stdin.read())
started = datetime.fromtimestamp(spec["started_wall"], tz=dt_timezone.utc)
out = {}

# --- messages: client ids, every ticket written during the run, the sockets' tickets
cids = spec["cids"]
rows = Message.objects.filter(client_msg_id__in=cids).values_list("client_msg_id", "ticket_id", "seq")
by_cid = defaultdict(list)
for cid, ticket, seq in rows:
    by_cid[cid].append([ticket, seq])
out["cids"] = by_cid
written = list(Message.objects.filter(created_at__gte=started).order_by().values_list("ticket_id", flat=True).distinct())
gaps = []
for ticket_id, last_seq, last_public in Ticket.objects.filter(pk__in=written).values_list("id", "last_seq", "last_public_seq"):
    seqs = list(Message.objects.filter(ticket_id=ticket_id).order_by("seq").values_list("seq", flat=True))
    public = Message.objects.filter(ticket_id=ticket_id, internal=False).order_by("-seq").values_list("seq", flat=True).first() or 0
    if seqs != list(range(1, len(seqs) + 1)) or last_seq != len(seqs) or last_public != public:
        gaps.append({"ticket": ticket_id, "seqs_head": seqs[:5], "n": len(seqs), "last_seq": last_seq,
                     "last_public_seq": last_public, "max_public": public, "missing": sorted(set(range(1, last_seq + 1)) - set(seqs))[:10],
                     "duplicated": [s for s, c in Counter(seqs).items() if c > 1][:10]})
out["tickets_written"] = len(written)
out["gaps"] = gaps
conv = defaultdict(list)
for ticket, seq, internal, role in (Message.objects.filter(ticket_id__in=spec["socket_tickets"])
                                    .values_list("ticket_id", "seq", "internal", "author_role")):
    conv[ticket].append([seq, internal, role])
out["conversations"] = conv

# --- caps
policy = get_policy()
now = timezone.now()
period = period_of(now)
out["policy"] = {"agent_monthly_quota": policy.agent_monthly_quota, "buyer_daily_cap": policy.buyer_daily_cap,
                 "daily_budget_fen": policy.daily_budget_fen, "value_cap_fen": policy.value_cap_fen,
                 "coupon_fen": policy.coupon_fen}
executed = list(Remedy.objects.filter(status="executed").values(
    "id", "requested_by_id", "buyer_id", "self_service", "executed_at", "decided_at", "kind", "amount_fen",
    "with_coupon", "coupon_fen", "approval_reasons", "created_at"))
from compensation.rules import remedy_cost
quota_rows = []
self_by_agent = Counter(r["requested_by_id"] for r in executed if r["self_service"] and period_of(r["executed_at"]) == period)
for q in AgentQuota.objects.filter(period=period):
    quota_rows.append({"agent": q.agent_id, "used": q.used, "self_service": self_by_agent.get(q.agent_id, 0)})
for agent, count in self_by_agent.items():
    if not any(r["agent"] == agent for r in quota_rows):
        quota_rows.append({"agent": agent, "used": 0, "self_service": count})
out["quotas"] = quota_rows
day_of = lambda t: timezone.localdate(t).isoformat()
self_by_buyer, all_by_buyer = Counter(), Counter()
cost_self, cost_all = Counter(), Counter()
for r in executed:
    day = day_of(r["executed_at"])
    cost = remedy_cost(kind=r["kind"], amount_fen=r["amount_fen"], with_coupon=r["with_coupon"], coupon_fen=r["coupon_fen"])
    cost_all[day] += cost
    all_by_buyer[(r["buyer_id"], day)] += 1
    if r["self_service"]:
        cost_self[day] += cost
        self_by_buyer[(r["buyer_id"], day)] += 1
out["buyers"] = [{"buyer": b, "day": d, "self_service": self_by_buyer.get((b, d), 0), "executed": all_by_buyer.get((b, d), 0),
                  "counter": c} for b, d, c in BuyerCounter.objects.values_list("buyer_id", "date", "count")
                 for d in [d.isoformat()]]
out["budget"] = [{"day": d.isoformat(), "budget_fen": budget, "spent_fen": spent, "breaker_open": breaker,
                  "self_service_fen": cost_self.get(d.isoformat(), 0), "executed_fen": cost_all.get(d.isoformat(), 0)}
                 for d, budget, spent, breaker in BudgetDay.objects.values_list("date", "budget_fen", "spent_fen", "breaker_open")]
since = Remedy.objects.filter(created_at__gte=started)
out["remedies"] = {"by_status": dict(Counter(since.values_list("status", flat=True))),
                   "self_service": since.filter(self_service=True).count(),
                   "reasons": dict(Counter(r for rs in since.values_list("approval_reasons", flat=True) for r in (rs or [])))}

# --- bulk jobs
jobs = []
for job in BulkJob.objects.filter(created_at__gte=started).order_by("id"):
    items = Counter(job.items.values_list("status", flat=True))
    bad = []
    done = list(job.items.filter(status="done").values_list("target_id", "processed_at"))
    if job.kind == "macro_reply":
        keys = {f"bulk-{job.pk}-{t}": t for t, _ in done}
        found = Counter(Message.objects.filter(client_msg_id__in=list(keys)).values_list("client_msg_id", flat=True))
        bad = [keys[k] for k in keys if found.get(k, 0) != 1]
        extra = Message.objects.filter(client_msg_id__startswith=f"bulk-{job.pk}-").exclude(client_msg_id__in=list(keys)).count()
    elif job.kind == "remedy":
        keys = {f"bulk-{job.pk}-{t}": t for t, _ in done}
        found = Counter(IdempotencyRecord.objects.filter(scope=f"remedy:{job.created_by_id}", key__in=list(keys))
                        .values_list("key", flat=True))
        bad = [keys[k] for k in keys if found.get(k, 0) != 1]
        extra = 0
    else:
        extra = 0
    failed = list(job.items.filter(status="failed").values_list("target_id", "result")[:10])
    processed = sorted(p.timestamp() for _, p in job.items.exclude(processed_at=None).values_list("target_id", "processed_at"))
    jobs.append({"id": job.pk, "kind": job.kind, "status": job.status, "total": job.total, "items": dict(items),
                 "counts": {"done": job.done_count, "skipped": job.skipped_count, "failed": job.failed_count},
                 "not_once": bad[:20], "not_once_n": len(bad), "extra_effects": extra, "failed": failed,
                 "processed_at": processed, "started_at": job.started_at.timestamp() if job.started_at else None,
                 "finished_at": job.finished_at.timestamp() if job.finished_at else None})
out["jobs"] = jobs
out["incidents"] = list(Incident.objects.filter(opened_at__gte=started).values("id", "title", "grade", "rule", "region", "status"))

# --- merchants: replay every movement in order (the account lock orders them), holds by their times
slack = timedelta(seconds=spec["hold_slack_s"])
merchants = []
run_payouts = set(Payout.objects.filter(created_at__gte=started).values_list("id", flat=True))
for account in MerchantAccount.objects.select_related("merchant").order_by("merchant_id"):
    m = account.merchant
    holds = list(FundHold.objects.filter(merchant=m).values_list("amount_fen", "placed_at", "settled_at"))
    sums = Counter()
    available = deposit = 0
    lowest_available = 0
    beyond, tight, judged = [], 0, 0
    for mv in Movement.objects.filter(merchant=m).order_by("id").values("id", "bucket", "kind", "amount_fen", "payout_id", "created_at"):
        if mv["kind"] == "payout" and mv["payout_id"] in run_payouts:
            t = mv["created_at"]
            # the holds surely committed before this payout took the account's lock (least held: most withdrawable)
            least = sum(a for a, placed, settled in holds if placed < t - slack and (settled is None or settled > t))
            exact = sum(a for a, placed, settled in holds if placed <= t and (settled is None or settled > t))
            generous = Figures(0, available, deposit, least).withdrawable_fen
            judged += 1
            if -mv["amount_fen"] > generous:
                beyond.append({"payout": mv["payout_id"], "amount_fen": -mv["amount_fen"], "withdrawable_fen": generous})
            elif -mv["amount_fen"] > Figures(0, available, deposit, exact).withdrawable_fen:
                tight += 1
        sums[mv["bucket"]] += mv["amount_fen"]
        if mv["bucket"] == "available":
            available += mv["amount_fen"]
            lowest_available = min(lowest_available, available)
        elif mv["bucket"] == "deposit":
            deposit += mv["amount_fen"]
    held_open = sum(a for a, _, settled in holds if settled is None)
    figures = Figures(account.pending_fen, account.available_fen, account.deposit_fen, account.held_fen)
    payouts = Payout.objects.filter(merchant=m, created_at__gte=started)
    merchants.append({
        "merchant": m.code, "available_fen": account.available_fen, "pending_fen": account.pending_fen,
        "deposit_fen": account.deposit_fen, "held_fen": account.held_fen, "withdrawable_fen": figures.withdrawable_fen,
        "available_minus_spill_fen": account.available_fen - figures.spill_fen,
        "consistent": sums.get("available", 0) == account.available_fen and sums.get("pending", 0) == account.pending_fen
                      and sums.get("deposit", 0) == account.deposit_fen and held_open == account.held_fen,
        "sums": dict(sums), "held_open_fen": held_open, "lowest_available_fen": lowest_available,
        "payouts": payouts.count(), "paid_out_fen": sum(payouts.values_list("amount_fen", flat=True)),
        "holds_in_run": FundHold.objects.filter(merchant=m, placed_at__gte=started).count(),
        "judged": judged, "beyond": beyond, "tight": tight,
    })
out["merchants"] = merchants
print(json.dumps(out, default=str))
'''


def run_django(cfg: RehearsalConfig, script: str, *args: str, stdin: str | None = None, timeout: float = 900) -> dict:
    env = cfg.app_env()
    env.update(DJANGO_SETTINGS_MODULE="cs_portal.settings", PYTHONPATH=str(cfg.app), DB_POOL="0")
    result = subprocess.run([PYTHON, "-c", script, *args], cwd=cfg.app, env=env, input=stdin, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-5000:])
        raise SystemExit("a Django script failed (above)")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- what the clients record ------------------------------------------------------------------


@dataclass
class Attempt:
    t: float  # start, seconds since the load began
    dur: float
    kind: str  # who: buyer, agent, approver, supervisor, merchant, carrier, dashboard
    action: str
    status: int | str  # HTTP status, or "timeout" / "transport"
    code: str  # the error body's code, or the exception's class


@dataclass
class Op:
    t: float
    dur: float
    kind: str
    action: str
    status: int | str
    code: str
    attempts: int
    outcome: str  # ok (2xx), expected (a correct refusal), error


@dataclass
class WsEvent:
    t: float
    kind: str  # buyer_ws, agent_ws, console_ws
    event: str  # open, close, fail
    detail: str  # close code or error
    sock: int


class Recorder:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.attempts: list[Attempt] = []
        self.ops: list[Op] = []
        self.ws: list[WsEvent] = []
        self.samples: dict[str, list[float]] = defaultdict(list)  # latencies not from Ops (chat)
        self.sample_times: dict[str, list[float]] = defaultdict(list)
        self.notes: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def sample(self, name: str, t: float, value_s: float) -> None:
        self.samples[name].append(value_s)
        self.sample_times[name].append(t)

    def note(self, text: str) -> None:
        self.notes.append(f"t+{self.now():6.1f}s {text}")
        log(text)


# --- HTTP -----------------------------------------------------------------------------------------


class Api:
    def __init__(self, rec: Recorder, base: str) -> None:
        import httpx

        self.rec = rec
        self.httpx = httpx
        self.http = httpx.AsyncClient(
            base_url=base, timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100))

    async def call(self, kind: str, action: str, method: str, path: str, *, token: str | None = None,
                   cookie: str | None = None, body: dict | None = None, key: str | None = None,
                   retry: str = "safe", headers: dict | None = None, stop: asyncio.Event | None = None
                   ) -> tuple[int | str, object]:
        """One logical request: attempts until a final answer or OP_DEADLINE_S.
        ``retry="safe"``: the request is idempotent (a key, a client id, a GET, a
        transition): retried after 502/503/504, a timeout or a dropped
        connection. ``"unsafe"``: retried only when it surely did nothing
        (502/503/504, the connection refused)."""
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Token {token}"
        if cookie:
            hdrs["Cookie"] = f"sessionid={cookie}"
        if key:
            hdrs["Idempotency-Key"] = key
        started = self.rec.now()
        deadline = started + OP_DEADLINE_S
        attempts = 0
        while True:
            a0 = self.rec.now()
            status: int | str
            code, data, retry_after = "", None, 1.0
            try:
                response = await self.http.request(method, path, json=body, headers=hdrs)
                status = response.status_code
                if "json" in response.headers.get("content-type", ""):
                    try:
                        data = response.json()
                    except ValueError:
                        data = None
                    if status >= 400 and isinstance(data, dict):
                        code = str(data.get("code", ""))
                else:
                    data = response.text
                try:
                    retry_after = float(response.headers.get("retry-after") or 1.0)
                except ValueError:
                    retry_after = 1.0
            except self.httpx.TimeoutException as error:
                status, code = "timeout", type(error).__name__
            except self.httpx.HTTPError as error:
                status, code = "transport", type(error).__name__
            attempts += 1
            self.rec.attempts.append(Attempt(a0, self.rec.now() - a0, kind, action, status, code))
            retryable = status in RETRY_STATUSES or (
                retry == "safe" and status in ("timeout", "transport")) or (
                status == "transport" and code == "ConnectError")
            if not retryable or self.rec.now() + 0.2 > deadline or (stop is not None and stop.is_set() and attempts > 3):
                break
            await asyncio.sleep(min(2.0, max(0.2, retry_after)) * (0.5 + random.random() / 2))
        dur = self.rec.now() - started
        if isinstance(status, int) and 200 <= status < 300:
            outcome = "ok"
        elif isinstance(status, int) and status in EXPECTED.get(action, ()):
            outcome = "expected"
        else:
            outcome = "error"
        self.rec.ops.append(Op(started, dur, kind, action, status, code, attempts, outcome))
        return status, data

    async def close(self) -> None:
        await self.http.aclose()


# --- websockets -----------------------------------------------------------------------------------


class Sock:
    """A chat page's socket: reconnects as static/js/chat.js does, resumes from
    the last seq it showed, keeps an outbox of messages not yet acknowledged
    (sent again with the same client_msg_id after a reconnect), syncs
    periodically and answers ``resync``."""

    ids = 0

    def __init__(self, rh: "Rehearsal", kind: str, owner: dict, ticket: int, after_seq: int = 0) -> None:
        Sock.ids += 1
        self.id = Sock.ids
        self.rh = rh
        self.kind = kind
        self.owner = owner
        self.ticket = ticket
        self.first_after = self.last_seq = after_seq
        self.seen: dict[int, float] = {}
        self.roles: dict[int, str] = {}
        self.dups = 0
        self.out_of_order = 0
        self.outbox: dict[str, str] = {}
        self.retry_handle: asyncio.TimerHandle | None = None
        self.retries = 0
        self.waiters: dict[str, asyncio.Future] = {}
        self.ws = None
        self.connected = asyncio.Event()
        self.synced = asyncio.Event()
        self.synced_seq: int | None = None
        self.final_seq: int | None = None
        self.stopping = False
        self.opens: list[float] = []
        self.closes: list[tuple[float, int | None]] = []
        self.fails = 0
        self.served_by = ""
        self.restarting_until = 0.0
        self.unanswered = 0  # buyer messages since the agent's last reply (agent sockets)
        self.errors: Counter = Counter()
        self.pending: set[asyncio.Task] = set()
        self.next_sync = time.monotonic() + random.random() * SYNC_EVERY_S
        self.task = asyncio.create_task(self.run())

    @property
    def url(self) -> str:
        return f"{self.rh.serve.ws_base}/ws/tickets/{self.ticket}/chat/?after_seq={self.last_seq}"

    async def run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        attempts = 0
        rng = random.Random(self.id)
        headers = {"Origin": self.rh.serve.origin, "Cookie": f"sessionid={self.owner['cookie']}"}
        while not self.stopping:
            try:
                ws = await connect(self.url, open_timeout=WS_OPEN_TIMEOUT_S, compression=None, ping_interval=None,
                                   max_queue=None, additional_headers=headers, close_timeout=2)
            except Exception as error:  # noqa: BLE001 - the page sees a failed connection and backs off
                self.fails += 1
                self.rh.rec.ws.append(WsEvent(self.rh.rec.now(), self.kind, "fail", type(error).__name__, self.id))
                delay, attempts = page_delay(1006, attempts, rng, self)
                await self._sleep(delay)
                continue
            attempts = 0
            self.ws = ws
            self.served_by = ws.response.headers.get("x-served-by", "")
            self.opens.append(self.rh.rec.now())
            self.rh.rec.ws.append(WsEvent(self.rh.rec.now(), self.kind, "open", self.served_by, self.id))
            self.connected.set()
            self.flush()  # the page's open handler: what was never acknowledged goes again
            try:
                async for raw in ws:
                    self.on_frame(raw)
            except ConnectionClosed:
                pass
            except Exception as error:  # noqa: BLE001 - recorded; the page reconnects
                self.errors[f"client {type(error).__name__}"] += 1
            code = ws.close_code
            self.ws = None
            self.connected.clear()
            self.closes.append((self.rh.rec.now(), code))
            if not self.stopping:
                self.rh.rec.ws.append(WsEvent(self.rh.rec.now(), self.kind, "close", str(code), self.id))
            if self.stopping or code in (4401, 4403):
                return
            delay, attempts = page_delay(code, attempts, rng, self)
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        end = time.monotonic() + delay
        while not self.stopping and time.monotonic() < end:
            await asyncio.sleep(min(0.1, end - time.monotonic()))

    def on_frame(self, raw: str) -> None:
        now = self.rh.rec.now()
        try:
            frame = json.loads(raw)
        except ValueError:
            self.errors["bad frame"] += 1
            return
        kind = frame.get("type")
        if kind == "message":
            seq = frame.get("seq")
            if not isinstance(seq, int):
                return
            if seq in self.seen:
                self.dups += 1
                return
            self.seen[seq] = now
            role = (frame.get("author") or {}).get("role") or ""
            self.roles[seq] = role
            if seq < self.last_seq:
                self.out_of_order += 1
            self.last_seq = max(self.last_seq, seq)
            if self.kind == "agent_ws" and role == "buyer":
                self.unanswered += 1
            match = TAG_RE.search(frame.get("body") or "")
            if match:
                self.rh.delivered(match.group(1), self, now)
        elif kind == "ack":
            cid = frame.get("client_msg_id")
            self.retries = 0
            self.outbox.pop(cid, None)
            waiter = self.waiters.pop(cid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(("ack", frame.get("seq")))
        elif kind == "error":
            code = str(frame.get("code"))
            self.errors[code] += 1
            self.rh.rec.ws.append(WsEvent(now, self.kind, "error", code, self.id))
            # 'unavailable' (the database away): the page keeps the message in its outbox and sends
            # it again 1-2 s later (chat.js retrySoon; also on a reconnect or the next message typed)
            if code == "unavailable":
                self.retry_soon()
            # Any other code
            # refuses the oldest message waiting (the consumer answers its posts in order)
            if code not in ("unavailable", "unsupported", "malformed_json", "frame_refused") and self.waiters:
                cid = next(iter(self.waiters))
                self.outbox.pop(cid, None)
                waiter = self.waiters.pop(cid)
                if not waiter.done():
                    waiter.set_result(("error", code))
        elif kind == "resync":
            self.send_soon('{"type":"sync"}')
        elif kind == "synced":
            self.synced_seq = frame.get("seq")
            self.synced.set()

    def send_soon(self, text: str) -> None:
        ws = self.ws
        if ws is None:
            return

        async def send() -> None:
            try:
                await ws.send(text)
            except Exception:  # noqa: BLE001 - a closing socket; the reconnect replays
                pass

        asyncio.ensure_future(send())

    def retry_soon(self) -> None:
        """The page's ``retrySoon``: one flush of the outbox 1-2 s from now (then less often)."""
        if self.retry_handle is not None:
            return
        delay = min(10.0, 2 ** self.retries) * (1 + random.random())
        self.retries = min(self.retries + 1, 4)

        def fire() -> None:
            self.retry_handle = None
            self.flush()

        self.retry_handle = asyncio.get_running_loop().call_later(delay, fire)

    def flush(self) -> None:
        """The page's ``flushOutbox``: every message not yet acknowledged, in order."""
        for text in list(self.outbox.values()):
            self.send_soon(text)

    def say(self, body: str) -> asyncio.Task:
        """Type one chat message, as the page's form does: into the outbox, then
        the whole outbox is sent; its ack is awaited in the background."""
        cid = self.rh.new_cid()
        text = json.dumps({"type": "message", "client_msg_id": cid, "body": f"[{cid}] {body}"}, ensure_ascii=False)
        t = self.rh.rec.now()
        self.rh.sent[cid] = {"t": t, "ticket": self.ticket, "via": "ws", "from": self.kind, "sock": self.id,
                             "acked": None, "owner": self.owner["id"]}
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[cid] = waiter
        self.outbox[cid] = text
        self.flush()
        task = asyncio.create_task(self._await_ack(cid, t, waiter))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        return task

    async def _await_ack(self, cid: str, t: float, waiter: asyncio.Future) -> None:
        kind = self.kind.replace("_ws", "")
        try:
            outcome, seq = await asyncio.wait_for(asyncio.shield(waiter), ACK_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.rh.rec.ops.append(Op(t, self.rh.rec.now() - t, kind, "chat.send", "timeout", "no ack", 1, "error"))
            self.waiters.pop(cid, None)
            return
        dur = self.rh.rec.now() - t
        if outcome == "ack":
            self.rh.sent[cid]["acked"] = seq
            self.rh.rec.ops.append(Op(t, dur, kind, "chat.send", "ack", "", 1, "ok"))
        else:
            self.rh.sent[cid]["refused"] = seq
            self.rh.rec.ops.append(Op(t, dur, kind, "chat.send", "refused", str(seq), 1, "error"))

    async def settle(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the acks still awaited."""
        if self.pending:
            await asyncio.wait(list(self.pending), timeout=timeout)

    async def finish(self, timeout: float = 10.0) -> None:
        """The page closes: one last sync (what the server says this socket has
        seen), then a normal close."""
        deadline = time.monotonic() + timeout
        while self.ws is None and time.monotonic() < deadline and not self.task.done():
            await asyncio.sleep(0.1)
        while self.ws is not None and time.monotonic() < deadline:
            self.synced.clear()
            self.send_soon('{"type":"sync"}')
            try:
                await asyncio.wait_for(self.synced.wait(), max(0.1, min(3.0, deadline - time.monotonic())))
                self.final_seq = self.synced_seq
                break
            except asyncio.TimeoutError:
                continue
        self.stopping = True
        ws = self.ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), 3)
            except Exception:  # noqa: BLE001
                pass
        try:
            await asyncio.wait_for(self.task, 5)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self.task.cancel()
        except Exception:  # noqa: BLE001
            pass


class ConsoleSock:
    """A staff console's socket: listens, reconnects like the page."""

    def __init__(self, rh: "Rehearsal", owner: dict) -> None:
        Sock.ids += 1
        self.id = Sock.ids
        self.rh = rh
        self.owner = owner
        self.frames = 0
        self.stopping = False
        self.ws = None
        self.restarting_until = 0.0
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        attempts = 0
        rng = random.Random(self.id)
        headers = {"Origin": self.rh.serve.origin, "Cookie": f"sessionid={self.owner['cookie']}"}
        while not self.stopping:
            try:
                ws = await connect(f"{self.rh.serve.ws_base}/ws/console/", open_timeout=WS_OPEN_TIMEOUT_S,
                                   compression=None, ping_interval=None, max_queue=None, additional_headers=headers,
                                   close_timeout=2)
            except Exception as error:  # noqa: BLE001
                self.rh.rec.ws.append(WsEvent(self.rh.rec.now(), "console_ws", "fail", type(error).__name__, self.id))
                delay, attempts = page_delay(1006, attempts, rng, self)
                await asyncio.sleep(delay)
                continue
            attempts = 0
            self.ws = ws
            self.rh.rec.ws.append(WsEvent(self.rh.rec.now(), "console_ws", "open",
                                          ws.response.headers.get("x-served-by", ""), self.id))
            try:
                async for _ in ws:
                    self.frames += 1
            except ConnectionClosed:
                pass
            except Exception:  # noqa: BLE001
                pass
            self.ws = None
            if self.stopping:
                return
            code = ws.close_code
            self.rh.rec.ws.append(WsEvent(self.rh.rec.now(), "console_ws", "close", str(code), self.id))
            if code in (4401, 4403):
                return
            delay, attempts = page_delay(code, attempts, rng, self)
            await asyncio.sleep(delay)

    async def finish(self) -> None:
        self.stopping = True
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 3)
            except Exception:  # noqa: BLE001
                pass
        try:
            await asyncio.wait_for(self.task, 5)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self.task.cancel()
        except Exception:  # noqa: BLE001
            pass


# --- the rehearsal ------------------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    planned_at: float
    start: float = float("nan")
    end: float = float("nan")  # the server side back (worker forked, Redis answering, backends gone, Celery restarted)
    detail: str = ""
    skipped: str = ""
    extra: dict = field(default_factory=dict)


class Rehearsal:
    def __init__(self, cfg: RehearsalConfig, serve: Serve, redis: PrivateRedis, data: dict) -> None:
        self.cfg = cfg
        self.serve = serve
        self.redis = redis
        self.data = data
        self.rec = Recorder()
        self.api = Api(self.rec, serve.base)
        self.stop = asyncio.Event()
        self.sent: dict[str, dict] = {}
        self.delivery: dict[str, float] = {}
        self.socks: list[Sock] = []
        self.consoles: list[ConsoleSock] = []
        self.buyer_tickets: dict[int, dict] = {}
        self.buyer_done: set[int] = set()
        self.taken: set[int] = set()
        self.wave_go = asyncio.Event()
        self.wave_posted = asyncio.Event()
        self.incident_id: int | None = None
        self.incident_at: float | None = None
        self.jobs: dict[str, dict] = {}
        self.macro_job = asyncio.Event()
        self.faults: list[Fault] = []
        self.rng = random.Random(2024)
        self.cid_n = 0

    def new_cid(self) -> str:
        return "rh" + uuid.uuid4().hex[:12]

    def delivered(self, cid: str, sock: Sock, t: float) -> None:
        sent = self.sent.get(cid)
        if sent is None or sent.get("owner") == sock.owner["id"] or cid in self.delivery:
            return
        self.delivery[cid] = t - sent["t"]
        self.rec.sample(f"chat.delivery {sent['from'].replace('_ws', '')}→{sock.kind.replace('_ws', '')}", sent["t"],
                        t - sent["t"])

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the load stops first; True when it stopped."""
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    # --- the actors

    async def buyer(self, b: dict, index: int) -> None:
        rng = random.Random(index)
        if await self.sleep(rng.random() * min(15.0, self.cfg.seconds * 0.1)):
            return
        n = 0
        while not self.stop.is_set():
            dispute = rng.random() < 0.12
            order = b["orders"][2] if dispute else b["orders"][n % 2]
            status, data = await self.api.call(
                "buyer", "open_ticket", "POST", "/api/v1/tickets/", token=b["token"], retry="unsafe",
                body={"category": "wrong_item" if dispute else "logistics_delay", "channel": "chat",
                      "subject": f"{SUBJECT_TAG} 双十一包裹 {n + 1}", "body": "我的快递三天没动了，帮我查一下",
                      "order_id": order["id"]})
            n += 1
            if status != 201 or not isinstance(data, dict):
                if await self.sleep(2 + rng.random() * 2):
                    return
                continue
            ticket = data["id"]
            self.buyer_tickets[ticket] = b
            sock = Sock(self, "buyer_ws", b, ticket, after_seq=0)
            self.socks.append(sock)
            for i in range(self.cfg.msgs_per_ticket):
                if await self.sleep(self.cfg.msg_period_s * (0.6 + 0.8 * rng.random())):
                    break
                sock.say(f"请问包裹到哪了？第{i + 1}次询问")
            # the buyer stays on the page until what they typed is acknowledged (or gives up)
            await sock.settle(ACK_TIMEOUT_S if not self.stop.is_set() else 15.0)
            self.buyer_done.add(ticket)
            await sock.finish()

    async def agent(self, a: dict, index: int) -> None:
        rng = random.Random(100 + index)
        self.consoles.append(ConsoleSock(self, a))
        held: dict[int, Sock] = {}
        remedied: set[int] = set()
        replies: Counter = Counter()
        tick = 0
        while not await self.sleep(0.8 + 0.4 * rng.random()):
            tick += 1
            if len(held) < 6 and tick % 2 == index % 2:
                status, data = await self.api.call(
                    "agent", "list_queue", "GET", f"/api/v1/tickets/?status=open&assignee=none&q={SUBJECT_TAG}"
                    "&page_size=30", token=a["token"])
                if status == 200 and isinstance(data, dict):
                    fresh = [t["id"] for t in data.get("results", []) if t["id"] in self.buyer_tickets
                             and t["id"] not in self.taken and t["id"] not in self.buyer_done]
                    if fresh:
                        ticket = rng.choice(fresh[:5])
                        status, _ = await self.api.call("agent", "assign", "POST",
                                                        f"/api/v1/tickets/{ticket}/transitions/assign/",
                                                        # the demo's agent2 is past the 7-hour shift: taking by hand confirms
                                                        token=a["token"], body={"confirm_past_shift": True})
                        if status == 200:
                            self.taken.add(ticket)
                            sock = Sock(self, "agent_ws", a, ticket, after_seq=0)
                            self.socks.append(sock)
                            held[ticket] = sock
            waiting = [t for t, s in held.items() if s.unanswered > 0]
            if waiting:
                ticket = min(waiting, key=lambda t: min((s for s, r in held[t].roles.items() if r == "buyer"),
                                                        default=0))
                held[ticket].unanswered = 0
                internal = rng.random() < 0.08
                cid = self.new_cid()
                self.sent[cid] = {"t": self.rec.now(), "ticket": ticket, "via": "api", "from": "agent_ws",
                                  "acked": None, "owner": a["id"], "internal": internal}
                status, data = await self.api.call(
                    "agent", "reply", "POST", f"/api/v1/tickets/{ticket}/messages/", token=a["token"],
                    body={"body": f"[{cid}] {'内部备注：已催承运商' if internal else '您好，已为您联系承运商，请稍候。'}",
                          "client_msg_id": cid, "internal": internal})
                if status == 201 and isinstance(data, dict):
                    self.sent[cid]["acked"] = data.get("seq")
                replies[ticket] += 1
            candidates = [t for t in held if replies[t] >= 1 and t not in remedied]
            if candidates and rng.random() < 0.6:
                ticket = candidates[0]
                remedied.add(ticket)
                roll = rng.random()
                body = ({"kind": "coupon", "reason": "物流延误补偿"} if roll < 0.6 else
                        {"kind": "resend", "with_coupon": True, "reason": "丢件补发并补偿"} if roll < 0.85 else
                        {"kind": "refund", "reason": "退款处理"})
                await self.api.call("agent", "remedy", "POST", f"/api/v1/tickets/{ticket}/remedies/",
                                    token=a["token"], body=body, key=f"rh-remedy-{a['id']}-{ticket}")
            for ticket in [t for t in held if t in self.buyer_done and held[t].unanswered == 0]:
                sock = held.pop(ticket)
                await self.api.call("agent", "resolve", "POST", f"/api/v1/tickets/{ticket}/transitions/resolve/",
                                    token=a["token"], body={"note": "演练结束"})
                await sock.finish()
        for sock in held.values():
            await sock.finish()

    async def approver(self) -> None:
        me = self.data["approver"]
        rng = random.Random(7)
        while not await self.sleep(1.5):
            status, data = await self.api.call("approver", "pending_list", "GET",
                                               "/api/v1/remedies/?status=pending_approval&page_size=20",
                                               token=me["token"])
            if status != 200 or not isinstance(data, dict):
                continue
            for remedy in data.get("results", [])[:8]:
                if self.stop.is_set():
                    break
                if remedy.get("requested_by_id") == me["id"]:
                    continue
                # a supervisor's judgement: large refunds no, and now and then anything no
                large_refund = remedy.get("kind") == "refund" and (remedy.get("amount_fen") or 0) > 5_000
                verdict = "reject" if large_refund or rng.random() < 0.1 else "approve"
                await self.api.call("approver", verdict, "POST", f"/api/v1/remedies/{remedy['id']}/{verdict}/",
                                    token=me["token"], body={"reason": "演练审批"}, key=f"rh-decide-{remedy['id']}")

    async def merchant(self, m: dict, index: int) -> None:
        rng = random.Random(300 + index)
        withdrawable = None
        n = 0
        tick = 0
        while not await self.sleep(1.5 + rng.random()):
            tick += 1
            status, data = await self.api.call("merchant", "balance", "GET", f"/api/v1/merchants/{m['merchant_id']}/balance/",
                                               token=m["token"])
            if status == 200 and isinstance(data, dict):
                withdrawable = data.get("withdrawable_fen")
            if tick % 3 or not withdrawable:
                continue
            roll = rng.random()
            if roll < 0.2:
                amounts = [withdrawable + rng.randint(100, 5_000)]  # beyond: 422 exceeds_withdrawable
            elif roll < 0.4:
                amounts = [int(withdrawable * 0.6)] * 2  # two at once: one must be refused
            else:
                amounts = [max(100, int(withdrawable * rng.uniform(0.02, 0.12)))]
            calls = []
            for amount in amounts:
                n += 1
                calls.append(self.api.call("merchant", "payout", "POST", f"/api/v1/merchants/{m['merchant_id']}/payouts/",
                                           token=m["token"], body={"amount_fen": amount},
                                           key=f"rh-pay-{m['code']}-{n}"))
            await asyncio.gather(*calls)

    async def carrier(self) -> None:
        token = self.data["carrier"]["token"]
        rng = random.Random(5)
        routine = self.data["routine"]
        posted: list[dict] = []
        n = 0

        async def post(event: dict, action: str) -> tuple[int | str, object]:
            return await self.api.call("carrier", action, "POST", "/api/v1/logistics/events/", token=token, body=event)

        async def wave() -> None:
            await self.wave_go.wait()
            self.rec.note(f"carrier: lost-parcel wave begins ({len(self.data['wave'])} parcels in {WAVE_REGION})")
            for i, shipment in enumerate(self.data["wave"]):
                status, data = await post({"event_id": f"rh-lost-{i}", **shipment, "kind": "lost",
                                           "occurred_at": _iso(time.time()), "location": "广州转运中心"}, "carrier_lost")
                if status in (200, 201) and isinstance(data, dict) and data.get("incident_id") and self.incident_id is None:
                    self.incident_id = data["incident_id"]
                    self.incident_at = self.rec.now()
                    self.rec.note(f"incident #{self.incident_id} raised by lost parcel {i + 1}")
                await asyncio.sleep(0.12)
            self.wave_posted.set()

        wave_task = asyncio.create_task(wave())
        while not await self.sleep(0.4 + 0.3 * rng.random()):
            if posted and rng.random() < 0.08:
                await post(rng.choice(posted), "carrier_event")  # a repeat: 200, nothing changes
                continue
            n += 1
            event = {"event_id": f"rh-ev-{n}", **rng.choice(routine), "kind": rng.choice(["in_transit", "out_for_delivery"]),
                     "occurred_at": _iso(time.time()), "location": "转运中心"}
            await post(event, "carrier_event")
            posted.append(event)
        if not wave_task.done():
            await asyncio.wait([wave_task], timeout=30)
            wave_task.cancel()

    async def incident_runner(self) -> None:
        """The supervisor on the incident: link the region's tickets, a bulk macro
        reply, then (optionally) a bulk coupon remedy, each run and watched."""
        lead = self.data["lead"]
        await self.wave_posted.wait()
        if self.incident_id is None:
            self.rec.note("no incident was raised by the wave")
            return
        status, data = await self.api.call("supervisor", "link_tickets", "POST",
                                           f"/api/v1/incidents/{self.incident_id}/tickets/", token=lead["token"],
                                           body={"region": WAVE_REGION, "category": "not_received"})
        self.rec.note(f"incident #{self.incident_id}: linked by region and category: {status} {data}")
        kinds = [("macro", "macro_reply", {"body": MACRO})]
        if self.cfg.bulk_remedy:
            kinds.append(("remedy", "remedy", {"remedy": "coupon", "reason": "华南丢件潮统一补偿"}))
        for label, kind, params in kinds:
            status, data = await self.api.call("supervisor", "bulk_create", "POST", "/api/v1/bulk-jobs/",
                                               token=lead["token"], key=f"rh-bulk-{label}",
                                               body={"kind": kind, "incident_id": self.incident_id, "params": params})
            if status != 201 or not isinstance(data, dict):
                self.rec.note(f"bulk {label} job not created: {status} {data}")
                continue
            job = {"id": data["id"], "total": data["total"], "created_at": self.rec.now(), "progress": []}
            self.jobs[label] = job
            await self.api.call("supervisor", "bulk_preview", "GET", f"/api/v1/bulk-jobs/{job['id']}/preview/",
                                token=lead["token"])
            status, _ = await self.api.call("supervisor", "bulk_run", "POST", f"/api/v1/bulk-jobs/{job['id']}/run/",
                                            token=lead["token"])
            job["run_at"] = self.rec.now()
            self.rec.note(f"bulk {label} job #{job['id']} over {job['total']} tickets: run → {status}")
            if label == "macro":
                self.macro_job.set()
            deadline = self.rec.now() + max(180.0, self.cfg.seconds)
            while self.rec.now() < deadline:
                await asyncio.sleep(1.0)
                status, data = await self.api.call("supervisor", "bulk_poll", "GET", f"/api/v1/bulk-jobs/{job['id']}/",
                                                   token=lead["token"])
                if status == 200 and isinstance(data, dict):
                    processed = data["done_count"] + data["skipped_count"] + data["failed_count"]
                    job["progress"].append((self.rec.now(), processed, data["status"]))
                    if data["status"] == "done":
                        job["done_at"] = self.rec.now()
                        self.rec.note(f"bulk {label} job #{job['id']} done: {data['done_count']} done, "
                                      f"{data['skipped_count']} skipped, {data['failed_count']} failed")
                        break
            else:
                self.rec.note(f"bulk {label} job #{job['id']} not done after {deadline - job['run_at']:.0f} s")

    async def dashboard(self) -> None:
        lead = self.data["lead"]
        self.consoles.append(ConsoleSock(self, lead))
        await self.api.call("dashboard", "dashboard_page", "GET", "/console/dashboard/", cookie=lead["cookie"],
                            headers={"Accept": "text/html"})
        while not await self.sleep(3.0):
            await self.api.call("dashboard", "dashboard_figures", "GET", "/console/dashboard/figures/",
                                cookie=lead["cookie"], headers={"Accept": "text/html", "HX-Request": "true"})

    async def syncer(self) -> None:
        """The pages' periodic sync (every 20 s per socket)."""
        while not self.stop.is_set():
            now = time.monotonic()
            for sock in self.socks:
                if sock.ws is not None and not sock.stopping and sock.next_sync <= now:
                    sock.next_sync = now + SYNC_EVERY_S
                    sock.send_soon('{"type":"sync"}')
            await asyncio.sleep(0.5)

    # --- the faults

    def plan(self) -> list[Fault]:
        d = self.cfg.seconds
        plan = []
        if "worker" in self.cfg.faults:
            plan.append(Fault("worker", 0.12 * d))
        if "deploy" in self.cfg.faults:
            plan.append(Fault("deploy", 0.40 * d))
        if "celery" in self.cfg.faults:
            plan.append(Fault("celery", float("nan"), detail="when the bulk macro job is 10-70 % done"))
        if "redis" in self.cfg.faults:
            plan.append(Fault("redis", 0.62 * d))
        if "postgres" in self.cfg.faults:
            plan.append(Fault("postgres", 0.82 * d))
        return plan

    async def timeline(self) -> None:
        self.faults = self.plan()
        wave_at = 0.20 * self.cfg.seconds
        tasks = [asyncio.create_task(self._wave_at(wave_at))]
        for fault in self.faults:
            tasks.append(asyncio.create_task(self._fault(fault)))
        await asyncio.gather(*tasks)

    async def _wave_at(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - self.rec.now()))
        self.wave_go.set()

    async def _fault(self, fault: Fault) -> None:
        loop = asyncio.get_running_loop()
        if fault.name == "celery":
            await self._celery_fault(fault)
            return
        await asyncio.sleep(max(0.0, fault.planned_at - self.rec.now()))
        if self.stop.is_set():
            fault.skipped = "the load ended first"
            return
        if fault.name == "worker":
            counts = Counter(int(s.served_by.rsplit(":", 1)[1]) for s in self.socks
                             if s.ws is not None and s.served_by.count(":"))
            workers = await loop.run_in_executor(None, self.serve.web_workers)
            victims = [pid for pid, _ in counts.most_common() if pid in workers] or workers
            if not victims:
                fault.skipped = "no ASGI worker found"
                return
            victim = victims[0]
            fault.start = self.rec.now()
            os.kill(victim, signal.SIGKILL)
            fault.detail = f"SIGKILL to ASGI worker {victim} ({counts.get(victim, 0)} chat sockets of " \
                           f"{sum(counts.values())})"
            self.rec.note(f"FAULT worker: {fault.detail}")
            while self.rec.now() - fault.start < 60:
                workers = await loop.run_in_executor(None, self.serve.web_workers)
                if len(workers) >= self.cfg.workers and victim not in workers:
                    break
                await asyncio.sleep(0.05)
            fault.end = self.rec.now()
            fault.extra["workers_after"] = workers
        elif fault.name == "deploy":
            old = set(await loop.run_in_executor(None, self.serve.web_workers))
            fault.start = self.rec.now()
            await loop.run_in_executor(None, self.serve.ctl, "signal", "HUP", "web")
            self.rec.note(f"FAULT deploy: HUP to the port's holder; old workers {sorted(old)}")
            while self.rec.now() - fault.start < 90:
                workers = set(await loop.run_in_executor(None, self.serve.web_workers))
                if len(workers) >= self.cfg.workers and not workers & old:
                    break
                await asyncio.sleep(0.05)
            fault.end = self.rec.now()
            fault.detail = (f"supervisorctl signal HUP web: a new server beside the old, the old workers "
                            f"{sorted(old)} gone after {fault.end - fault.start:.1f} s")
            fault.extra["workers_after"] = sorted(workers)
        elif fault.name == "redis":
            fault.start = self.rec.now()
            self.redis.kill()
            self.rec.note(f"FAULT redis: private redis-server killed; starting it again in {REDIS_DOWN_S:.0f} s")
            await asyncio.sleep(REDIS_DOWN_S)
            await loop.run_in_executor(None, self.redis.start)
            fault.end = self.rec.now()
            fault.detail = f"redis-server killed (SIGKILL) and started again after {REDIS_DOWN_S:.0f} s, empty"
        elif fault.name == "postgres":
            fault.start = self.rec.now()
            killed = await loop.run_in_executor(None, terminate_backends, self.cfg)
            fault.end = self.rec.now()
            fault.detail = f"pg_terminate_backend on {killed} backends of the rehearsal database"
            self.rec.note(f"FAULT postgres: {fault.detail}")

    async def _celery_fault(self, fault: Fault) -> None:
        loop = asyncio.get_running_loop()
        stop_wait = asyncio.create_task(self.stop.wait())
        macro = asyncio.create_task(self.macro_job.wait())
        await asyncio.wait([stop_wait, macro], return_when=asyncio.FIRST_COMPLETED)
        if not self.macro_job.is_set():
            fault.skipped = "no bulk macro job ran"
            return
        job = self.jobs["macro"]
        deadline = self.rec.now() + 90
        while self.rec.now() < deadline:
            processed = await loop.run_in_executor(None, job_processed, self.cfg, job["id"])
            if processed is not None and processed >= max(1, 0.10 * job["total"]):
                if processed > 0.70 * job["total"]:
                    fault.skipped = f"the job went past 70 % before it could be caught ({processed}/{job['total']})"
                    return
                break
            await asyncio.sleep(0.1)
        else:
            fault.skipped = "the bulk macro job never reached 10 %"
            return
        old = await loop.run_in_executor(None, self.serve.pid, "worker")
        tree = process_tree(old) if old else []
        fault.start = self.rec.now()
        fault.extra["wall_start"] = time.time()
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        fault.extra["processed_at_kill"] = processed
        fault.detail = (f"SIGKILL to the Celery worker {old} and its {len(tree) - 1} pool process(es) with the macro job "
                        f"at {processed}/{job['total']}")
        self.rec.note(f"FAULT celery: {fault.detail}")
        while self.rec.now() - fault.start < 90:
            pid = await loop.run_in_executor(None, self.serve.pid, "worker")
            if pid and pid != old:
                break
            await asyncio.sleep(0.2)
        fault.end = self.rec.now()
        fault.extra["new_pid"] = pid

    # --- the run

    async def run(self) -> dict:
        cfg = self.cfg
        log(f"load for {cfg.seconds:.0f} s: {len(self.data['buyers'])} buyers, {len(self.data['agents'])} agents, "
            f"1 approver, {len(self.data['merchants'])} merchants, 1 carrier, 1 incident supervisor, the dashboard; "
            f"faults {', '.join(cfg.faults) or 'none'}")
        cpu0 = (self.serve.cpu_s(), cpu_by_command(("postgres",)), cpu_by_command(("redis-server",)), time.process_time(),
                machine_busy())
        self.rec.t0 = time.monotonic()
        self.rec.wall0 = time.time()
        actors = [asyncio.create_task(self.buyer(b, i)) for i, b in enumerate(self.data["buyers"])]
        actors += [asyncio.create_task(self.agent(a, i)) for i, a in enumerate(self.data["agents"])]
        actors += [asyncio.create_task(self.merchant(m, i)) for i, m in enumerate(self.data["merchants"])]
        actors += [asyncio.create_task(x) for x in (self.approver(), self.carrier(), self.dashboard())]
        runner = asyncio.create_task(self.incident_runner())
        syncer = asyncio.create_task(self.syncer())
        timeline = asyncio.create_task(self.timeline())
        await asyncio.sleep(cfg.seconds)
        load_s = self.rec.now()
        self.stop.set()
        self.rec.note("load ends; the clients finish what they are doing")
        done, pending = await asyncio.wait(actors, timeout=90)
        hung = len(pending)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                self.rec.note(f"client task failed: {task.exception()!r}")
        cpu1 = (self.serve.cpu_s(), cpu_by_command(("postgres",)), cpu_by_command(("redis-server",)), time.process_time(),
                machine_busy())
        # the bulk jobs run on; a fault that waited for them ends with them
        job_wait = max(120.0, 2 * cfg.seconds)
        try:
            await asyncio.wait_for(asyncio.shield(runner), job_wait)
        except asyncio.TimeoutError:
            self.rec.note(f"the incident supervisor was still watching its jobs {job_wait:.0f} s after the load")
            runner.cancel()
        try:
            await asyncio.wait_for(timeline, 120)
        except asyncio.TimeoutError:
            self.rec.note("a fault was still waiting 120 s after the jobs")
        open_socks = [s for s in self.socks if not s.stopping]
        await asyncio.gather(*(s.finish() for s in open_socks))
        await asyncio.gather(*(c.finish() for c in self.consoles))
        syncer.cancel()
        await self.api.close()
        busy = (cpu1[4][0] - cpu0[4][0]) / max(1, cpu1[4][1] - cpu0[4][1]) * (os.cpu_count() or 1)
        return {"load_s": load_s, "hung_clients": hung, "open_sockets_at_end": len(open_socks),
                "cpu": {"server_s": cpu1[0] - cpu0[0], "postgres_s": cpu1[1] - cpu0[1], "redis_s": cpu1[2] - cpu0[2],
                        "client_s": cpu1[3] - cpu0[3], "busy_cores": busy, "wall_s": load_s}}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}+00:00"


def _admin_url(cfg: RehearsalConfig) -> tuple[str, str]:
    dbname, admin_url = check_targets(cfg)
    return dbname, admin_url


def terminate_backends(cfg: RehearsalConfig) -> int:
    """Every backend of the rehearsal database, from a connection to another one."""
    import psycopg

    dbname, admin_url = _admin_url(cfg)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", [dbname]).fetchone()
    return int(row[0])


def job_processed(cfg: RehearsalConfig, job_id: int) -> int | None:
    """Items of a bulk job already handled (read straight from the database)."""
    import psycopg

    try:
        with psycopg.connect(cfg.database_url, autocommit=True, connect_timeout=3) as conn:
            row = conn.execute("SELECT count(*) FROM incidents_bulkjobitem WHERE job_id = %s AND status <> 'pending'",
                               [job_id]).fetchone()
        return int(row[0])
    except psycopg.Error:
        return None


# --- after the run: the checks and the figures ------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    problems: list = field(default_factory=list)


def is_failure(a: Attempt) -> bool:
    """What an outage looks like to a client: no answer, or a 5xx."""
    return a.status in ("timeout", "transport") or (isinstance(a.status, int) and a.status >= 500)


def fault_spans(faults: list[Fault], end: float) -> dict[str, tuple[float, float]]:
    """Where each fault's effects are looked for: from its start to the next
    fault's start, at most RECOVERY_LIMIT_S."""
    live = sorted((f for f in faults if f.start == f.start), key=lambda f: f.start)
    spans = {}
    for i, f in enumerate(live):
        nxt = live[i + 1].start if i + 1 < len(live) else end
        spans[f.name] = (f.start, min(f.start + RECOVERY_LIMIT_S, max(nxt, f.start + 1.0)))
    return spans


def recovery(rec: Recorder, fault: Fault, span: tuple[float, float]) -> dict[str, dict]:
    """Per client kind: whether the fault touched it and how long after its
    start the kind was working again."""
    lo, hi = span
    out: dict[str, dict] = {}
    by_kind: dict[str, list[Attempt]] = defaultdict(list)
    for a in rec.attempts:
        by_kind[a.kind].append(a)
    for kind, attempts in sorted(by_kind.items()):
        # an attempt counts when its answer came (one sent before the fault may fail because of it)
        failing = [a for a in attempts if lo <= a.t + a.dur < hi and is_failure(a)]
        if not failing:
            out[kind] = {"affected": 0}
            continue
        last = max(a.t + a.dur for a in failing)
        back = [a.t + a.dur for a in attempts if a.t + a.dur > last and not is_failure(a)]
        out[kind] = {"affected": len(failing), "recovered_s": (min(back) - fault.start) if back else None}
    by_sock: dict[tuple[str, int], list[WsEvent]] = defaultdict(list)
    for e in rec.ws:
        by_sock[(e.kind, e.sock)].append(e)
    kinds: dict[str, list[float | None]] = defaultdict(list)
    for (kind, _), events in by_sock.items():
        bad = [e.t for e in events if lo <= e.t < hi and e.event in ("close", "fail")]
        if not bad:
            continue
        reopened = [e.t for e in events if e.event == "open" and e.t > max(bad)]
        kinds[kind].append((min(reopened) - fault.start) if reopened else None)
    for kind in ("buyer_ws", "agent_ws", "console_ws"):
        times = kinds.get(kind, [])
        if not times:
            out[kind] = {"affected": 0}
            continue
        back = [t for t in times if t is not None]
        out[kind] = {"affected": len(times), "not_back": len(times) - len(back),
                     "recovered_s": max(back) if back and len(back) == len(times) else (None if not back else max(back)),
                     "p50_s": pct(back, 50) if back else None}
    return out


def analyse(cfg: RehearsalConfig, rh: Rehearsal, info: dict, facts: dict, ledger: tuple[bool, str],
            server_log: str) -> tuple[list[Check], dict]:
    rec = rh.rec
    checks: list[Check] = []
    rh_ids = {p["id"] for p in (*rh.data["agents"], rh.data["lead"], rh.data["approver"])}
    rh_buyers = {b["id"] for b in rh.data["buyers"]}

    # 1-2. acknowledged chat messages and API replies: stored once, with the acknowledged seq
    for via, name in (("ws", "chat messages acknowledged over the socket: each stored exactly once, at its acked seq"),
                      ("api", "agent replies answered 201 by the API: each stored exactly once, at its seq")):
        sent = {cid: s for cid, s in rh.sent.items() if s["via"] == via}
        acked = {cid: s for cid, s in sent.items() if s["acked"] is not None}
        problems = []
        for cid, s in acked.items():
            rows = facts["cids"].get(cid, [])
            if len(rows) != 1 or rows[0] != [s["ticket"], s["acked"]]:
                problems.append(f"{cid} on #{s['ticket']} acked seq {s['acked']}: stored {rows}")
        unacked = [cid for cid, s in sent.items() if s["acked"] is None and not s.get("refused")]
        stored_unacked = sum(1 for cid in unacked if facts["cids"].get(cid))
        refused = Counter(str(s.get("refused")) for s in sent.values() if s.get("refused"))
        detail = (f"{len(acked)} acknowledged of {len(sent)} sent; {len(unacked)} never acknowledged "
                  f"({stored_unacked} of them stored anyway); refused {dict(refused) or 0}")
        checks.append(Check(name, not problems, detail, problems))
        if via == "ws":
            late = [f"{cid} on ticket {sent[cid]['ticket']}, typed at t+{sent[cid]['t']:.1f}s: "
                    f"{'stored' if facts['cids'].get(cid) else 'not stored'}, still in the outbox" for cid in unacked]
            checks.append(Check(
                f"every chat message typed was acknowledged within {ACK_TIMEOUT_S:.0f} s (the page's outbox gets it "
                "stored)", not late, f"{len(unacked)} of {len(sent)} never acknowledged", late))

    # 3. seq without gaps on every ticket written during the run
    checks.append(Check("seq without gaps (1..last_seq, last_public_seq right) on every ticket written during the run",
                        not facts["gaps"], f"{facts['tickets_written']} tickets checked", facts["gaps"]))

    # 4. every stored message reached every socket open on its ticket (partner included)
    conv = {int(k): v for k, v in facts["conversations"].items()}
    problems, unverified, expected_n, dups = [], 0, 0, 0
    partner = Counter()
    for sock in rh.socks:
        dups += sock.dups
        if sock.final_seq is None:
            unverified += 1
            continue
        staff = sock.kind == "agent_ws"
        rows = conv.get(sock.ticket, [])
        expected = {seq for seq, internal, role in rows if sock.first_after < seq <= sock.final_seq and (staff or not internal)}
        stored = {seq for seq, internal, role in rows if staff or not internal}
        missing = sorted(expected - set(sock.seen))
        phantom = sorted(set(sock.seen) - stored)
        expected_n += len(expected)
        roles = {seq: role for seq, _, role in rows}
        for seq in expected:
            want = "buyer→agent" if staff and roles.get(seq) == "buyer" else \
                "agent→buyer" if not staff and roles.get(seq) in ("agent", "supervisor") else None
            if want:
                partner[f"{want} expected"] += 1
                partner[f"{want} delivered"] += seq in sock.seen
        if missing or phantom:
            problems.append(f"{sock.kind} #{sock.id} on ticket {sock.ticket}: missing seqs {missing[:10]}"
                            + (f", never stored {phantom[:10]}" if phantom else ""))
    checks.append(Check(
        "every stored message delivered to every socket of its ticket (the partner's included, replays allowed)",
        not problems and not unverified,
        f"{len(rh.socks)} chat sockets, {expected_n} deliveries due; buyer→agent "
        f"{partner['buyer→agent delivered']}/{partner['buyer→agent expected']}, agent→buyer "
        f"{partner['agent→buyer delivered']}/{partner['agent→buyer expected']}; {dups} repeated by replays (dropped "
        f"by seq as the page does); {unverified} socket(s) could not sync at the end",
        problems + ([f"{unverified} socket(s) never synced at the end"] if unverified else [])))

    # 5-7. the caps
    policy = facts["policy"]
    rows = [q for q in facts["quotas"] if q["agent"] in rh_ids]
    problems = [f"agent {q['agent']}: used {q['used']} of {policy['agent_monthly_quota']}, {q['self_service']} "
                "self-service remedies" for q in rows
                if q["used"] > policy["agent_monthly_quota"] or q["used"] != q["self_service"]]
    full = sum(1 for q in rows if q["used"] >= policy["agent_monthly_quota"])
    checks.append(Check("no agent's monthly quota exceeded (counter = self-service remedies)", not problems,
                        f"{len(rows)} rehearsal agents, quota {policy['agent_monthly_quota']}: {full} used it up",
                        problems))
    rows = [b for b in facts["buyers"] if b["buyer"] in rh_buyers]
    problems = [f"buyer {b['buyer']} on {b['day']}: {b['self_service']} self-service, {b['executed']} executed, "
                f"counter {b['counter']}" for b in rows
                if b["self_service"] > policy["buyer_daily_cap"] or b["counter"] != b["executed"]]
    capped = sum(1 for b in rows if b["self_service"] >= policy["buyer_daily_cap"])
    checks.append(Check("no buyer's daily cap exceeded by self-service (counter = executed remedies)", not problems,
                        f"{len(rows)} buyer-days, cap {policy['buyer_daily_cap']}: {capped} reached it", problems))
    problems = [f"{d['day']}: self-service {d['self_service_fen']} fen against a budget of {d['budget_fen']}; spent "
                f"{d['spent_fen']}, executed {d['executed_fen']}" for d in facts["budget"]
                if d["self_service_fen"] > d["budget_fen"] or d["spent_fen"] != d["executed_fen"]]
    checks.append(Check("day budget: self-service spend within it (spent = every executed remedy's cost)", not problems,
                        "; ".join(f"{d['day']}: budget {d['budget_fen']} fen, self-service {d['self_service_fen']}, "
                                  f"spent {d['spent_fen']} (approvals may pass it), breaker "
                                  f"{'open' if d['breaker_open'] else 'closed'}" for d in facts["budget"]), problems))

    # 8. the ledger
    checks.append(Check("every ledger chain verifies (manage.py verify_ledger)", ledger[0], ledger[1].strip()[:300],
                        [] if ledger[0] else [ledger[1]]))

    # 9. bulk jobs
    problems = []
    for job in facts["jobs"]:
        items = job["items"]
        if job["status"] != "done" or items.get("pending"):
            problems.append(f"job #{job['id']} ({job['kind']}) is {job['status']} with {items.get('pending', 0)} "
                            "items pending")
        if job["not_once_n"] or job["extra_effects"]:
            problems.append(f"job #{job['id']} ({job['kind']}): {job['not_once_n']} done items without exactly one "
                            f"effect (tickets {job['not_once']}), {job['extra_effects']} effects of no done item")
        for status in ("done", "skipped", "failed"):
            if job["counts"][status] != items.get(status, 0):
                problems.append(f"job #{job['id']}: {status}_count {job['counts'][status]} but {items.get(status, 0)} "
                                f"items {status}")
        outage = [r for r in job["failed"] if isinstance(r[1], dict) and r[1].get("code") in ("unavailable",)]
        if outage:
            problems.append(f"job #{job['id']}: items failed by the outage instead of being retried: {outage[:5]}")
    expected_jobs = 1 + (1 if cfg.bulk_remedy else 0)
    if len(facts["jobs"]) < expected_jobs:
        problems.append(f"{len(facts['jobs'])} bulk job(s) ran, {expected_jobs} expected")
    checks.append(Check("each bulk item done exactly once and every job finished", not problems,
                        "; ".join(f"#{j['id']} {j['kind']} {j['status']}: {j['items']}" for j in facts["jobs"]) or
                        "no job", problems))

    # 10. merchants
    problems = []
    for m in facts["merchants"]:
        if not m["consistent"]:
            problems.append(f"{m['merchant']}: account {m['available_fen']}/{m['pending_fen']}/{m['deposit_fen']}/"
                            f"{m['held_fen']} but movements {m['sums']} and open holds {m['held_open_fen']}")
        if m["lowest_available_fen"] < 0 or m["withdrawable_fen"] < 0:
            problems.append(f"{m['merchant']}: available went down to {m['lowest_available_fen']} fen")
        problems += [f"{m['merchant']}: payout {b['payout']} of {b['amount_fen']} fen beyond the {b['withdrawable_fen']} "
                     "fen withdrawable" for b in m["beyond"]]
    checks.append(Check("no merchant's available (so withdrawable) below zero; no payout beyond what was withdrawable",
                        not problems, "; ".join(
                            f"{m['merchant']}: {m['payouts']} payouts ¥{m['paid_out_fen'] / 100:,.2f}, withdrawable now "
                            f"¥{m['withdrawable_fen'] / 100:,.2f}, {m['holds_in_run']} holds placed"
                            for m in facts["merchants"] if m["payouts"] or m["holds_in_run"]), problems))

    # 11. 500s: none outside the outage windows
    spans = fault_spans(rh.faults, info["load_s"] + 300)
    recoveries = {f.name: recovery(rec, f, spans[f.name]) for f in rh.faults if f.name in spans}
    windows = []
    for f in rh.faults:
        if f.name not in spans:
            continue
        back = [r.get("recovered_s") or 0 for r in recoveries[f.name].values() if r.get("affected")]
        windows.append((f.name, f.start - 0.5, max(f.end, f.start + max(back, default=0.0)) + 5.0))
    server_errors = [a for a in rec.attempts if isinstance(a.status, int) and a.status >= 500 and a.status != 503]
    ws_1011 = [e for e in rec.ws if e.event == "close" and e.detail == "1011"]
    inside, outside = [], []
    for item in [*server_errors, *ws_1011]:
        t = item.t + item.dur if isinstance(item, Attempt) else item.t
        where = next((name for name, lo, hi in windows if lo <= t <= hi), None)
        text = (f"t+{t:.1f}s {item.kind} {item.action} {item.status} {item.code}" if isinstance(item, Attempt)
                else f"t+{t:.1f}s {item.kind} socket closed 1011")
        (inside if where else outside).append(f"{text}" + (f" (in the {where} window)" if where else ""))
    checks.append(Check("no 500 (nor socket 1011) outside the outage windows", not outside,
                        f"{len(outside)} outside, {len(inside)} inside: " + ("; ".join(inside[:8]) or "none"),
                        outside))

    # 12. no hang
    limit = OP_DEADLINE_S + REQUEST_TIMEOUT_S + 5
    slow = [o for o in rec.ops if o.dur > limit and o.action != "chat.send"]
    problems = [f"{info['hung_clients']} client task(s) still running 90 s after the load ended"] \
        if info["hung_clients"] else []
    problems += [f"t+{o.t:.1f}s {o.kind} {o.action} took {o.dur:.1f} s" for o in slow]
    checks.append(Check("no client hang (every request answered or timed out; every client stopped when told)",
                        not problems, f"{len(rec.ops)} operations, {len(rec.attempts)} HTTP attempts, longest "
                        f"{max((o.dur for o in rec.ops), default=0):.1f} s", problems))

    # 13. every fault recovered
    problems = []
    for f in rh.faults:
        if f.skipped:
            problems.append(f"{f.name}: not injected ({f.skipped})")
            continue
        for kind, r in recoveries.get(f.name, {}).items():
            if r.get("affected") and (r.get("recovered_s") is None or r.get("not_back")):
                problems.append(f"{f.name}: {kind} not back ({r})")
    celery = next((f for f in rh.faults if f.name == "celery" and f.start == f.start), None)
    if celery is not None:
        macro = next((j for j in facts["jobs"] if j["kind"] == "macro_reply"), None)
        wall = celery.extra.get("wall_start", 0)
        after = [p for p in (macro or {}).get("processed_at", []) if p > wall + 0.5]
        celery.extra["job_resumed_s"] = (min(after) - wall) if after else None
        celery.extra["job_finished_s"] = ((macro or {}).get("finished_at") or wall) - wall if macro else None
        if not after:
            problems.append("celery: the bulk job never resumed")
    checks.append(Check("every fault recovered (each client kind back; the bulk job resumed)", not problems,
                        f"{sum(1 for f in rh.faults if not f.skipped)} fault(s) injected", problems))

    # the figures
    actions = defaultdict(list)
    for o in rec.ops:
        actions[(o.kind, o.action)].append(o)
    table = []
    for (kind, action), ops in sorted(actions.items()):
        good = [o for o in ops if o.outcome != "error"]
        durs = [o.dur * 1000 for o in good]
        codes = Counter(f"{o.status} {o.code}".strip() for o in ops if o.outcome != "ok")
        table.append({"kind": kind, "action": action, "n": len(ops), "ok": sum(o.outcome == "ok" for o in ops),
                      "codes": dict(codes.most_common()),
                      "expected": sum(o.outcome == "expected" for o in ops),
                      "errors": sum(o.outcome == "error" for o in ops),
                      "per_s": len(good) / info["load_s"], "p50_ms": pct(durs, 50), "p99_ms": pct(durs, 99),
                      "max_ms": max(durs, default=float("nan")),
                      "retries": sum(o.attempts - 1 for o in ops)})
    for name, values in sorted(rec.samples.items()):
        ms = [v * 1000 for v in values]
        table.append({"kind": "chat", "action": name, "n": len(ms), "ok": len(ms), "expected": 0, "errors": 0,
                      "per_s": len(ms) / info["load_s"], "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
                      "max_ms": max(ms, default=float("nan")), "retries": 0, "codes": {}})
    errors_by_fault = {}
    in_any = []
    for f in rh.faults:
        if f.name not in spans:
            continue
        lo, hi = spans[f.name]
        in_any.append((lo, hi))
        counts = Counter()
        for a in rec.attempts:
            if lo <= a.t + a.dur < hi and (is_failure(a) or (isinstance(a.status, int) and a.status >= 400
                                                     and a.status not in EXPECTED.get(a.action, ()))):
                counts[f"{a.kind}: {a.status} {a.code}".strip()] += 1
        for e in rec.ws:
            if lo <= e.t < hi and e.event in ("close", "fail", "error"):
                counts[f"{e.kind}: {WS_LABEL[e.event]} {e.detail}"] += 1
        errors_by_fault[f.name] = dict(counts.most_common())
    steady = Counter()
    for a in rec.attempts:
        if any(lo <= a.t + a.dur < hi for lo, hi in in_any):
            continue
        if is_failure(a) or (isinstance(a.status, int) and a.status >= 400 and a.status not in EXPECTED.get(a.action, ())):
            steady[f"{a.kind} {a.action}: {a.status} {a.code}".strip()] += 1
    for e in rec.ws:
        if e.event in ("close", "fail", "error") and not any(lo <= e.t < hi for lo, hi in in_any):
            steady[f"{e.kind}: {WS_LABEL[e.event]} {e.detail}"] += 1
    exceptions = Counter()
    for line in server_log.splitlines():
        m = re.match(r"^\s*([\w.]+(?:Error|Exception|Timeout|Lost|Unavailable)):?", line)
        if m:
            exceptions[m.group(1)] += 1
        elif "Traceback (most recent call last)" in line:
            exceptions["Traceback"] += 1
        elif "WORKER TIMEOUT" in line or "was sent SIGKILL" in line or "Worker (pid" in line:
            exceptions[line.strip()[-80:]] += 1
    # the bulk jobs' pace: where items stopped being handled for a while (a worker gone)
    jobs_pace = []
    for job in facts["jobs"]:
        times = [p - rec.wall0 for p in job["processed_at"]]
        label = next((k for k, v in rh.jobs.items() if v["id"] == job["id"]), job["kind"])
        run_at = rh.jobs.get(label, {}).get("run_at")
        marks = ([run_at] if run_at is not None else []) + times
        stalls = []
        for before, after in zip(marks, marks[1:]):
            if after - before > 5.0:
                near = [f.name for f in rh.faults if f.start == f.start and before - 2.0 <= f.start <= before + 5.0]
                stalls.append({"from": before, "to": after, "s": after - before, "faults": near})
        jobs_pace.append({"id": job["id"], "kind": job["kind"], "items": len(times), "run_at": run_at,
                          "first": times[0] if times else None, "last": times[-1] if times else None,
                          "stalls": stalls, "counts": job["counts"], "item_statuses": job["items"]})
    figures = {
        "jobs_pace": jobs_pace,
        "actions": table, "errors_by_fault": errors_by_fault, "steady_errors": dict(steady.most_common()),
        "recovery": recoveries, "windows": windows, "server_exceptions": dict(exceptions.most_common(30)),
        "faults": [{"name": f.name, "start": f.start, "end": f.end, "detail": f.detail, "skipped": f.skipped,
                    "extra": f.extra} for f in rh.faults],
        "incident": {"id": rh.incident_id, "raised_at": rh.incident_at, "facts": facts.get("incidents")},
        "jobs": {k: {kk: vv for kk, vv in v.items() if kk != "progress"} for k, v in rh.jobs.items()},
        "remedies": facts["remedies"], "policy": facts["policy"], "merchants": facts["merchants"],
        "notes": rec.notes, "cpu": info["cpu"], "load_s": info["load_s"],
    }
    return checks, figures


def fmt_ms(v: float) -> str:
    return "-" if v != v else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


def fmt_s(v) -> str:
    return "-" if v is None or v != v else f"{v:.1f}"


def print_summary(cfg: RehearsalConfig, checks: list[Check], fig: dict, elapsed: float) -> None:
    print("\n" + "=" * 100)
    print(f"Double-11 rehearsal: {cfg.source}; {os.cpu_count()} cores, load average {cfg.loadavg:.2f} at the start; "
          f"scripts/serve with {cfg.workers} ASGI workers, Celery worker ({cfg.celery_concurrency}) + beat, "
          f"PostgreSQL, private Redis; load {fig['load_s']:.0f} s, run {elapsed:.0f} s")
    cpu = fig["cpu"]
    print(f"CPU over the load: server tree {cpu['server_s']:.0f} s, PostgreSQL {cpu['postgres_s']:.0f} s, Redis "
          f"{cpu['redis_s']:.0f} s, clients {cpu['client_s']:.0f} s; machine busy {cpu['busy_cores']:.2f} of "
          f"{os.cpu_count()} cores")
    print("\nThroughput and latency per action (ms; p50/p99 over answered operations, a retried one timed from "
          "its first attempt)")
    print(f"{'client':<11}{'action':<28}{'n':>6}{'ok':>6}{'expct':>6}{'err':>5}{'/s':>7}{'p50':>8}{'p99':>8}"
          f"{'max':>8}{'retry':>6}")
    for r in fig["actions"]:
        print(f"{r['kind']:<11}{r['action']:<28}{r['n']:>6}{r['ok']:>6}{r['expected']:>6}{r['errors']:>5}"
              f"{r['per_s']:>7.2f}{fmt_ms(r['p50_ms']):>8}{fmt_ms(r['p99_ms']):>8}{fmt_ms(r['max_ms']):>8}"
              f"{r['retries']:>6}")
    answers = [f"{r['action']}: " + ", ".join(f"{k} ×{v}" for k, v in r["codes"].items())
               for r in fig["actions"] if r["codes"]]
    if answers:
        print("Answers other than 2xx (expected ones and errors): " + "; ".join(answers))
    print("\nFaults (seconds after the load began; end = the server side back)")
    for f in fig["faults"]:
        if f["skipped"]:
            print(f"  {f['name']:<9} not injected: {f['skipped']}")
            continue
        print(f"  {f['name']:<9} t+{f['start']:.1f} → t+{f['end']:.1f} ({f['end'] - f['start']:.1f} s): {f['detail']}")
        extra = f["extra"]
        if f["name"] == "celery":
            print(f"            new worker pid {extra.get('new_pid')}; the bulk job resumed "
                  f"{fmt_s(extra.get('job_resumed_s'))} s after the kill, finished {fmt_s(extra.get('job_finished_s'))}"
                  " s after it")
        rec = fig["recovery"].get(f["name"], {})
        touched = {k: v for k, v in rec.items() if v.get("affected")}
        if not touched:
            print("            no client saw an error")
        for kind, r in sorted(touched.items()):
            if kind.endswith("_ws"):
                print(f"            {kind:<11} {r['affected']} socket(s) dropped; all back within "
                      f"{fmt_s(r.get('recovered_s'))} s (p50 {fmt_s(r.get('p50_s'))} s)"
                      + (f", {r['not_back']} never back" if r.get("not_back") else ""))
            else:
                print(f"            {kind:<11} {r['affected']} failed attempt(s); working again "
                      f"{fmt_s(r.get('recovered_s'))} s after the fault")
        errors = fig["errors_by_fault"].get(f["name"], {})
        if errors:
            print("            errors seen: " + ", ".join(f"{k} ×{v}" for k, v in list(errors.items())[:14]))
    print("\nBulk jobs (item by item, from the database)")
    for j in fig["jobs_pace"]:
        span = (f"run at t+{fmt_s(j['run_at'])}, items handled t+{fmt_s(j['first'])} → t+{fmt_s(j['last'])}"
                if j["items"] else "no item handled")
        print(f"  #{j['id']} {j['kind']}: {j['items']} items; {span}; counters {j['counts']} vs items "
              f"{j['item_statuses']}")
        for st in j["stalls"]:
            print(f"            stalled {st['s']:.1f} s (t+{st['from']:.1f} → t+{st['to']:.1f})"
                  + (f" after the {', '.join(st['faults'])} fault" if st["faults"] else ""))
    if fig["steady_errors"]:
        print("\nErrors outside the fault windows: " + ", ".join(f"{k} ×{v}" for k, v in
                                                               list(fig["steady_errors"].items())[:20]))
    else:
        print("\nErrors outside the fault windows: none")
    if fig["server_exceptions"]:
        print("Server log (exceptions by class): " + ", ".join(f"{k} ×{v}" for k, v in
                                                              list(fig["server_exceptions"].items())[:15]))
    rem = fig["remedies"]
    print(f"Remedies during the run: {rem['by_status']}; self-service {rem['self_service']}; routed to approval by "
          f"{rem['reasons']}")
    print("\nChecks")
    for c in checks:
        print(f"  [{'PASS' if c.ok else 'FAIL'}] {c.name}\n         {c.detail}")
        for p in c.problems[:12]:
            print(f"         - {p}")
        if len(c.problems) > 12:
            print(f"         … {len(c.problems) - 12} more")
    failed = [c.name for c in checks if not c.ok]
    print("\n" + ("ALL CHECKS PASSED" if not failed else f"{len(failed)} CHECK(S) FAILED"))


# --- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> RehearsalConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=None, help="length of the load (default 4; --quick 1)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 minute, 12 buyers, 4 agents, a wave of 20 and 60 region tickets")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"which faults to inject: any of {','.join(FAULTS)}, or 'none'")
    parser.add_argument("--no-bulk-remedy", action="store_true", help="no bulk coupon remedy after the macro reply")
    parser.add_argument("--buyers", type=int, default=None)
    parser.add_argument("--agents", type=int, default=None)
    parser.add_argument("--wave", type=int, default=None, help="lost parcels in the wave (at least 6 raise it)")
    parser.add_argument("--region-tickets", type=int, default=None,
                        help="open tickets already in the wave's region, linked to the incident by a query")
    parser.add_argument("--workers", type=int, default=2, help="ASGI workers (WEB_WORKERS)")
    parser.add_argument("--ref", default="worktree", help="code to run: 'worktree' (default) or a git commit")
    parser.add_argument("--keep-snapshot", action="store_true")
    parser.add_argument("--json", dest="json_path", help="also write the figures and checks to this JSON file")
    a = parser.parse_args(argv)
    faults = [] if a.faults.strip() == "none" else [x.strip() for x in a.faults.split(",") if x.strip()]
    if set(faults) - set(FAULTS):
        parser.error(f"--faults: any of {','.join(FAULTS)} or none")
    quick = {"minutes": 1.0, "buyers": 12, "agents": 4, "wave": 20, "region_tickets": 60, "msgs_per_ticket": 4,
             "msg_period_s": 4.0, "agent_quota": 3, "budget_fen": 6_000}
    full = {"minutes": 4.0, "buyers": 40, "agents": 8, "wave": 120, "region_tickets": 250, "msgs_per_ticket": 8,
            "msg_period_s": 6.0, "agent_quota": 6, "budget_fen": 25_000}
    base = quick if a.quick else full
    values = {k: (getattr(a, k) if getattr(a, k, None) is not None else v) for k, v in base.items()}
    if not 0.25 <= values["minutes"] <= 30 or not 2 <= values["buyers"] <= 400 or not 1 <= values["agents"] <= 50 \
            or not 6 <= values["wave"] <= 5000 or not 0 <= values["region_tickets"] <= 20000 or not 1 <= a.workers <= 8:
        parser.error("--minutes 0.25..30, --buyers 2..400, --agents 1..50, --wave 6..5000, --region-tickets "
                     "0..20000, --workers 1..8")
    return RehearsalConfig(
        database_url=os.environ.get("BENCH_REHEARSAL_DATABASE_URL",
                                    "postgres://postgres@127.0.0.1:5432/cs_bench_rehearsal"),
        redis_url="redis://127.0.0.1:1/1",  # replaced by the private server's once it runs
        json_path=a.json_path, ref=a.ref, keep_snapshot=a.keep_snapshot, workers=a.workers, quick=a.quick,
        faults=[f for f in FAULTS if f in faults], bulk_remedy=not a.no_bulk_remedy, **values)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    started = time.perf_counter()
    check_targets(cfg)
    cfg.loadavg = os.getloadavg()[0]
    log(f"CS Workbench Double-11 rehearsal; {os.cpu_count()} cores, load average {cfg.loadavg:.2f}; "
        f"{cfg.minutes:g} min of load, faults {', '.join(cfg.faults) or 'none'}; work directory {cfg.workdir}")
    redis = PrivateRedis(cfg.workdir)
    redis.start()
    cfg.redis_url = redis.url
    log(f"private redis-server on port {redis.port}")
    serve: Serve | None = None
    try:
        snapshot(cfg)
        recreate_database(cfg)
        manage(cfg, "migrate", "--noinput", "-v0")
        manage(cfg, *seed_demo(cfg))
        t = time.perf_counter()
        spec = {"agents": cfg.agents, "buyers": cfg.buyers, "wave": cfg.wave, "region_tickets": cfg.region_tickets,
                "region": WAVE_REGION, "carrier": WAVE_CARRIER, "agent_quota": cfg.agent_quota,
                "buyer_cap": cfg.buyer_cap, "budget_fen": cfg.budget_fen}
        data = run_django(cfg, SETUP, json.dumps(spec, ensure_ascii=False))
        log(f"set-up: {cfg.buyers} buyers with orders, {cfg.agents} agents, 2 supervisors, {cfg.wave} parcels and "
            f"{cfg.region_tickets} open tickets in {WAVE_REGION}: {time.perf_counter() - t:.1f} s")
        serve = Serve(cfg, redis)
        serve.start()
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass

        async def go() -> tuple[Rehearsal, dict]:
            rh = Rehearsal(cfg, serve, redis, data)
            return rh, await rh.run()

        rh, info = asyncio.run(go())
        serve.stop()
        log("checking the database")
        spec = {"started_wall": rh.rec.wall0, "cids": list(rh.sent), "hold_slack_s": HOLD_SLACK_S,
                "socket_tickets": sorted({s.ticket for s in rh.socks})}
        facts = run_django(cfg, CHECKS, stdin=json.dumps(spec))
        env = cfg.app_env()
        result = subprocess.run([PYTHON, "manage.py", "verify_ledger"], cwd=cfg.app, env={**env, "DB_POOL": "0"},
                                capture_output=True, text=True, timeout=300)
        ledger = (result.returncode == 0, (result.stdout + result.stderr).strip())
        checks, fig = analyse(cfg, rh, info, facts, ledger, serve.log_path.read_text(errors="replace"))
        elapsed = time.perf_counter() - started
        print_summary(cfg, checks, fig, elapsed)
        if cfg.json_path:
            Path(cfg.json_path).write_text(json.dumps({
                "source": cfg.source, "cores": os.cpu_count(), "load_average_at_start": cfg.loadavg,
                "minutes": cfg.minutes, "quick": cfg.quick, "workers": cfg.workers, "faults_chosen": cfg.faults,
                "elapsed_s": elapsed, "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail,
                                                  "problems": c.problems[:50]} for c in checks], **fig,
            }, indent=2, ensure_ascii=False, default=str))
        log(f"done in {elapsed:.0f} s; logs in {cfg.workdir} (serve.log, redis/)")
        return 0 if all(c.ok for c in checks) else 1
    finally:
        if serve is not None:
            serve.stop()
        redis.kill()
        if not cfg.keep_snapshot:
            shutil.rmtree(cfg.app, ignore_errors=True) if cfg.app != ROOT else None


if __name__ == "__main__":
    sys.exit(main())
