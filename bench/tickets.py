"""Tickets benchmark: intake through the API and the queue reads at two sizes.

    .venv/bin/python bench/tickets.py [--tickets-large 100000] [--requests 200]
                                      [--concurrency 16] [--ref worktree|HEAD|<commit>]
                                      [--explain] [--json out.json]
                                      [--server prod|daphne] [--workers 2]

What it does, on its own PostgreSQL database (never anyone else's):

0. copies the code it measures into a temporary directory (``--ref worktree``,
   the default: the working tree's tracked and untracked files; or a commit
   through ``git archive``) and runs ``collectstatic`` there, so edits made
   while it runs cannot change what it measures half-way and the production
   static storage has its manifest;
1. drops and recreates ``cs_bench`` (``BENCH_DATABASE_URL``; the name must
   contain "bench" and the host must be loopback), empties Redis db 5
   (``BENCH_REDIS_URL``), runs ``manage.py migrate`` and ``manage.py seed_demo``,
   tops up to 1,000 tickets with ``seed_demo --tickets N`` and ANALYZEs;
2. starts the server on a free loopback port (``--server prod``, the default:
   gunicorn with ``--workers`` uvicorn workers as production runs it;
   ``--server daphne``: one daphne process; DEBUG=0, production settings with
   the https-only switches turned off through the env vars the settings read),
   waits until it answers, then measures, one client at a time after a
   warm-up, the latency of the queue list (``GET /api/v1/tickets/`` as agent1
   with a token: default page, ``?status=open``, ``?overdue=true``) and of
   the console page (``GET /console/`` with agent1's session), and then ticket
   intake (``POST /api/v1/tickets/`` as buyer1…buyer20 with tokens, on their
   own orders) with ``--concurrency`` clients;
3. stops the server, tops up to ``--tickets-large`` tickets, ANALYZEs, restarts
   it and measures again;
4. prints the SQL each read issues (count and time per query, from an
   in-process probe; plans with ``--explain``) and a summary table with the
   large/small latency ratio per endpoint against the 1.5x goal for the list.

Client and server share the machine (2 cores here): the client is kept
light (one asyncio loop, a bounded connection pool, sequential latency
probes) and its CPU time is printed beside the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

if __package__ in (None, ""):  # run as a script: bench/ is not on the path as a package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402  (the harness every benchmark shares)
    PYTHON,
    Config,
    CpuMeter,
    Server,
    add_server_args,
    check_server_args,
    check_targets,
    log,
    manage,
    pct,
    recreate_database,
    seed_demo,
    snapshot,
)

PROBE = str(Path(__file__).resolve().parent / "django_probe.py")
PASSWORD = "demo12345"
BUYERS = [f"buyer{i}" for i in range(1, 21)]
AGENT = "agent1"

READS = [
    ("list", "GET /api/v1/tickets/", "/api/v1/tickets/"),
    ("list_open", "GET /api/v1/tickets/?status=open", "/api/v1/tickets/?status=open"),
    ("list_overdue", "GET /api/v1/tickets/?overdue=true", "/api/v1/tickets/?overdue=true"),
    ("console", "GET /console/", "/console/"),
]
LIST_GOAL = 1.5  # list latency at the large size within 1.5x of the small size
BUSY_WARN_CORES = 1.4  # machine CPU use during the sequential reads above which others competed


# --- database and app setup ----------------------------------------------------


@dataclass
class TicketsConfig(Config):
    """The harness's ``Config`` plus this benchmark's sizes and loads."""

    tickets_small: int = 1000
    tickets_large: int = 100000
    requests: int = 200
    warmup: int = 20
    intake_requests: int = 800
    intake_seconds: float = 60
    concurrency: int = 16
    explain: bool = False


def probe(cfg: TicketsConfig, *args: str, timeout: float = 300) -> str:
    env = cfg.app_env()
    env["ALLOWED_HOSTS"] = "127.0.0.1,localhost,testserver"  # the probe uses Django's test client
    result = subprocess.run(
        [PYTHON, PROBE, *args], cwd=cfg.app, env=env,
        capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"probe {args[0]} failed: {result.stderr.strip()[-1500:]}")
    return result.stdout.strip()


def sql_one(cfg: TicketsConfig, query: str):
    with psycopg.connect(cfg.database_url, autocommit=True) as conn:
        return conn.execute(query).fetchone()[0]


def ticket_count(cfg: TicketsConfig) -> int:
    return sql_one(cfg, "SELECT count(*) FROM tickets_ticket")


def top_up(cfg: TicketsConfig, target: int) -> int:
    have = ticket_count(cfg)
    if have < target:
        manage(cfg, *seed_demo(cfg), "--tickets", str(target - have), timeout=1200)
    with psycopg.connect(cfg.database_url, autocommit=True) as conn:
        # steady-state statistics, as autovacuum would have them on a live system
        conn.execute("VACUUM ANALYZE tickets_ticket")
        conn.execute("VACUUM ANALYZE tickets_message")
    have = ticket_count(cfg)
    log(f"{have} tickets in the database (VACUUM ANALYZE done)")
    return have


# --- logins --------------------------------------------------------------------


def get_token(client: httpx.Client, username: str) -> str:
    for _ in range(5):
        r = client.post("/api/v1/auth/token/", json={"username": username, "password": PASSWORD})
        if r.status_code == 429:  # 30/min per address: wait as told
            time.sleep(min(65, float(r.headers.get("Retry-After", "10"))))
            continue
        if r.status_code != 200:
            raise SystemExit(f"token for {username}: HTTP {r.status_code} {r.text[:200]}")
        return r.json()["token"]
    raise SystemExit(f"token for {username}: still throttled")


def buyer_orders(client: httpx.Client, token: str) -> list[int]:
    r = client.get("/api/v1/orders/", params={"page_size": 200}, headers={"Authorization": f"Token {token}"})
    r.raise_for_status()
    return [o["id"] for o in r.json()["results"]]


def login_session(cfg: TicketsConfig, server: Server, client: httpx.Client) -> str:
    """Log agent1 in through the login form; fall back to a server-made session
    when the form cannot be used (the page is being rebuilt). Returns how."""
    why = ""
    r = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"', r.text) or re.search(
        r'value="([^"]+)"\s+name="csrfmiddlewaretoken"', r.text
    )
    if r.status_code == 200 and token and "csrftoken" in client.cookies:
        r = client.post(
            "/accounts/login/",
            data={"csrfmiddlewaretoken": token.group(1), "username": AGENT, "password": PASSWORD, "next": "/console/"},
            headers={"Referer": server.base + "/accounts/login/"},
        )
        if r.status_code in (302, 303) and "sessionid" in client.cookies:
            return "login form (GET /accounts/login/, POST with csrfmiddlewaretoken)"
        why = f"login POST answered {r.status_code} without a session"
    elif r.status_code != 200:
        why = f"GET /accounts/login/ answered {r.status_code}"
        if r.status_code >= 500 and (err := server.last_error()):
            why += f" ({err})"
    else:
        why = "login page has no csrfmiddlewaretoken field or csrftoken cookie"
    session_key = probe(cfg, "session", AGENT)
    client.cookies.set("sessionid", session_key)
    return f"FALLBACK server-made session (force_login) because {why}"


# --- measurements --------------------------------------------------------------


@dataclass
class Latency:
    samples_ms: list[float]
    statuses: dict[int, int]
    size_bytes: int
    count: int | None
    cpu: CpuMeter
    note: str = ""

    @property
    def p50(self) -> float:
        return pct(self.samples_ms, 50)

    @property
    def p99(self) -> float:
        return pct(self.samples_ms, 99)


def measure_latency(client: httpx.Client, server: Server, path: str, headers: dict, cfg: TicketsConfig) -> Latency:
    for _ in range(cfg.warmup):
        client.get(path, headers=headers)
    samples, statuses = [], {}
    last = None
    with CpuMeter(server) as cpu:
        for _ in range(cfg.requests):
            t0 = time.perf_counter()
            last = client.get(path, headers=headers)
            samples.append((time.perf_counter() - t0) * 1000)
            statuses[last.status_code] = statuses.get(last.status_code, 0) + 1
    count = None
    note = ""
    if last.headers.get("content-type", "").startswith("application/json"):
        try:
            count = last.json().get("count")
        except ValueError:
            pass
    if last.status_code in (301, 302, 303):
        note = f"redirect to {last.headers.get('location')}"
    elif last.status_code >= 500:
        note = server.last_error()
    elif path.startswith("/console") and len(last.content) < 1000:
        note = f"placeholder page ({len(last.content)} bytes: {last.text[:40]!r})"
    return Latency(samples, statuses, len(last.content), count, cpu, note)


@dataclass
class Intake:
    samples_ms: list[float]
    statuses: dict[int, int]
    wall_s: float
    cpu: CpuMeter
    first_error: str = ""

    @property
    def ok(self) -> int:
        return self.statuses.get(201, 0)

    @property
    def rps(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0


async def run_intake(server: Server, buyers: list[tuple[str, list[int]]], cfg: TicketsConfig) -> Intake:
    """``concurrency`` workers share one bounded pool; each request is one ticket."""
    limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
    rng = random.Random(7)
    samples: list[float] = []
    statuses: dict[int, int] = {}
    first_error = ""
    remaining = cfg.intake_requests
    warm = cfg.concurrency * 2

    async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=30) as client:

        async def one(n: int, record: bool) -> None:
            nonlocal first_error
            token, orders = buyers[n % len(buyers)]
            body = {
                "category": "logistics_delay",
                "subject": f"物流一直没有更新 bench {n}",
                "body": "下单一周了，物流信息三天没有更新，请帮忙催一下。",
                "order_id": rng.choice(orders),
            }
            t0 = time.perf_counter()
            r = await client.post("/api/v1/tickets/", json=body, headers={"Authorization": f"Token {token}"})
            if record:
                samples.append((time.perf_counter() - t0) * 1000)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code != 201 and not first_error:
                    first_error = f"{r.status_code} {r.text[:200]}"

        # warm-up: every connection opened, every code path loaded
        await asyncio.gather(*(one(i, False) for i in range(warm)))

        deadline = time.perf_counter() + cfg.intake_seconds

        async def worker(w: int) -> None:
            nonlocal remaining
            n = w
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                await one(n, True)
                n += cfg.concurrency

        with CpuMeter(server) as cpu:
            await asyncio.gather(*(worker(w) for w in range(cfg.concurrency)))
    return Intake(samples, statuses, cpu.wall, cpu, first_error)


def measure_phase(cfg: TicketsConfig, label: str, tokens: dict[str, str] | None) -> dict:
    server = Server(cfg, label)
    server.start()
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            if tokens is None:  # tokens live in the database: fetched once, reused after the restart
                tokens = {name: get_token(client, name) for name in [AGENT, *BUYERS]}
            buyers = [(tokens[name], buyer_orders(client, tokens[name])) for name in BUYERS]
            buyers = [(t, o) for t, o in buyers if o]
            if not buyers:
                raise SystemExit("no buyer has an order: seed_demo did not load its demo data")
            tickets_now = ticket_count(cfg)
            log(f"[{label}] {tickets_now} tickets; measuring reads ({cfg.warmup} warm-up + {cfg.requests} each)")
        with httpx.Client(base_url=server.base, timeout=30) as api, httpx.Client(
            base_url=server.base, timeout=30, follow_redirects=False
        ) as browser:
            how = login_session(cfg, server, browser)
            log(f"[{label}] console session: {how}")
            reads = {}
            for key, title, path in READS:
                if key == "console":
                    reads[key] = measure_latency(browser, server, path, {}, cfg)
                else:
                    reads[key] = measure_latency(api, server, path, {"Authorization": f"Token {tokens[AGENT]}"}, cfg)
                r = reads[key]
                log(
                    f"[{label}] {title:<34} p50 {r.p50:7.1f} ms  p99 {r.p99:7.1f} ms  "
                    f"HTTP {dict(sorted(r.statuses.items()))}  {r.size_bytes} B  "
                    f"server CPU {r.cpu.server / len(r.samples_ms) * 1000:.1f} ms/req  "
                    f"machine {r.cpu.machine_cores:.2f} cores busy"
                    + (f"  count={r.count}" if r.count is not None else "")
                    + (f"  [{r.note}]" if r.note else "")
                )
        sql_data = sql_report(cfg, f"{tickets_now} tickets")
        log(f"[{label}] intake: {cfg.intake_requests} POSTs, {cfg.concurrency} clients (cap {cfg.intake_seconds:.0f} s)")
        intake = asyncio.run(run_intake(server, buyers, cfg))
        log(
            f"[{label}] intake {intake.ok}/{len(intake.samples_ms)} created in {intake.wall_s:.1f} s: "
            f"{intake.rps:.1f} req/s, p50 {pct(intake.samples_ms, 50):.0f} ms, p99 {pct(intake.samples_ms, 99):.0f} ms; "
            f"CPU server {intake.cpu.server:.1f} s, client {intake.cpu.client:.1f} s, "
            f"machine {intake.cpu.machine_cores:.2f} of {os.cpu_count()} cores busy"
            + (f"; first error: {intake.first_error}" if intake.first_error else "")
        )
    finally:
        server.stop()
    return {"tickets": tickets_now, "reads": reads, "intake": intake, "tokens": tokens, "session": how,
            "sql": sql_data}


# --- SQL per request -----------------------------------------------------------


def sql_report(cfg: TicketsConfig, label: str) -> dict:
    try:
        data = json.loads(probe(cfg, "queries", *(["--explain"] if cfg.explain else [])))
    except (RuntimeError, ValueError) as exc:
        log(f"[{label}] SQL probe failed: {exc}")
        return {}
    print(f"\n--- SQL per request at {label} (in-process probe, one request each) ---")
    for key, title, _ in READS:
        item = data.get(key)
        if not item:
            continue
        total = sum(q["ms"] for q in item["queries"])
        print(f"{title}: HTTP {item['status']}, {len(item['queries'])} queries, {total:.1f} ms in SQL "
              f"of {item['in_process_ms']:.1f} ms in Django")
        for q in item["queries"]:
            print(f"    {q['ms']:7.2f} ms  {q['sql'][:110]}")
            if "plan" in q:
                print("        " + q["plan"].replace("\n", "\n        "))
    return data


# --- summary -------------------------------------------------------------------


def summary(cfg: TicketsConfig, small: dict, large: dict) -> dict:
    n_small, n_large = small["tickets"], large["tickets"]
    print("\n" + "=" * 100)
    print(f"SUMMARY  (client and server share this machine: {os.cpu_count()} cores; "
          f"latencies are one client at a time, {cfg.requests} requests after {cfg.warmup} warm-up)")
    print("=" * 100)
    head = f"{'endpoint':<36}{'p50@' + fmt_n(n_small):>10}{'p99':>8}{'p50@' + fmt_n(n_large):>11}{'p99':>8}" \
           f"{'ratio p50':>11}{'ratio p99':>11}{'SQL q':>7}  goal"
    print(head)
    rows = {}
    met = True
    for key, title, _ in READS:
        a, b = small["reads"][key], large["reads"][key]
        r50, r99 = b.p50 / a.p50, b.p99 / a.p99
        nq = "/".join(str(len(s.get(key, {}).get("queries", []))) for s in (small["sql"], large["sql"]))
        goal = ""
        bad = [f"HTTP {sorted(x.statuses)} at {fmt_n(n)}" for x, n in ((a, n_small), (b, n_large))
               if set(x.statuses) - {200}]
        if key.startswith("list"):
            ok = r50 <= LIST_GOAL and not bad
            met &= ok
            goal = f"{'met' if ok else 'MISSED'} (<= {LIST_GOAL}x)"
        else:
            goal = "no goal set" if r50 <= LIST_GOAL else f"grows {r50:.1f}x (no goal set)"
        if bad:
            goal += ("; " if goal else "") + "not comparable: " + ", ".join(bad)
        flags = "; ".join(f"{fmt_n(n)}: {x.note}" for x, n in ((a, n_small), (b, n_large)) if x.note)
        print(f"{title:<36}{a.p50:10.1f}{a.p99:8.1f}{b.p50:11.1f}{b.p99:8.1f}{r50:10.2f}x{r99:10.2f}x{nq:>7}  {goal}")
        if flags:
            print(f"{'':<36}note: {flags}")
        rows[key] = {
            "title": title,
            "small": {"p50_ms": a.p50, "p99_ms": a.p99, "statuses": a.statuses, "count": a.count,
                      "server_cpu_ms": a.cpu.server / len(a.samples_ms) * 1000},
            "large": {"p50_ms": b.p50, "p99_ms": b.p99, "statuses": b.statuses, "count": b.count,
                      "server_cpu_ms": b.cpu.server / len(b.samples_ms) * 1000},
            "ratio_p50": r50, "ratio_p99": r99, "note": flags,
            "busy_cores": [a.cpu.machine_cores, b.cpu.machine_cores],
        }
    print()
    print(f"{'intake POST /api/v1/tickets/':<36}{'tickets':>9}{'ok/sent':>10}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'srv CPU':>9}{'cli CPU':>9}{'busy cores':>12}")
    intake_rows = {}
    for label, phase in (("small", small), ("large", large)):
        it = phase["intake"]
        print(f"{'  ' + str(cfg.concurrency) + ' clients':<36}{fmt_n(phase['tickets']):>9}"
              f"{str(it.ok) + '/' + str(len(it.samples_ms)):>10}{it.rps:8.1f}"
              f"{pct(it.samples_ms, 50):8.0f}{pct(it.samples_ms, 99):8.0f}"
              f"{it.cpu.server:8.1f}s{it.cpu.client:8.1f}s{it.cpu.machine_cores:12.2f}")
        intake_rows[label] = {
            "tickets": phase["tickets"], "ok": it.ok, "sent": len(it.samples_ms), "rps": it.rps,
            "p50_ms": pct(it.samples_ms, 50), "p99_ms": pct(it.samples_ms, 99), "server_cpu_s": it.cpu.server,
            "client_cpu_s": it.cpu.client, "machine_busy_cores": it.cpu.machine_cores, "first_error": it.first_error,
        }
    print()
    print(f"List goal (p50 at {fmt_n(n_large)} within {LIST_GOAL}x of p50 at {fmt_n(n_small)}): "
          f"{'MET' if met else 'MISSED'}")
    # one client at a time keeps about one core busy (client, server and PostgreSQL take turns);
    # much more than that means other work on the machine competed with the measurement
    busiest = max(x.cpu.machine_cores for phase in (small, large) for x in phase["reads"].values())
    if busiest > BUSY_WARN_CORES:
        print(f"WARNING: up to {busiest:.2f} of {os.cpu_count()} cores were busy during the sequential reads "
              f"(about 1 is this benchmark): other work competed for the CPU, so the latencies are inflated and "
              f"the ratios less reliable. Rerun on a quiet machine.")
    print(f"Code measured: {cfg.source}")
    print(f"Console session: {small['session']}")
    print(f"Server: {cfg.server_label()}. Note: client and server share the same cores; server CPU is the "
          "server's process tree only (PostgreSQL and the client take the rest of 'busy cores').")
    return {"reads": rows, "intake": intake_rows, "list_goal_met": met, "tickets": [n_small, n_large],
            "max_busy_cores_during_reads": busiest,
            "source": cfg.source, "session": small["session"]}


def fmt_n(n: int) -> str:
    return f"{n / 1000:.0f}k" if n >= 1000 else str(n)


# --- main ----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> TicketsConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets-small", type=int, default=1000)
    parser.add_argument("--tickets-large", type=int, default=100000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per read measurement")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests before each read measurement")
    parser.add_argument("--intake-requests", type=int, default=800, help="timed ticket POSTs per phase")
    parser.add_argument("--intake-seconds", type=float, default=60, help="time cap of the intake run per phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ref", default="worktree",
                        help="code to measure: 'worktree' (default: the working tree as it is at the start) "
                             "or a git commit/branch (e.g. HEAD)")
    parser.add_argument("--keep-snapshot", action="store_true", help="keep the code snapshot after the run")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each list query")
    parser.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")
    add_server_args(parser)
    a = parser.parse_args(argv)
    check_server_args(parser, a)
    if not (1 <= a.concurrency <= 64):
        parser.error("--concurrency must be 1..64")
    if not (1 <= a.requests <= 5000) or not (0 <= a.warmup <= 1000):
        parser.error("--requests must be 1..5000 and --warmup 0..1000")
    if not (1 <= a.intake_requests <= 20000) or not (1 <= a.intake_seconds <= 300):
        parser.error("--intake-requests must be 1..20000 and --intake-seconds 1..300")
    if not (100 <= a.tickets_small < a.tickets_large <= 1_000_000):
        parser.error("need 100 <= --tickets-small < --tickets-large <= 1000000")
    return TicketsConfig(
        database_url=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cs_bench"),
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"),
        tickets_small=a.tickets_small, tickets_large=a.tickets_large, requests=a.requests, warmup=a.warmup,
        intake_requests=a.intake_requests, intake_seconds=a.intake_seconds, concurrency=a.concurrency,
        explain=a.explain, json_path=a.json_path, ref=a.ref, keep_snapshot=a.keep_snapshot,
        server=a.server, workers=a.workers,
    )


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    started = time.perf_counter()
    check_targets(cfg)
    log(f"CS Workbench tickets benchmark; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        f"server {cfg.server_label()}; client and server share this machine")
    snapshot(cfg)
    recreate_database(cfg)
    manage(cfg, "migrate", "--noinput", "-v0")
    manage(cfg, *seed_demo(cfg))
    top_up(cfg, cfg.tickets_small)
    small = measure_phase(cfg, fmt_n(cfg.tickets_small), None)
    top_up(cfg, cfg.tickets_large)
    large = measure_phase(cfg, fmt_n(cfg.tickets_large), small["tokens"])
    result = summary(cfg, small, large)
    if cfg.json_path:
        Path(cfg.json_path).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    if not cfg.keep_snapshot:
        shutil.rmtree(cfg.app, ignore_errors=True)
    log(f"done in {time.perf_counter() - started:.0f} s; server logs in {cfg.workdir}; "
        f"the {fmt_n(large['tickets'])}-ticket database stays for inspection")


if __name__ == "__main__":
    main()
