"""Benchmark: 16 agents applying remedies through the HTTP API on PostgreSQL,
beside ``pgbench -N`` on the same server in the same run.

    .venv/bin/python bench/remedies.py [--seconds 20] [--concurrency 16] [--pgbench-clients 16] [--server prod|daphne] [--workers 2]

Uses its own databases (``cs_bench_remedies`` for the app, ``cs_bench_pgbench``
for pgbench; loopback only) and Redis db 7. Prints remedies/s, p50/p99 and the
status codes; the remedies alone first (no pgbench: what the machine gives them,
and the server's, PostgreSQL's and the client's CPU per remedy), then beside
pgbench with the cores each side took; pgbench tps alone and during the load; the ratio of remedies/s
to pgbench tps; where one remedy's time goes (SQL statements, time in SQL,
time waiting for the budget-day row lock); and the two exactness checks
(``verify_ledger``, budget spent = sum of executed costs).

The server comes from the harness (``bench/harness.py``): ``--server prod``
(default) runs gunicorn with ``--workers`` uvicorn workers as production does,
``--server daphne`` one daphne process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (CpuMeter, Server, add_server_args, check_server_args, connections_by_process,  # noqa: E402
                           cpu_by_command, proc_cpu_s, scheduler_grouping)
PY = sys.executable
APP_DB = "postgres://postgres@127.0.0.1:5432/cs_bench_remedies"
PGBENCH_DB = "cs_bench_pgbench"
REDIS = "redis://127.0.0.1:6379/7"
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH")},
    "DATABASE_URL": APP_DB, "REDIS_URL": REDIS, "DEBUG": "0", "SECRET_KEY": "bench-remedies-only",
    "ALLOWED_HOSTS": "127.0.0.1,localhost", "SECURE_SSL_REDIRECT": "0", "SECURE_COOKIES": "0",
    "SECURE_HSTS_SECONDS": "0", "DJANGO_SETTINGS_MODULE": "cs_portal.settings", "PYTHONPATH": str(ROOT),
}

SETUP = r'''
import json, django, sys
django.setup()
from django.utils import timezone
from accounts import roles
from accounts.services import create_user, issue_api_token
from compensation import services as comp
from merchants import services as merchant_services
from merchants.models import Merchant, Order, Shipment
from tickets import services as tickets
agents_n, per_agent = int(sys.argv[1]), int(sys.argv[2])
lead = create_user(username="bench_lead", password=None, role=roles.SUPERVISOR)
comp.update_policy(actor=lead, changes={"agent_monthly_quota": 10**6, "buyer_daily_cap": 10**6,
                                        "daily_budget_fen": 10**11, "value_cap_fen": 10**6})
merchant = Merchant.objects.create(code="BENCH", name="基准商家")
buyers = [create_user(username=f"bench_buyer{i}", password=None, role=roles.BUYER) for i in range(64)]
out = {"agents": []}
n = 0
for a in range(agents_n):
    agent = create_user(username=f"bench_agent{a}", password=None, role=roles.AGENT)
    ids = []
    for t in range(per_agent):
        n += 1
        buyer = buyers[n % len(buyers)]
        order = Order.objects.create(order_no=f"BR{n:08d}", buyer=buyer, merchant=merchant, amount_fen=9_900,
                                     status="shipped", placed_at=timezone.now(), items=[{"sku": "S", "name": "x", "qty": 1, "price_fen": 9900}])
        Shipment.objects.create(order=order, carrier="顺丰速运", tracking_no=f"SFB{n:09d}", status="in_transit", shipped_at=timezone.now())
        merchant_services.record_order_paid(order=order)
        ticket = tickets.open_ticket(actor=buyer, category="logistics_delay", subject="延误", body="快递延误", order_id=order.pk)
        tickets.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
        ids.append(ticket.pk)
    out["agents"].append({"token": issue_api_token(user=agent).key, "tickets": ids})
print(json.dumps(out))
'''

PROFILE = r'''
import django, json, time
django.setup()
from django.db import connection
from accounts.models import User
from tickets.models import Ticket
from compensation import services
agent = User.objects.get(username="bench_agent0")
tickets = list(Ticket.objects.filter(assignee=agent).order_by("pk")[:2])
# warm: the first call pays for imports and caches
services.apply_remedy(actor=agent, ticket_id=tickets[0].pk, kind="coupon", reason="warm-up", idempotency_key="warm-up")
ticket = tickets[1]
times = []
def wrapper(execute, sql, params, many, context):
    start = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        times.append((time.perf_counter() - start, sql))
start = time.perf_counter()
with connection.execute_wrapper(wrapper):
    services.apply_remedy(actor=agent, ticket_id=ticket.pk, kind="resend", with_coupon=True, reason="profile",
                          idempotency_key=f"profile-{ticket.pk}")
wall = time.perf_counter() - start
lock = sum(t for t, sql in times if "compensation_budgetday" in sql and "FOR UPDATE" in sql)
# the budget-day row lock of the old design; None once the budget is spent in one conditional step
held_from = next((i for i, (_, sql) in enumerate(times) if "compensation_budgetday" in sql and "FOR UPDATE" in sql),
                 None)
held_sql = sum(t for t, _ in times[held_from:]) if held_from is not None else 0.0
print(json.dumps({"statements": len(times), "sql_ms": 1000 * sum(t for t, _ in times), "wall_ms": 1000 * wall,
                  "budget_lock_ms": 1000 * lock, "sql_under_lock_ms": 1000 * held_sql,
                  "statements_under_lock": None if held_from is None else len(times) - held_from}))
'''

CHECKS = r'''
import django, json
django.setup()
from django.db.models import Sum
from compensation.ledger import verify
from compensation.models import BudgetDay, Remedy
executed = [r.cost_fen for r in Remedy.objects.filter(status="executed")]
spent = BudgetDay.objects.aggregate(s=Sum("spent_fen"))["s"] or 0
v = verify()
print(json.dumps({"ledger_ok": v.ok, "ledger_entries": v.entries, "spent_fen": spent, "executed_cost_fen": sum(executed),
                  "executed": len(executed), "pending": Remedy.objects.filter(status="pending_approval").count()}))
'''


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=ENV, check=True, capture_output=True, text=True, **kwargs)


def psql(sql: str, db: str = "postgres") -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qc", sql], check=True, capture_output=True)


def pgbench(seconds: int, clients: int) -> float:
    out = subprocess.run(["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-N", "-c", str(clients), "-j", "2",
                          "-T", str(seconds), PGBENCH_DB], check=True, capture_output=True, text=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("tps"))
    return float(line.split("=")[1].split()[0])


async def load(base: str, agents: list[dict], seconds: float, concurrency: int,
               key_prefix: str = "") -> tuple[list[float], dict[int, int], dict[str, int]]:
    latencies: list[float] = []
    codes: dict[int, int] = {}
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    kinds = [{"kind": "coupon"}, {"kind": "resend", "with_coupon": True}, {"kind": "refund", "amount_fen": 100}]

    async def agent_loop(client: httpx.AsyncClient, index: int, spec: dict) -> None:
        headers = {"Authorization": f"Token {spec['token']}"}
        n = 0
        while time.monotonic() < deadline:
            ticket = spec["tickets"][n % len(spec["tickets"])]
            body = {**kinds[n % len(kinds)], "reason": "双十一延误补偿"}
            start = time.perf_counter()
            for attempt in range(1, 6):
                try:
                    response = await client.post(f"{base}/api/v1/tickets/{ticket}/remedies/", json=body,
                                                 headers={**headers, "Idempotency-Key": f"{key_prefix}a{index}-{n}"})
                    break
                except httpx.TransportError as exc:
                    # a connection that failed under the request: retried with the same
                    # Idempotency-Key, as API.md tells a client to (applied at most once);
                    # a server that fails five times running is down, and the run ends
                    if attempt == 5:
                        raise
                    name = f"{type(exc).__name__} ({type(exc.__cause__ or exc.__context__).__name__}: "\
                           f"{exc.__cause__ or exc.__context__ or exc})"
                    errors[name] = errors.get(name, 0) + 1
                    print(f"[{time.strftime('%H:%M:%S')}] agent {index}, remedy {n}: {name} after "
                          f"{time.perf_counter() - start:.2f} s; retried", file=sys.stderr)
            latencies.append((time.perf_counter() - start) * 1000)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
            n += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(agent_loop(client, i, agents[i % len(agents)]) for i in range(concurrency)))
    return latencies, codes, errors


class WorkerSplit:
    """How a phase fell on the server's workers: each one's accepted connections
    halfway through, and each one's share of a core over the phase."""

    def __init__(self, server: Server, seconds: float) -> None:
        self.server, self.seconds = server, seconds
        self.connections: dict[int, int] = {}

    def __enter__(self) -> "WorkerSplit":
        self.pids = sorted(self.server.worker_pids())
        self.cpu0 = {pid: proc_cpu_s(pid) for pid in self.pids}
        self.t0 = time.monotonic()
        self.timer = threading.Timer(self.seconds / 2, self._sample)
        self.timer.start()
        return self

    def _sample(self) -> None:
        self.connections = connections_by_process(self.server.port, self.pids)

    def __exit__(self, *exc) -> None:
        self.timer.cancel()
        wall = time.monotonic() - self.t0
        self.cores = {pid: (proc_cpu_s(pid) - self.cpu0[pid]) / wall for pid in self.pids}

    def __str__(self) -> str:
        return (f"connections {'/'.join(str(self.connections.get(pid, '?')) for pid in self.pids)}, "
                f"cores {'/'.join(f'{self.cores[pid]:.2f}' for pid in self.pids)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tickets-per-agent", type=int, default=30)
    parser.add_argument("--pgbench-clients", type=int, default=16, help="pgbench's clients (default 16)")
    add_server_args(parser)
    args = parser.parse_args()
    check_server_args(parser, args)

    t0 = time.perf_counter()
    for db in ("cs_bench_remedies", PGBENCH_DB):
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        psql(f'CREATE DATABASE "{db}"')
    subprocess.run(["redis-cli", "-n", "7", "flushdb"], check=True, capture_output=True)
    subprocess.run(["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-i", "-q", "-s", "10", PGBENCH_DB], check=True,
                   capture_output=True)
    run([PY, "manage.py", "migrate", "--noinput", "-v0"])
    agents = json.loads(run([PY, "-c", SETUP, str(args.concurrency), str(args.tickets_per_agent)]).stdout.strip().splitlines()[-1])["agents"]
    psql("VACUUM ANALYZE", "cs_bench_remedies")
    print(f"set up in {time.perf_counter() - t0:.0f}s: {args.concurrency} agents × {args.tickets_per_agent} tickets")

    server = Server(kind=args.server, workers=args.workers, app=ROOT, env=ENV,
                    log_dir=Path(tempfile.mkdtemp(prefix="cs-bench-remedies-")), label="remedies")
    server.start()
    base = server.base
    try:
        asyncio.run(load(base, agents, 3, 4))  # warm-up
        # the remedies alone first: what the machine gives them when nothing else runs,
        # and where one remedy's CPU goes (the server's processes, PostgreSQL's)
        pg0 = cpu_by_command(("postgres",))
        with CpuMeter(server) as alone, WorkerSplit(server, args.seconds) as alone_split:
            alone_latencies, _, alone_errors = asyncio.run(load(base, agents, args.seconds, args.concurrency, key_prefix="alone-"))
        alone_pg = cpu_by_command(("postgres",)) - pg0
        tps_alone = pgbench(args.seconds, args.pgbench_clients)
        pg0 = cpu_by_command(("postgres",))
        with CpuMeter(server) as beside_cpu, WorkerSplit(server, args.seconds) as beside_split, subprocess.Popen(
                ["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-N", "-c", str(args.pgbench_clients), "-j", "2",
                 "-T", str(args.seconds), PGBENCH_DB], stdout=subprocess.PIPE, text=True) as beside:
            start = time.perf_counter()
            latencies, codes, errors = asyncio.run(load(base, agents, args.seconds, args.concurrency))
            elapsed = time.perf_counter() - start
            out, _ = beside.communicate()
        beside_pg = cpu_by_command(("postgres",)) - pg0
        tps_beside = float(next(line for line in out.splitlines() if line.startswith("tps")).split("=")[1].split()[0])
    finally:
        server.stop()

    profile = json.loads(run([PY, "-c", PROFILE]).stdout.strip().splitlines()[-1])
    checks = json.loads(run([PY, "-c", CHECKS]).stdout.strip().splitlines()[-1])
    latencies.sort()
    done = len(latencies)
    rate = done / elapsed
    print(f"\nremedies through the API: {done} in {elapsed:.1f}s = {rate:.1f}/s with {args.concurrency} agents "
          f"({server.label}); p50 {statistics.median(latencies):.0f} ms, p99 {latencies[int(done * 0.99) - 1]:.0f} ms; "
          f"status codes {dict(sorted(codes.items()))}")
    for phase, failed in (("alone", alone_errors), ("beside pgbench", errors)):
        for name, count in failed.items():
            print(f"  {phase}: {count} × {name}; each retried with the same Idempotency-Key")
    alone_n = len(alone_latencies)
    alone_rate = alone_n / alone.wall
    alone_latencies.sort()
    print(f"remedies alone (no pgbench): {alone_rate:.1f}/s, p50 {statistics.median(alone_latencies):.0f} ms, "
          f"p99 {alone_latencies[int(alone_n * 0.99) - 1]:.0f} ms; per remedy "
          f"{1000 * alone.server / alone_n:.1f} ms server CPU, {1000 * alone_pg / alone_n:.1f} ms PostgreSQL CPU, "
          f"{1000 * alone.client / alone_n:.1f} ms client CPU; machine {alone.machine_cores:.2f} cores busy")
    print(f"beside pgbench: server {beside_cpu.server / beside_cpu.wall:.2f} cores "
          f"({1000 * beside_cpu.server / done:.1f} ms per remedy), PostgreSQL (both loads) "
          f"{beside_pg / beside_cpu.wall:.2f} cores, client {beside_cpu.client / beside_cpu.wall:.2f}; "
          f"machine {beside_cpu.machine_cores:.2f} cores busy")
    if server.kind == "prod":
        print(f"per worker (each one's accepted connections halfway, its share of a core): alone {alone_split}; "
              f"beside pgbench {beside_split}")
    print(f"pgbench -N, {args.pgbench_clients} clients: {tps_alone:.0f} tps alone, {tps_beside:.0f} tps beside the API load")
    print(f"ratio remedies/s : pgbench tps (alone) = 1 : {tps_alone / rate:.0f}  ({rate / tps_alone:.4f})")
    if profile["statements_under_lock"] is None:
        lock_note = "no budget-day row lock (SELECT ... FOR UPDATE) taken"
    else:
        lock_note = (f"taking the budget-day lock {profile['budget_lock_ms']:.1f} ms; then "
                     f"{profile['statements_under_lock']} statements ({profile['sql_under_lock_ms']:.1f} ms of SQL) "
                     "run while it is held, until commit")
    print(f"one remedy in-process (resend + coupon): {profile['statements']} SQL statements, "
          f"{profile['sql_ms']:.1f} ms in SQL of {profile['wall_ms']:.1f} ms wall; {lock_note}")
    print(f"exactness: ledger verified={checks['ledger_ok']} ({checks['ledger_entries']} entries); budget spent "
          f"{checks['spent_fen']} fen = executed costs {checks['executed_cost_fen']} fen: "
          f"{checks['spent_fen'] == checks['executed_cost_fen']}; executed {checks['executed']}, pending {checks['pending']}")
    print(f"note: client, the server ({server.label}), PostgreSQL and pgbench share this machine's 2 cores; "
          f"{scheduler_grouping()}; server log {server.log_path}")


if __name__ == "__main__":
    main()
