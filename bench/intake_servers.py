"""Ticket intake through each way of serving the app, on the same data, alternating.

    .venv/bin/python bench/intake_servers.py [--seconds 15] [--clients 8] [--workers 1,2]
                                             [--servers daphne,prod] [--rounds 2]

The peers' harness (``../shared/peers/compare``) serves the project as its README once
did: daphne, one process per port, the clients spread over the ports. Production runs
gunicorn with uvicorn workers on one port (``--server prod`` of ``bench/harness.py``,
as ``scripts/serve`` does). This measures both on one database in one run, ``--rounds``
times in alternating order, so that what the server itself costs per request is read
beside the same app: ``POST /api/v1/tickets/`` by 20 buyers (tokens) on their own
orders, ``--clients`` clients, ``--seconds`` after a 3 s warm-up.

Per server and worker count it prints creates/s, p50/p99, the server's CPU per create
(its whole process tree), PostgreSQL's (every ``postgres`` process: run it on an
otherwise idle database server), the client's, and how many cores each serving
process took (a worker that took most of the connections shows). ``--servers granian`` adds granian
(ASGI, uvloop, one process per worker) when its executable is in this virtualenv; it is
not a dependency of the project.

Uses its own database (``cs_bench_intake``, loopback PostgreSQL) and Redis db 11.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    Config, Server, cpu_by_command, free_port, pct, proc_cpu_s, recreate_database, tree_cpu_s,
)
from bench.remedies import SETUP  # noqa: E402

PY = sys.executable
DB = "cs_bench_intake"
REDIS_DB = "11"
GRANIAN = Path(PY).parent / "granian"
CFG = Config(database_url=f"postgres://postgres@127.0.0.1:5432/{DB}", redis_url=f"redis://127.0.0.1:6379/{REDIS_DB}")
ENV = {**CFG.app_env(), "DJANGO_SETTINGS_MODULE": "cs_portal.settings", "PYTHONPATH": str(ROOT)}

BUYERS = r'''
import json, django
django.setup()
from accounts.models import User
from accounts.services import issue_api_token
from merchants.models import Order
out = []
for buyer in User.objects.filter(username__startswith="bench_buyer").order_by("pk")[:20]:
    orders = list(Order.objects.filter(buyer=buyer).order_by("pk").values_list("pk", flat=True))
    if orders:
        out.append({"token": issue_api_token(user=buyer).key, "orders": orders})
print(json.dumps(out))
'''


def run(args: list[str]) -> str:
    return subprocess.run([PY, *args], cwd=ROOT, env=ENV, check=True, capture_output=True, text=True).stdout


def set_up() -> list[dict]:
    recreate_database(CFG)  # refuses anything but a loopback database named for a bench
    run(["manage.py", "migrate", "--noinput", "-v0"])
    run(["-c", SETUP, "2", "40"])  # 64 buyers, 80 shipped orders
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-qc", "VACUUM ANALYZE"], check=True,
                   capture_output=True)
    return json.loads(run(["-c", BUYERS]).strip().splitlines()[-1])


class Served:
    """One layout: its processes, the addresses the clients spread over, its CPU."""

    def __init__(self, kind: str, workers: int, log_dir: Path) -> None:
        self.kind, self.workers, self.log_dir = kind, workers, log_dir
        self.servers: list[Server] = []
        self.granian: subprocess.Popen | None = None
        self.bases: list[str] = []

    @property
    def label(self) -> str:
        return {"daphne": f"daphne, {self.workers} process(es) on as many ports",
                "prod": f"gunicorn + {self.workers} uvicorn worker(s)",
                "granian": f"granian, {self.workers} worker(s)"}[self.kind]

    def start(self) -> None:
        if self.kind == "daphne":  # as the peers' harness serves it
            self.servers = [Server(kind="daphne", workers=1, app=ROOT, env=ENV, log_dir=self.log_dir,
                                   label=f"intake-{n}") for n in range(self.workers)]
        elif self.kind == "prod":
            self.servers = [Server(kind="prod", workers=self.workers, app=ROOT, env=ENV, log_dir=self.log_dir,
                                   label="intake")]
        for server in self.servers:
            server.start()
            self.bases.append(server.base)
        if self.kind == "granian":
            port = free_port()
            self.granian = subprocess.Popen(
                [str(GRANIAN), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
                 "--workers", str(self.workers), "--log-level", "warning", "cs_portal.asgi:application"],
                cwd=ROOT, env=ENV, stdout=open(self.log_dir / "granian.log", "a"), stderr=subprocess.STDOUT)
            self.bases = [f"http://127.0.0.1:{port}"]
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(self.bases[0] + "/api/v1/tickets/", timeout=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or self.granian.poll() is not None:
                        raise SystemExit(f"granian did not answer; log {self.log_dir / 'granian.log'}")
                    time.sleep(0.2)

    def processes(self) -> list[int]:
        """The processes that serve requests: gunicorn's and granian's workers, each daphne."""
        if self.granian is not None:
            from bench.harness import children_of

            return children_of(self.granian.pid)
        return [pid for server in self.servers for pid in server.worker_pids()]

    def cpu_s(self) -> float:
        if self.granian is not None:
            return tree_cpu_s(self.granian.pid)
        return sum(server.cpu_s() for server in self.servers)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.granian is not None:
            self.granian.terminate()
            self.granian.wait(30)


async def post_tickets(bases: list[str], buyers: list[dict], clients: int, seconds: float,
                       offset: int) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    pools = [httpx.AsyncClient(base_url=base, limits=limits, timeout=30) for base in bases]
    deadline = time.monotonic() + seconds

    async def client(i: int) -> None:
        pool = pools[i % len(pools)]
        n = offset + i
        while time.monotonic() < deadline:
            buyer = buyers[n % len(buyers)]
            body = {"category": "logistics_delay", "subject": f"快递没到 {n}", "body": "已经五天了",
                    "order_id": buyer["orders"][n % len(buyer["orders"])]}
            start = time.perf_counter()
            response = await pool.post("/api/v1/tickets/", json=body, headers={"Authorization": f"Token {buyer['token']}"})
            if response.status_code != 201:
                raise SystemExit(f"intake answered {response.status_code}: {response.text[:300]}")
            latencies.append((time.perf_counter() - start) * 1000)
            n += clients

    try:
        await asyncio.gather(*(client(i) for i in range(clients)))
    finally:
        for pool in pools:
            await pool.aclose()
    return latencies


def measure(served: Served, buyers: list[dict], clients: int, seconds: float, offset: int) -> dict:
    asyncio.run(post_tickets(served.bases, buyers, clients, 3, offset))  # warm-up
    processes = served.processes()
    each0 = [proc_cpu_s(pid) for pid in processes]
    server0, pg0, client0, t0 = served.cpu_s(), cpu_by_command(("postgres",)), time.process_time(), time.perf_counter()
    latencies = asyncio.run(post_tickets(served.bases, buyers, clients, seconds, offset + 10**6))
    wall = time.perf_counter() - t0
    each = [proc_cpu_s(pid) - before for pid, before in zip(processes, each0)]
    n = len(latencies)
    return {"server": served.kind, "workers": served.workers, "label": served.label, "creates": n,
            "per_s": n / wall, "p50_ms": statistics.median(latencies), "p99_ms": pct(latencies, 99),
            "server_ms": 1000 * (served.cpu_s() - server0) / n,
            "pg_ms": 1000 * (cpu_by_command(("postgres",)) - pg0) / n,
            "client_ms": 1000 * (time.process_time() - client0) / n,
            # how the load fell on the serving processes: each one's cores over the window
            "cores_each": [round(cpu / wall, 2) for cpu in each]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--servers", default="daphne,prod")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="also write the runs to this file")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.servers.split(",")]
    for kind in kinds:
        if kind not in ("daphne", "prod", "granian"):
            parser.error(f"unknown server {kind!r}")
        if kind == "granian" and not GRANIAN.exists():
            parser.error(f"--servers granian: no {GRANIAN} (pip install granian into this virtualenv)")

    t0 = time.perf_counter()
    buyers = set_up()
    print(f"set up in {time.perf_counter() - t0:.0f}s: {len(buyers)} buyers with orders", flush=True)
    log_dir = Path(tempfile.mkdtemp(prefix="cs-bench-intake-servers-"))
    runs = []
    offset = 0
    for rnd in range(args.rounds):
        for workers in [int(w) for w in args.workers.split(",")]:
            order = kinds if rnd % 2 == 0 else list(reversed(kinds))  # mirrored: drift falls on both
            for kind in order:
                served = Served(kind, workers, log_dir)
                served.start()
                try:
                    result = measure(served, buyers, args.clients, args.seconds, offset)
                finally:
                    served.stop()
                offset += 10**7
                runs.append(result)
                print(f"round {rnd + 1}, {result['label']}: {result['per_s']:.1f} creates/s, p50 "
                      f"{result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms; per create: server "
                      f"{result['server_ms']:.2f} ms CPU, PostgreSQL {result['pg_ms']:.2f}, client "
                      f"{result['client_ms']:.2f}; each serving process's cores {result['cores_each']}", flush=True)
    print(f"\nsummary ({args.clients} clients, {args.seconds:.0f} s per run, median of {args.rounds} round(s)):")
    for workers in [int(w) for w in args.workers.split(",")]:
        for kind in kinds:
            mine = [r for r in runs if r["server"] == kind and r["workers"] == workers]
            print(f"  {mine[0]['label']:<42} {statistics.median(r['per_s'] for r in mine):7.1f} creates/s, "
                  f"server {statistics.median(r['server_ms'] for r in mine):5.2f} ms CPU per create")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
