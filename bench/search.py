"""Benchmark: ticket search (``q``) at 100,000 tickets (issue #13 item 4).

    .venv/bin/python bench/search.py [--tickets 100000] [--messages 3] [--repeat 30] [--explain]

Runs on its own PostgreSQL database (BENCH_SEARCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/cs_bench_search; the name must contain
"bench" and the host be loopback), which it drops and recreates, migrates and
seeds with COPY: 20,000 buyers with names and phones, one order per ticket,
``--tickets`` tickets and ``--messages`` messages each, every ticket's
``search_text`` built by the same function the services use
(``tickets.search.extend``); then VACUUM ANALYZE.

Then, as an agent (staff see every ticket, so every search covers all of
them), it times each kind of search ``--repeat`` times through the selector
the API uses (``tickets.filters.parse_ticket_filters`` →
``tickets.selectors.ticket_list``, ordered as the API orders, the page's
COUNT and its 25 rows with their tags: what ``GET /api/v1/tickets/?q=``
runs), and the common word once more end to end through the API (in-process
Django test client with a token: middleware, auth, DRF, serialisation); then
one poll of five saved views' counts, as the console's views panel asks for
every 15 s (active, open, overdue, a tag, a word).
Prints p50/p95 in ms per kind, the rows matched, and with ``--explain`` each
query's plan (``EXPLAIN ANALYZE``) to show the trigram index at work.
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

DB_URL = os.environ.get("BENCH_SEARCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cs_bench_search")

# subjects: a common word (快递, in about a third), others, and a rare one (10 tickets)
SUBJECTS = ["快递三天没动了", "快递显示已签收但没收到", "包裹破损，外箱压坏", "优惠券无法使用", "申请退款",
            "发错颜色了", "修改收货地址", "物流一直不更新", "商品少发一件", "账号被盗了"]
BODIES = ["请帮我查一下物流", "我已经等了一个星期了", "能不能尽快处理", "照片已经上传", "商家一直不回复",
          "麻烦给个说法", "希望补发或者退款", "客服你好，在吗", "地址写错了想改一下", "收到的东西不对"]
BODY_ONLY = "仓库"  # appears in message bodies only (about 1 in 20 tickets)
RARE = "蓝牙耳机"  # in 10 subjects only
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"






def seed(n_tickets: int, n_messages: int, rng: random.Random) -> dict:
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from django.utils import timezone

    from accounts import roles
    from accounts.models import User
    from accounts.services import create_user
    from merchants.models import Merchant
    from tickets import search

    now = timezone.now()
    merchant = Merchant.objects.create(code="bench", name="基准商家")
    agent = create_user(username="bench-agent", password=None, role=roles.AGENT, display_name="基准客服")
    n_buyers = 20_000
    password = make_password(None)
    first_id = (User.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    buyers = []
    for i in range(n_buyers):
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
        buyers.append((first_id + i, f"bb{i:05d}", name, f"13{rng.randint(0, 999_999_999):09d}"))
    copy_rows("accounts_user",
              ["id", "password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff",
               "is_active", "date_joined", "display_name", "phone", "language", "account_status"],
              ((pk, password, False, username, "", "", "", False, True, now, name, phone, "zh-hans", "active")
               for pk, username, name, phone in buyers))
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('accounts_user', 'id'), (SELECT max(id) FROM accounts_user))")
        cursor.execute("SELECT id FROM auth_group WHERE name = %s", [roles.BUYER])
        group_id = cursor.fetchone()[0]
    copy_rows("accounts_user_groups", ["user_id", "group_id"], ((b[0], group_id) for b in buyers))

    # one order per ticket, order numbers as the order system writes them
    orders = []
    for i in range(n_tickets):
        buyer = buyers[rng.randrange(n_buyers)]
        orders.append((i + 1, f"BS{20260000000 + i * 7:011d}", buyer))
    copy_rows("merchants_order",
              ["id", "order_no", "buyer_id", "merchant_id", "items", "amount_fen", "status", "escrow_status",
               "shipping_address", "region", "placed_at", "open_disputes", "refunded_fen"],
              ((oid, no, b[0], merchant.pk, "[]", 9900, "delivered", "released", "", "", now, 0, 0)
               for oid, no, b in orders))

    rare_tickets = set(rng.sample(range(n_tickets), 10))
    statuses = ["open"] * 3 + ["assigned"] * 3 + ["waiting_buyer", "resolved", "resolved", "closed", "closed", "closed"]
    tickets, messages = [], []
    for i, (oid, order_no, buyer) in enumerate(orders):
        subject = SUBJECTS[0 if rng.random() < 0.3 else rng.randrange(1, len(SUBJECTS))]
        if i in rare_tickets:
            subject = f"{RARE}{subject}"
        bodies = [rng.choice(BODIES) for _ in range(n_messages)]
        if rng.random() < 0.05:
            bodies[-1] = f"{bodies[-1]}，{BODY_ONLY}说明天发"
        created = now - timedelta(minutes=rng.randint(1, 60 * 24 * 90))
        status = rng.choice(statuses)
        text = search.extend("", subject, order_no, buyer[1], buyer[2], buyer[3], *bodies)
        tickets.append((i + 1, subject, "logistics_delay", "buyer", "web", "3", 1, "zh-hans", buyer[0], merchant.pk,
                        oid, status, created, created, created + timedelta(minutes=30), n_messages, n_messages,
                        created, text, n_messages))
        for seq, body in enumerate(bodies, start=1):
            messages.append((i + 1, seq, buyer[0] if seq % 2 else agent.pk, "buyer" if seq % 2 else "agent", body,
                             False, "", created))
    copy_rows("tickets_ticket",
              ["id", "subject", "category", "party", "channel", "grade", "tier", "language", "buyer_id",
               "merchant_id", "order_id", "status", "created_at", "updated_at", "due_at", "last_seq",
               "last_public_seq", "last_message_at", "search_text", "searched_seq"], tickets)
    copy_rows("tickets_message",
              ["ticket_id", "seq", "author_id", "author_role", "body", "internal", "notice", "created_at"], messages)
    with connection.cursor() as cursor:
        for table in ("merchants_order", "tickets_ticket"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    # a few tags, as agents would add them
    copy_rows("tickets_tickettag", ["ticket_id", "name", "created_at"],
              ((t, "vip", now) for t in rng.sample(range(1, n_tickets + 1), n_tickets // 50)))
    sample = orders[rng.randrange(n_tickets)]
    return {"agent": agent, "order_no": sample[1], "phone": sample[2][3], "name": sample[2][2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()

    start_django(DB_URL)
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.services import issue_api_token
    from tickets import selectors
    from tickets.filters import parse_ticket_filters

    started = time.perf_counter()
    rng = random.Random(13)
    sample = seed(args.tickets, args.messages, rng)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("SELECT count(*) FROM tickets_ticket")
        n_tickets = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM tickets_message")
        n_messages = cursor.fetchone()[0]
        cursor.execute("SELECT pg_size_pretty(pg_relation_size('ticket_search_trgm'))")
        index_size = cursor.fetchone()[0]
    print(f"seeded {n_tickets:,} tickets, {n_messages:,} messages in {time.perf_counter() - started:.1f} s "
          f"(trigram index {index_size})")
    agent = sample["agent"]

    kinds = [
        ("chinese word from subjects (快递, ~30%)", {"q": "快递"}),
        ("chinese phrase from subjects (外箱压坏)", {"q": "外箱压坏"}),
        ("order no. (exact)", {"q": sample["order_no"]}),
        ("phone (exact)", {"q": sample["phone"]}),
        ("phone prefix (7 digits)", {"q": sample["phone"][:7]}),
        ("buyer name", {"q": sample["name"]}),
        (f"word only in messages ({BODY_ONLY}, ~5%)", {"q": BODY_ONLY}),
        (f"rare word ({RARE}, 10 tickets)", {"q": RARE}),
        ("no match (latin)", {"q": "zzqx"}),
        ("common word + tag filter (快递, tag=vip)", {"q": "快递", "tag": "vip"}),
        ("common word + status filter (快递, status=open)", {"q": "快递", "status": "open"}),
    ]

    def run(params):
        filters = parse_ticket_filters(params, user=agent)
        tickets = (selectors.ticket_list(user=agent, filters=filters).select_related(None).select_related("queue")
                   .order_by("-created_at", "-id"))
        count = tickets.count()
        rows = list(tickets[:25])
        return count, rows

    def pct(values, p):
        values = sorted(values)
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

    print(f"\n{'search (25 rows a page, with COUNT)':58} {'matched':>8} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    results = {}
    for label, params in kinds:
        run(params)  # warm
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            count, rows = run(params)
            times.append((time.perf_counter() - t0) * 1000)
        with CaptureQueriesContext(connection) as ctx:
            run(params)
        results[label] = {"matched": count, "p50_ms": round(pct(times, 50), 1), "p95_ms": round(pct(times, 95), 1),
                          "queries": len(ctx.captured_queries)}
        print(f"{label:58} {count:>8,} {pct(times, 50):>8.1f} {pct(times, 95):>8.1f} {len(ctx.captured_queries):>8}")
        if args.explain:
            filters = parse_ticket_filters(params, user=agent)
            qs = (selectors.ticket_list(user=agent, filters=filters).select_related(None).select_related("queue")
                  .order_by("-created_at", "-id"))
            print("   page:", " | ".join(qs[:25].explain(analyze=True).splitlines()[:14]))
            print("   count:", " | ".join(qs.order_by().explain(analyze=True).splitlines()[:10]))

    # the console's saved views: each page counts every one of its agent's views every 15 s
    # (tickets/templates/tickets/_saved_views.html), one COUNT each, as the queue counts them
    from tickets.services import create_saved_view

    stored = [("active", {"active": "true"}), ("open", {"status": "open"}),
              ("overdue", {"overdue": "true", "active": "true"}), ("vip", {"tag": "vip", "active": "true"}),
              ("快递", {"q": "快递", "active": "true"})]
    views = [create_saved_view(actor=agent, name=name, filters=filters) for name, filters in stored]

    def poll():
        return selectors.view_counts(user=agent, views=views,
                                     to_filters=lambda saved: parse_ticket_filters(saved, user=agent))

    from django.core.cache import cache

    views_polls = {}
    # counted: nobody asked the same within VIEW_COUNT_TTL_S; shared: another console just did
    for shared in (False, True):
        poll()  # warm
        times = []
        for _ in range(args.repeat):
            if not shared:
                cache.clear()
            t0 = time.perf_counter()
            counts = poll()
            times.append((time.perf_counter() - t0) * 1000)
        if not shared:
            cache.clear()
        with CaptureQueriesContext(connection) as ctx:
            poll()
        label = f"saved views: one poll of {len(views)}, {'shared' if shared else 'counted'}"
        print(f"{label:58} {sum(counts.values()):>8,} {pct(times, 50):>8.1f} {pct(times, 95):>8.1f} "
              f"{len(ctx.captured_queries):>8}")
        views_polls[label] = {"matched": sum(counts.values()), "p50_ms": round(pct(times, 50), 1),
                              "p95_ms": round(pct(times, 95), 1), "queries": len(ctx.captured_queries)}
    print("   each view: " + ", ".join(f"{name} {counts[view.pk]:,}" for (name, _), view in zip(stored, views)))

    client = Client()
    token = issue_api_token(user=agent).key
    path = "/api/v1/tickets/?q=%E5%BF%AB%E9%80%92&page_size=25"
    client.get(path, HTTP_AUTHORIZATION=f"Token {token}")
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        response = client.get(path, HTTP_AUTHORIZATION=f"Token {token}")
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.content[:200]
    label = "API end to end: GET /api/v1/tickets/?q=快递&page_size=25"
    print(f"{label:58} {response.json()['count']:>8,} {pct(times, 50):>8.1f} {pct(times, 95):>8.1f}")
    results[label] = {"matched": response.json()["count"], "p50_ms": round(pct(times, 50), 1),
                      "p95_ms": round(pct(times, 95), 1)}
    worst = max(r["p95_ms"] for r in results.values())
    print(f"\nworst search p95 {worst:.1f} ms; goal < 100 ms: {'met' if worst < 100 else 'NOT met'}")
    print(json.dumps({**results, **views_polls}, ensure_ascii=False))


if __name__ == "__main__":
    main()
