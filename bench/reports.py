"""Benchmark: the supervisors' reports at 100,000 tickets and 1,000,000
messages (issue #14 item 6, "fast at size": each report under 300 ms).

    .venv/bin/python bench/reports.py [--tickets 100000] [--messages 1000000] [--repeat 20] [--explain] [--keep]

Runs on its own PostgreSQL database (BENCH_REPORTS_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/cs_bench_reports; the name must contain
"bench" and the host be loopback), which it drops and recreates and drops
again at the end (``--keep`` leaves it for inspection).

Seeding: it migrates the whole schema, steps ``tickets`` back to
``SEED_AT`` (the migration before any stored report figure: a no-op where
there is none) and writes the rows with COPY as the services would have
left them, then migrates forward, so the migrations' own backfill fills
whatever later migrations store (and its time is printed). Over the last
``DAYS`` days: ``--tickets`` tickets across every category, region, grade,
channel (half of them chats), 8 queues and 200 agents, with first responses,
resolutions, SLA deadlines and breaches, ~30 % rated 0–10, remedies of each
kind, one order per ticket (85 %) with its shipment, carrier, ETA and carrier
events (delivered, damaged, lost, stuck), and ``--messages`` messages in
buyer stretches answered by agents (plus internal notes and notices);
then VACUUM ANALYZE, and the reports' rollup job (``refresh_rollups``)
runs twice: its first run (every closed day) and an ordinary one (the recent
days), both timed.

Then it freezes the garbage collector's view of what is loaded, as a served
worker does after the fork, and times, ``--repeat`` times after one warm-up, the selectors the API
and the page call (``reports.selectors.summary`` for the last 30 days, for
one day, per agent and per queue over 30 days; ``carriers`` over 30 days; the
topics, ``_top_categories``), and ``GET /api/v1/reports/summary/`` for 30
days end to end (in-process Django test client with a supervisor's token).
Prints p50/p95 in ms and the SQL queries of each, and with ``--explain`` the
plan of each query (``EXPLAIN ANALYZE``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.owndb import recreate_database, start_django  # noqa: E402

DB_URL = os.environ.get("BENCH_REPORTS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cs_bench_reports")
SEED_AT = ("tickets", "0009_tags_views_search")  # the schema the rows are written in; later migrations backfill
DAYS = 40  # tickets spread over the last 40 days: the 30-day report and part of its previous period
GOAL_MS = 300

REGIONS = ["华东", "华南", "华北", "华中", "西南", "西北", "东北", "港澳台", "海外", "上海"]
CARRIERS = ["顺丰", "中通", "圆通", "韵达", "申通", "京东物流", "EMS"]
CHANNELS = ["chat"] * 5 + ["web"] * 3 + ["phone", "api"]
GRADES = ["3"] * 85 + ["2"] * 10 + ["1"] * 4 + ["special"]




def copy_model(model, given: list[str], rows) -> int:
    """COPY ``rows`` (tuples of the ``given`` attnames) into ``model``'s table;
    every other column that exists in the table (the schema may be older than
    the model) gets the field's default, or now for an ``auto_now`` stamp."""
    from django.db import connection
    from django.utils import timezone

    table = model._meta.db_table
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
    now = timezone.now()
    extra, defaults = [], []
    for f in model._meta.concrete_fields:
        if f.attname in given or f.column not in columns or f.primary_key:
            continue
        value = f.get_default()
        if value is None and not f.null:
            value = now if f.get_internal_type() == "DateTimeField" else ""
        if f.get_internal_type() == "JSONField":
            value = json.dumps(value)
        extra.append(f.column)
        defaults.append(value)
    names = [model._meta.get_field(a).column if a != "id" else "id" for a in given] + extra
    tail = tuple(defaults)
    n = 0
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row + tail)
                n += 1
    if "id" in given:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    return n


def seed(n_tickets: int, n_messages: int, rng: random.Random) -> dict:
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from django.utils import timezone

    from accounts import roles
    from accounts.models import User
    from accounts.services import create_user
    from compensation.models import Remedy
    from incidents.models import LogisticsEvent
    from merchants.models import Merchant, Order, Shipment
    from tickets.models import Category, Message, Queue, Rating, SlaBreach, Ticket

    now = timezone.now()
    start = now - timedelta(days=DAYS)
    supervisor = create_user(username="bench-lead", password=None, role=roles.SUPERVISOR, display_name="基准组长")
    merchants = [Merchant.objects.create(code=f"bench{i}", name=f"基准商家{i}") for i in range(50)]
    queues = [Queue.objects.get_or_create(code=f"bench-q{i}", defaults={"name": f"队列{i}"})[0] for i in range(8)]
    password = make_password(None)

    def users(prefix: str, n: int, role: str) -> list[int]:
        first = (User.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        ids = list(range(first, first + n))
        copy_model(User, ["id", "password", "username", "display_name", "language"],
                   ((pk, password, f"{prefix}{i:05d}", f"{prefix}{i}", "zh-hans") for i, pk in enumerate(ids)))
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM auth_group WHERE name = %s", [role])
            group_id = cursor.fetchone()[0]
            with cursor.cursor.copy("COPY accounts_user_groups (user_id, group_id) FROM STDIN") as copy:
                for pk in ids:
                    copy.write_row((pk, group_id))
        return ids

    agents = users("ba", 200, roles.AGENT)
    buyers = users("bb", 20_000, roles.BUYER)
    categories = Category.values
    kinds = Remedy.Kind.values

    orders, shipments, events, tickets, ratings, breaches, remedies, messages = [], [], [], [], [], [], [], []
    per_ticket = n_messages / n_tickets
    event_id = 0
    for t in range(1, n_tickets + 1):
        created = start + timedelta(seconds=rng.uniform(0, DAYS * 86400 - 3600))
        buyer = rng.choice(buyers)
        merchant = rng.choice(merchants).pk
        order_id = None
        if rng.random() < 0.85:
            order_id = len(orders) + 1
            placed = created - timedelta(days=rng.uniform(1, 6))
            orders.append((order_id, f"BR{20260000000 + order_id:011d}", buyer, merchant, rng.randint(990, 29900),
                           "shipped", "pending", rng.choice(REGIONS), placed))
            shipped = placed + timedelta(hours=rng.uniform(2, 30))
            eta = (timezone.localtime(shipped) + timedelta(days=3)).date()
            carrier = rng.choice(CARRIERS)
            shipments.append((order_id, order_id, carrier, f"T{order_id:012d}", "in_transit", shipped, eta))
            for kind, share, after in (("delivered", 0.8, (1, 5)), ("damaged", 0.03, (1, 3)),
                                       ("lost", 0.02, (2, 6)), ("stuck", 0.05, (1, 4))):
                if rng.random() < share:
                    event_id += 1
                    occurred = shipped + timedelta(days=rng.uniform(*after))
                    events.append((f"ev{event_id}", order_id, order_id, carrier, f"T{order_id:012d}", kind,
                                   occurred, rng.choice(REGIONS), min(occurred, now - timedelta(hours=1))))
        channel = rng.choice(CHANNELS)
        grade = rng.choice(GRADES)
        assignee = rng.choice(agents) if rng.random() < 0.92 else None
        # the conversation: stretches of buyer messages, each answered by an agent
        count = max(1, int(rng.expovariate(1 / per_ticket)) if per_ticket > 1 else 1)
        at, seq, first_response = created, 0, None
        conversation = []
        while seq < count:
            for _ in range(rng.choice((1, 1, 2, 3))):
                if seq >= count:
                    break
                seq += 1
                conversation.append((t, seq, buyer, "buyer", "请帮我查一下物流", False, "", at))
                at += timedelta(seconds=rng.uniform(2, 40))
            if seq >= count:
                break
            at += timedelta(seconds=rng.lognormvariate(3.4, 0.8) if channel == "chat" else rng.uniform(60, 7200))
            seq += 1
            note = rng.random() < 0.05
            conversation.append((t, seq, assignee or rng.choice(agents), "agent",
                                 "已为您催促快递" if not note else "内部备注", note, "", at))
            if not note and first_response is None:
                first_response = at
            at += timedelta(seconds=rng.uniform(10, 300))
        messages.extend(conversation)
        resolved = None
        status = "assigned" if assignee else "open"
        if first_response and rng.random() < 0.7:
            resolved = at + timedelta(minutes=rng.uniform(1, 600))
            status = "resolved" if rng.random() < 0.4 else "closed"
        due = created + timedelta(minutes={"3": 30, "2": 480, "1": 720}.get(grade, 1440))
        tickets.append((t, "物流问题", rng.choice(categories), channel, grade, queues[t % len(queues)].pk, buyer,
                        merchant, order_id, assignee, status, created, created, due, first_response, resolved,
                        resolved if status == "closed" else None, seq, seq, at))
        if resolved and resolved > due and rng.random() < 0.5:
            breaches.append((t, due, grade, 1, 2, due + timedelta(minutes=1)))
        if resolved and rng.random() < 0.43:  # ~30 % of all tickets rated
            ratings.append((t, buyer, min(10, max(0, int(rng.gauss(8, 2.5)))), "", resolved + timedelta(minutes=5)))
        if rng.random() < 0.08:
            kind = rng.choice(kinds)
            amount = 500 if kind == "coupon" else (0 if kind == "resend" else rng.randint(500, 9900))
            executed = created + timedelta(minutes=rng.uniform(5, 600))
            remedies.append((t, order_id, buyer, assignee or agents[0], kind, amount, kind != "coupon",
                             500 if kind != "coupon" else 0, "bench", "executed", executed, executed))
        if resolved and rng.random() < 0.3:  # the system's "resolved" notice
            messages.append((t, seq + 1, None, "system", "已解决", False, "resolved", resolved))
            tickets[-1] = tickets[-1][:-3] + (seq + 1, seq + 1, resolved)

    copy_model(Order, ["id", "order_no", "buyer_id", "merchant_id", "amount_fen", "status", "escrow_status",
                       "region", "placed_at"], orders)
    copy_model(Shipment, ["id", "order_id", "carrier", "tracking_no", "status", "shipped_at", "eta"], shipments)
    copy_model(LogisticsEvent, ["event_id", "shipment_id", "order_id", "carrier", "tracking_no", "kind",
                                "occurred_at", "region", "received_at"], events)
    copy_model(Ticket, ["id", "subject", "category", "channel", "grade", "queue_id", "buyer_id", "merchant_id",
                        "order_id", "assignee_id", "status", "created_at", "updated_at", "due_at",
                        "first_response_at", "resolved_at", "closed_at", "last_seq", "last_public_seq",
                        "last_message_at"], tickets)
    copy_model(Message, ["ticket_id", "seq", "author_id", "author_role", "body", "internal", "notice", "created_at"],
               messages)
    copy_model(Rating, ["ticket_id", "buyer_id", "score", "comment", "created_at"], ratings)
    copy_model(SlaBreach, ["ticket_id", "due_at", "grade", "tier_before", "tier_after", "detected_at"], breaches)
    copy_model(Remedy, ["ticket_id", "order_id", "buyer_id", "requested_by_id", "kind", "amount_fen", "with_coupon",
                        "coupon_fen", "reason", "status", "created_at", "executed_at"], remedies)
    return {"supervisor": supervisor, "counts": {
        "tickets": len(tickets), "messages": len(messages), "ratings": len(ratings), "remedies": len(remedies),
        "shipments": len(shipments), "carrier events": len(events), "breaches": len(breaches)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the database for inspection")
    args = parser.parse_args()

    start_django(DB_URL)
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from accounts.services import issue_api_token
    from reports import selectors
    from reports.rules import Period

    call_command("migrate", *SEED_AT, verbosity=0)
    started = time.perf_counter()
    seeded = seed(args.tickets, args.messages, random.Random(14))
    seeded_s = time.perf_counter() - started
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    migrate_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    # the beat job's first run: every closed day into the rollup, then one
    # ordinary run (the recent days recomputed), as production would have it
    from reports.models import DailyFigure
    from reports.services import refresh_rollups

    started = time.perf_counter()
    first_days = refresh_rollups()
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    again_days = refresh_rollups()
    again_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
    print(f"seeded {', '.join(f'{n:,} {what}' for what, n in seeded['counts'].items())} in {seeded_s:.1f} s; "
          f"migrations after seeding {migrate_s:.1f} s; {version}")
    print(f"rollup: first run {first_days} days in {first_s:.1f} s ({DailyFigure.objects.count():,} rows); "
          f"a later run {again_days} days in {again_s:.1f} s")

    today = timezone.localdate()
    month = Period(first=today - timedelta(days=29), last=today)
    day = Period(first=today - timedelta(days=3), last=today - timedelta(days=3))
    supervisor = seeded["supervisor"]
    client = Client()
    token = issue_api_token(user=supervisor).key
    path = f"/api/v1/reports/summary/?from={month.first.isoformat()}&to={month.last.isoformat()}"

    def api():
        response = client.get(path, HTTP_AUTHORIZATION=f"Token {token}")
        assert response.status_code == 200, response.content[:300]
        return response.json()

    kinds = [
        ("summary, 30 days", lambda: selectors.summary(period=month)),
        ("summary, 1 day", lambda: selectors.summary(period=day)),
        ("summary, 30 days, group_by=agent", lambda: selectors.summary(period=month, group_by="agent")),
        ("summary, 30 days, group_by=queue", lambda: selectors.summary(period=month, group_by="queue")),
        ("carriers, 30 days", lambda: selectors.carriers(period=month)),
        ("topics (top_categories), 30 days", lambda: selectors._top_categories(month)),
        ("API: GET /api/v1/reports/summary/ 30 days", api),
    ]

    def pct(values, p):
        values = sorted(values)
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

    class Count:
        # counts every statement (a request's start clears DEBUG's query log,
        # so CaptureQueriesContext sees none of an API request's queries)
        def __init__(self):
            self.n = 0

        def __call__(self, execute, sql, params, many, context):
            self.n += 1
            return execute(sql, params, many, context)

    # as a served worker does after the fork (cs_portal/gunicorn.py post_fork):
    # what is loaded by now never becomes garbage, so full collections do not
    # walk it (without this one report in twenty took a 90 ms collection here)
    gc.collect()
    gc.freeze()
    print(f"\n{'report':46} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}  goal < {GOAL_MS} ms")
    results = {}
    for label, run in kinds:
        counter = Count()
        with CaptureQueriesContext(connection) as ctx, connection.execute_wrapper(counter):
            report = run()  # warm, and the queries
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1000)
        queries = counter.n
        results[label] = {"p50_ms": round(pct(times, 50), 1), "p95_ms": round(pct(times, 95), 1),
                          "max_ms": round(max(times), 1), "queries": queries}
        met = "met" if pct(times, 95) < GOAL_MS else "NOT met"
        print(f"{label:46} {pct(times, 50):>8.1f} {pct(times, 95):>8.1f} {max(times):>8.1f} {queries:>8}  {met}",
              flush=True)
        if label == "summary, 30 days":
            print("   figures:", json.dumps({k: report[k] for k in ("csat", "first_response_s", "chat_response_s")},
                                            ensure_ascii=False))
        if args.explain:
            for q in ctx.captured_queries:
                if not q["sql"].lstrip().upper().startswith("SELECT") or "django_session" in q["sql"] \
                        or "authtoken" in q["sql"] or "accounts_" in q["sql"][:200]:
                    continue
                with connection.cursor() as cursor:
                    cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {q['sql']}")
                    plan = [row[0] for row in cursor.fetchall()]
                print(f"   [{q['time']}s] {q['sql'][:160]}")
                for line in plan[:18]:
                    print(f"      {line}")
    worst = max(r["p95_ms"] for r in results.values())
    print(f"\nworst p95 {worst:.1f} ms; goal < {GOAL_MS} ms: {'met' if worst < GOAL_MS else 'NOT met'}")
    print(json.dumps(results, ensure_ascii=False))
    connection.close()
    if not args.keep:
        recreate_database(DB_URL, drop_only=True)


if __name__ == "__main__":
    main()
