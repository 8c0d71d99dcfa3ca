"""Where one request's CPU goes on the HTTP hot paths, in-process: the ASGI
application called directly (no server, no client, no network), so the figure
is the app's own CPU per request and nothing else's.

    .venv/bin/python bench/profile_paths.py [--requests 200] [--rounds 5] [--paths remedy,intake,read,floor] [--profile 25] [--sql 3]

Uses its own database (``cs_bench_profile``, loopback PostgreSQL) and Redis
db 10, set up as ``bench/remedies.py`` sets up its own (4 agents, tickets
assigned, budget and caps out of the way). For each path it prints the CPU per
request (``time.process_time``: this process only, so PostgreSQL's and Redis's
CPU are not in it) as the median and the best of ``--rounds`` rounds of
``--requests`` each (a round that shared the machine with something else
shows as an outlier, not as a shift), the wall time, PostgreSQL's CPU per
request (every ``postgres`` process's, so run it on an otherwise idle
database server), the SQL statements and round trips per request (a statement
held by ``core.rows.sent_together`` goes with the next one: a statement, not a
round trip), and with
``--profile N`` the N functions with the most CPU of their own and the N with
the most in total (cProfile timed by ``time.process_time``: time waiting on the
database or Redis does not count, which is what a CPU-bound server pays).

The paths:

- ``remedy``: ``POST /api/v1/tickets/{id}/remedies/`` by the assigned agent,
  coupon, resend with coupon and refund in turn (each a new Idempotency-Key);
- ``intake``: ``POST /api/v1/tickets/`` by a buyer on their own order;
- ``read``: ``GET /api/v1/tickets/{id}/`` by the assigned agent;
- ``list``: ``GET /api/v1/tickets/`` by an agent: the first page (every ticket
  is theirs to see), with the count;
- ``floor``: ``GET /api/v1/tickets/{id}/`` of a ticket that does not exist, by
  an agent (404): the token's statement, one lookup and the error's answer,
  what any authenticated API call costs before its own work;
- ``poll``: the console ticket page's conversation poll,
  ``GET /console/tickets/{id}/messages/?after_seq=N`` by the assigned agent
  with a session cookie, nothing new since ``N`` (204): what an open ticket page
  cost every 15 s before its chat socket's ``sync`` answered instead.

Run it at two commits in the same sitting (a worktree for the parent) to see
what a change bought: the machine's speed moves from hour to hour.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "cs_bench_profile"
REDIS_DB = "10"


def prepare_environment() -> None:
    for key in ("SQLITE_PATH",):
        os.environ.pop(key, None)
    os.environ.update({
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}", "DEBUG": "0", "SECRET_KEY": "bench-profile-only",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver", "SECURE_SSL_REDIRECT": "0", "SECURE_COOKIES": "0",
        "SECURE_HSTS_SECONDS": "0", "DJANGO_SETTINGS_MODULE": "cs_portal.settings",
    })
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def fresh_database() -> None:
    def psql(sql: str) -> None:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql], check=True,
                       capture_output=True)
    psql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{DB_NAME}"')
    subprocess.run(["redis-cli", "-n", REDIS_DB, "flushdb"], check=True, capture_output=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)


def seed(agents_n: int, per_agent: int) -> dict:
    """The remedies benchmark's own set-up, run in this process; returns the
    agents' tokens and tickets and one buyer's token and shipped orders."""
    from bench.remedies import SETUP

    captured = io.StringIO()
    stdout, argv = sys.stdout, sys.argv
    sys.stdout, sys.argv = captured, ["setup", str(agents_n), str(per_agent)]
    try:
        exec(compile(SETUP, "bench/remedies.py:SETUP", "exec"), {"__name__": "bench_setup"})
    finally:
        sys.stdout, sys.argv = stdout, argv
    out = json.loads(captured.getvalue().strip().splitlines()[-1])

    from accounts.models import User
    from accounts.services import issue_api_token
    from merchants.models import Order

    from django.test import Client

    for n, agent in enumerate(out["agents"]):  # a console's session, for the pages' paths
        browser = Client()
        browser.force_login(User.objects.get(username=f"bench_agent{n}"))
        agent["session"] = browser.cookies["sessionid"].value
    buyer = User.objects.get(username="bench_buyer1")
    out["buyer"] = {"token": issue_api_token(user=buyer).key,
                    "orders": list(Order.objects.filter(buyer=buyer).order_by("pk").values_list("pk", flat=True))}
    return out


class Caller:
    """Calls the ASGI application as a server would, one request at a time."""

    def __init__(self) -> None:
        from cs_portal import asgi

        self.application = asgi.application
        self.http_handler = asgi.django_asgi_app
        self.loop = asyncio.new_event_loop()

    def request(self, method: str, path: str, token: str, body: dict | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else b""
        path, _, query = path.partition("?")
        raw = [(b"host", b"127.0.0.1")]
        if token:
            raw.append((b"authorization", f"Token {token}".encode()))
        if body is not None:
            raw += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
                 "headers": raw, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}
        sent: list[dict] = []
        delivered = False

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": payload, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        self.loop.run_until_complete(self.application(scope, receive, send))
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def requests_for(path: str, data: dict, count: int, offset: int = 0):
    """(method, path, token, body, headers, expected statuses) for ``count`` requests."""
    if path == "remedy":
        kinds = [{"kind": "coupon"}, {"kind": "resend", "with_coupon": True}, {"kind": "refund", "amount_fen": 100}]
        agent = data["agents"][0]
        for n in range(offset, offset + count):
            ticket = agent["tickets"][n % len(agent["tickets"])]
            yield ("POST", f"/api/v1/tickets/{ticket}/remedies/", agent["token"],
                   {**kinds[n % len(kinds)], "reason": "双十一延误补偿"}, {"Idempotency-Key": f"profile-{n}"}, {201})
    elif path == "intake":
        buyer = data["buyer"]
        for n in range(offset, offset + count):
            order = buyer["orders"][n % len(buyer["orders"])]
            yield ("POST", "/api/v1/tickets/", buyer["token"],
                   {"category": "logistics_delay", "subject": f"快递没到 {n}", "body": "已经五天了", "order_id": order},
                   {}, {201})
    elif path == "read":
        agent = data["agents"][1]
        for n in range(offset, offset + count):
            ticket = agent["tickets"][n % len(agent["tickets"])]
            yield ("GET", f"/api/v1/tickets/{ticket}/", agent["token"], None, {}, {200})
    elif path == "list":
        agent = data["agents"][1]
        for _ in range(count):
            yield ("GET", "/api/v1/tickets/", agent["token"], None, {}, {200})
    elif path == "poll":
        agent = data["agents"][1]
        cookie = {"Cookie": f"sessionid={agent['session']}"}
        for n in range(offset, offset + count):
            ticket = agent["tickets"][n % len(agent["tickets"])]
            yield ("GET", f"/console/tickets/{ticket}/messages/?after_seq=1000000", "", None, cookie, {204})
    elif path == "floor":
        agent = data["agents"][1]
        for _ in range(count):
            yield ("GET", "/api/v1/tickets/999999999/", agent["token"], None, {}, {404})
    else:
        raise SystemExit(f"unknown path {path!r}")


def measure(caller: Caller, path: str, data: dict, count: int, profile_top: int, offset: int = 0,
            show_sql: int = 0) -> dict:
    # warm: imports, caches, the first connection
    for method, url, token, body, headers, expected in requests_for(path, data, 3, offset):
        headers = {k: v if k == "Cookie" else f"warm-{offset}-{v}" for k, v in headers.items()}
        status, answer = caller.request(method, url, token, body, headers)
        if status not in expected:
            raise SystemExit(f"{path}: warm-up answered {status}: {answer[:300]!r}")

    # every statement on every thread's connection passes here (the request
    # runs on a thread of its own, with that thread's connection)
    from django.db.backends.utils import CursorWrapper

    # a statement held by core.rows.sent_together goes to the server with the next one executed: it is
    # counted as a statement when held, and only the executed ones are round trips
    from core.rows import _Held

    statements, held = [0], [0]
    original, original_add = CursorWrapper._execute_with_wrappers, _Held.add
    sql_by_request: list[list[str]] = []

    def counted(self, *args, **kwargs):
        statements[0] += 1
        if len(sql_by_request) <= show_sql and sql_by_request:
            sql_by_request[-1].append(" ".join(str(args[0]).split()))
        return original(self, *args, **kwargs)

    def counted_held(self, sql, *args, **kwargs):
        held[0] += 1
        if len(sql_by_request) <= show_sql and sql_by_request:
            sql_by_request[-1].append("(held) " + " ".join(str(sql).split()))
        return original_add(self, sql, *args, **kwargs)

    batch = list(requests_for(path, data, count, offset))
    # one profiler on the event loop's thread, one on the request's thread
    # (middleware, view, service), each timed by its own thread's CPU, merged
    loop_profiler = cProfile.Profile(time.thread_time) if profile_top else None
    view_profiler = cProfile.Profile(time.thread_time) if profile_top else None
    handler = caller.http_handler
    get_response = handler.get_response

    def profiled_get_response(request):
        view_profiler.enable()
        try:
            return get_response(request)
        finally:
            view_profiler.disable()

    if profile_top:
        handler.get_response = profiled_get_response
    statuses: dict[int, int] = {}
    from bench.harness import cpu_by_command

    pg0 = cpu_by_command(("postgres",))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    CursorWrapper._execute_with_wrappers, _Held.add = counted, counted_held
    try:
        if loop_profiler:
            loop_profiler.enable()
        for method, url, token, body, headers, expected in batch:
            sql_by_request.append([])
            status, answer = caller.request(method, url, token, body, headers)
            statuses[status] = statuses.get(status, 0) + 1
            if status not in expected:
                raise SystemExit(f"{path}: answered {status}: {answer[:300]!r}")
        if loop_profiler:
            loop_profiler.disable()
    finally:
        CursorWrapper._execute_with_wrappers, _Held.add = original, original_add
        handler.__dict__.pop("get_response", None)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    pg = cpu_by_command(("postgres",)) - pg0
    result = {"path": path, "requests": count, "cpu_ms": 1000 * cpu / count, "wall_ms": 1000 * wall / count,
              "pg_ms": 1000 * pg / count,
              "statements": (statements[0] + held[0]) / count, "round_trips": statements[0] / count,
              "statuses": statuses}
    if show_sql:
        result["sql"] = [(f"{method} {url}", sql) for (method, url, *_), sql in zip(batch, sql_by_request[:show_sql])]
    if profile_top:
        result["profile"] = top_functions(loop_profiler, view_profiler, profile_top)
    return result


def top_functions(loop_profiler: cProfile.Profile, view_profiler: cProfile.Profile, n: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(loop_profiler, stream=out)
    stats.add(view_profiler)
    stats.sort_stats("tottime").print_stats(n)
    stats.sort_stats("cumulative").print_stats(n)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests per path and round (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per path (default 5)")
    parser.add_argument("--paths", default="remedy,intake,read,floor")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the N functions with the most CPU (own, then total) per path")
    parser.add_argument("--sql", type=int, default=0, metavar="N",
                        help="print every SQL statement of the first N requests of each path's first round")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    prepare_environment()
    t0 = time.perf_counter()
    fresh_database()
    import django

    django.setup()
    data = seed(agents_n=4, per_agent=max(30, args.requests // 3 + 10))
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB_NAME, "-qc", "VACUUM ANALYZE"], check=True,
                   capture_output=True)
    print(f"set up in {time.perf_counter() - t0:.0f}s")
    caller = Caller()
    # the floor path's 404s: Django logs a warning for each, which a call that succeeds does not pay
    # (set once the application is loaded: loading it configures logging again)
    logging.getLogger("django.request").setLevel(logging.ERROR)
    results = []
    for path in args.paths.split(","):
        rounds = [measure(caller, path.strip(), data, args.requests, args.profile, offset=n * args.requests,
                          show_sql=args.sql if n == 0 else 0)
                  for n in range(args.rounds)]
        cpu = sorted(r["cpu_ms"] for r in rounds)
        result = {"path": path.strip(), "requests": args.requests, "rounds": args.rounds,
                  "cpu_ms": statistics.median(cpu), "cpu_ms_best": cpu[0],
                  "wall_ms": statistics.median(r["wall_ms"] for r in rounds),
                  "pg_ms": statistics.median(r["pg_ms"] for r in rounds),
                  "statements": statistics.mean(r["statements"] for r in rounds),
                  "round_trips": statistics.mean(r["round_trips"] for r in rounds),
                  "statuses": {k: sum(r["statuses"].get(k, 0) for r in rounds) for k in rounds[0]["statuses"]},
                  "cpu_ms_rounds": [round(r["cpu_ms"], 2) for r in rounds]}
        results.append(result)
        print(f"{result['path']:>7}: {result['cpu_ms']:6.2f} ms CPU (best {result['cpu_ms_best']:.2f}), "
              f"{result['wall_ms']:6.2f} ms wall, {result['pg_ms']:5.2f} ms PostgreSQL CPU, "
              f"{result['statements']:.1f} statements in {result['round_trips']:.1f} round trips per request "
              f"({args.rounds} rounds of {args.requests}, statuses {result['statuses']})")
        for request, sql in rounds[0].get("sql", ()):
            print(f"  {request}: {len(sql)} statements, {sum(not text.startswith('(held)') for text in sql)} round trips")
            for n, statement in enumerate(sql, 1):
                print(f"    {n:2}. {statement[:240]}")
        if args.profile:
            print(rounds[-1]["profile"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
