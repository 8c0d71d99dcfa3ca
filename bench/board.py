"""Benchmark: the market board at 100,000 tickets and 1,000,000 messages (issue #14 item 5).

    .venv/bin/python bench/board.py [--tickets 100000] [--messages 10] [--repeat 20] [--explain]

Runs on its own PostgreSQL database (BENCH_BOARD_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/cs_bench_board; the name must contain
"bench" and the host be loopback), which it drops, recreates, migrates and
seeds with COPY as ``bench/search.py`` does (``bench.owndb``'s ``start_django`` and
``copy_rows``): ``--tickets`` tickets spread over the last 30 days (about 2.3
a minute, so every window of the board has rows: today's hour, yesterday's,
last week's), half of them chats, 90% answered within 15 minutes, the older
ones resolved or closed; ``--messages`` messages each; a rating on 30% of
them; 5,000 executed remedies over the last 8 days. Then VACUUM ANALYZE.

Then it times the board's selector (``incidents.selectors.dashboard``, every
figure of the page and of the ``board`` frame: its queries on the replica
alias, here the same database) ``--repeat`` times, builds the frame once
(``incidents.events.board_payload``) and times one request of the page and
of the fragment end to end (in-process Django test client as a supervisor:
middleware, session, template). Prints p50/p95 in ms, the query count, the
frame's size and, with ``--explain``, each query's plan.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.owndb import copy_rows, start_django  # noqa: E402

DB_URL = os.environ.get("BENCH_BOARD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cs_bench_board")
CATEGORIES = ["logistics_delay", "not_received", "parcel_damaged", "wrong_item", "refund_request", "order_change",
              "coupon_failure", "account_security"]
BODIES = ["请帮我查一下物流", "我已经等了一个星期了", "能不能尽快处理", "照片已经上传", "商家一直不回复",
          "麻烦给个说法", "希望补发或者退款", "客服你好，在吗", "地址写错了想改一下", "收到的东西不对"]


def seed(n_tickets: int, n_messages: int, rng: random.Random) -> dict:
    from django.db import connection
    from django.utils import timezone

    from accounts import roles
    from accounts.services import create_user
    from compensation.models import Remedy
    from tickets.models import Rating

    now = timezone.now()
    buyer = create_user(username="bench-buyer", password=None, role=roles.BUYER, display_name="基准买家")
    agent = create_user(username="bench-agent", password=None, role=roles.AGENT, display_name="基准客服")
    lead = create_user(username="bench-lead", password=None, role=roles.SUPERVISOR, display_name="基准组长")
    span_s = 30 * 24 * 3600
    tickets = []
    for i in range(n_tickets):
        created = now - timedelta(seconds=rng.randint(0, span_s))
        chat = rng.random() < 0.5
        answered = created + timedelta(seconds=rng.randint(3, 900)) if rng.random() < 0.9 else None
        if answered and answered > now:
            answered = None
        age = now - created
        resolved = closed = None
        status = "assigned" if answered else "open"
        if age > timedelta(hours=6):
            if answered:
                resolved = answered + timedelta(minutes=rng.randint(5, 300))
                status = "resolved"
                if age > timedelta(days=2):
                    closed, status = resolved + timedelta(days=1), "closed"
            else:  # never answered: ended without a reply (a merged duplicate, a buyer who left)
                closed, status = created + timedelta(minutes=rng.randint(10, 240)), "merged"
        tickets.append((i + 1, "快递三天没动了", rng.choice(CATEGORIES), "buyer", "chat" if chat else "web", "3", 1,
                        "zh-hans", buyer.pk, status, created, created, answered, resolved, closed, n_messages,
                        n_messages, created, "", n_messages))
    copy_rows("tickets_ticket",
              ["id", "subject", "category", "party", "channel", "grade", "tier", "language", "buyer_id", "status",
               "created_at", "updated_at", "first_response_at", "resolved_at", "closed_at", "last_seq",
               "last_public_seq", "last_message_at", "search_text", "searched_seq"], tickets)
    messages = ((t[0], seq, buyer.pk if seq % 2 else agent.pk, "buyer" if seq % 2 else "agent", rng.choice(BODIES),
                 False, "", t[10] + timedelta(seconds=seq * 30)) for t in tickets for seq in range(1, n_messages + 1))
    copy_rows("tickets_message", ["ticket_id", "seq", "author_id", "author_role", "body", "internal", "notice",
                                  "created_at"], messages)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('tickets_ticket', 'id'), (SELECT max(id) FROM tickets_ticket))")
    rated = rng.sample(range(1, n_tickets + 1), int(n_tickets * 0.3))
    Rating.objects.bulk_create([Rating(ticket_id=t, buyer=buyer, score=rng.randint(0, 10),
                                       created_at=now - timedelta(seconds=rng.randint(0, span_s)))
                                for t in rated], batch_size=5000)
    remedies = []
    for t in rng.sample(range(1, n_tickets + 1), min(5000, n_tickets // 5)):
        kind = rng.choice(("refund", "coupon", "resend"))
        remedies.append(Remedy(ticket_id=t, buyer=buyer, requested_by=agent, kind=kind, reason="丢件赔付",
                               amount_fen=0 if kind == "resend" else rng.randint(100, 5000),
                               with_coupon=rng.random() < 0.5, coupon_fen=500, status="executed",
                               executed_at=now - timedelta(seconds=rng.randint(0, 8 * 24 * 3600))))
    Remedy.objects.bulk_create(remedies, batch_size=5000)
    return {"lead": lead}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()

    start_django(DB_URL)
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from compensation.models import BudgetDay
    from django.utils import timezone
    from incidents import events, selectors

    started = time.perf_counter()
    sample = seed(args.tickets, args.messages, random.Random(14))
    BudgetDay.objects.update_or_create(date=timezone.localdate(), defaults={"budget_fen": 5_000_000})
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        counts = {}
        for table in ("tickets_ticket", "tickets_message", "tickets_rating", "compensation_remedy"):
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    print(f"seeded {counts} in {time.perf_counter() - started:.1f} s")

    def pct(values, p):
        values = sorted(values)
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

    selectors.dashboard()  # warm
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        board = selectors.dashboard()
        times.append((time.perf_counter() - t0) * 1000)
    with CaptureQueriesContext(connection) as ctx:
        board = selectors.dashboard()
    frame = json.dumps(events.board_payload(board))
    results = {"selector": {"p50_ms": round(pct(times, 50), 1), "p95_ms": round(pct(times, 95), 1),
                            "queries": len(ctx.captured_queries)}}
    print(f"\nselectors.dashboard(): p50 {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms, "
          f"{len(ctx.captured_queries)} queries; frame {len(frame):,} bytes; "
          f"waiting now {board.waiting_chats}, inflow last hour {sum(v for _, v in board.inflow)}")
    slowest = sorted(ctx.captured_queries, key=lambda q: -float(q["time"]))[:5]
    for query in slowest:
        print(f"  {float(query['time']) * 1000:7.1f} ms  {query['sql'][:150]}")
    if args.explain:
        with connection.cursor() as cursor:
            for query in slowest[:3]:
                cursor.execute("EXPLAIN ANALYZE " + query["sql"])
                print("   ", " | ".join(row[0] for row in cursor.fetchall()[:12]))

    client = Client()
    client.force_login(sample["lead"])
    for path in ("/console/dashboard/", "/console/dashboard/figures/"):
        client.get(path)  # warm (templates, translations)
        t0 = time.perf_counter()
        response = client.get(path, HTTP_HX_REQUEST="true")
        elapsed = (time.perf_counter() - t0) * 1000
        assert response.status_code == 200, response.status_code
        results[path] = {"ms": round(elapsed, 1)}
        print(f"GET {path}: {elapsed:.1f} ms end to end")
    worst = max(results["selector"]["p95_ms"], *(r["ms"] for k, r in results.items() if k != "selector"))
    print(f"\nworst {worst:.1f} ms; goal < 300 ms: {'met' if worst < 300 else 'NOT met'}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
