"""Benchmark: the balance explanation for a merchant with 10,000 holds and
100,000 orders, beside one with 10 holds and 100 orders.

    .venv/bin/python bench/escrow.py [--holds 10000] [--orders 100000] [--requests 200]

Runs on its own PostgreSQL database (BENCH_ESCROW_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/cs_bench_escrow), which it drops and
recreates. Requests go through Django's full stack in-process (middleware,
token auth, DRF, serializers), without a socket, so the figures are the
server's own time. Prints the SQL query count and p50/p99 latency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.owndb import start_django  # noqa: E402

DB_URL = os.environ.get("BENCH_ESCROW_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cs_bench_escrow")




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--holds", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    start_django(DB_URL)
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from accounts import roles
    from accounts.services import create_user, issue_api_token
    from merchants.models import FundHold, Merchant, MerchantAccount, MerchantStaff, Order


    def make_merchant(code: str, n_orders: int, n_holds: int) -> tuple[Merchant, str]:
        merchant = Merchant.objects.create(code=code, name=f"基准商家 {code}")
        staff = create_user(username=f"staff-{code}", password=None, role=roles.MERCHANT_STAFF)
        MerchantStaff.objects.create(user=staff, merchant=merchant)
        buyer = create_user(username=f"buyer-{code}", password=None, role=roles.BUYER)
        now = timezone.now()
        batch = 10_000
        for start in range(0, n_orders, batch):
            Order.objects.bulk_create([
                Order(order_no=f"{code}-{i:08d}", buyer=buyer, merchant=merchant, amount_fen=10_000,
                      status="completed", escrow_status="released", placed_at=now, items=[])
                for i in range(start, min(n_orders, start + batch))
            ])
        order_ids = list(Order.objects.filter(merchant=merchant).order_by("pk").values_list("pk", flat=True)[:n_holds])
        ticket_base = FundHold.objects.count() + 1
        FundHold.objects.bulk_create([
            FundHold(merchant=merchant, order_id=oid, ticket_id=ticket_base + i, amount_fen=5_000, reason="包裹丢失",
                     release_condition=f"Resolve ticket #{ticket_base + i}", placed_at=now)
            for i, oid in enumerate(order_ids)
        ], batch_size=5_000)
        MerchantAccount.objects.create(merchant=merchant, available_fen=n_orders * 10_000, deposit_fen=1_000_000,
                                       held_fen=n_holds * 5_000)
        return merchant, issue_api_token(user=staff).key

    t0 = time.perf_counter()
    small = make_merchant("S", 100, 10)
    page = make_merchant("P", 1_000, 200)
    large = make_merchant("L", args.orders, args.holds)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    seeded = time.perf_counter() - t0

    client = Client()
    rows = []
    merchants = (("10 holds / 100 orders", small), ("200 holds / 1,000 orders", page),
                 (f"{args.holds:,} holds / {args.orders:,} orders", large))
    for label, (merchant, key) in merchants:
        path = f"/api/v1/merchants/{merchant.pk}/balance/"
        headers = {"HTTP_AUTHORIZATION": f"Token {key}"}
        for _ in range(20):  # warm-up
            client.get(path, **headers)
        queries = []
        with connection.execute_wrapper(lambda execute, sql, params, many, context: queries.append(sql) or execute(sql, params, many, context)):
            response = client.get(path, **headers)
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        samples = []
        for _ in range(args.requests):
            start = time.perf_counter()
            client.get(path, **headers)
            samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        rows.append((label, len(queries), len(body["holds"]), body["holds_truncated"],
                     statistics.median(samples), samples[int(len(samples) * 0.99) - 1]))

    print(f"seeded in {seeded:.1f}s on {DB_URL.rsplit('/', 1)[1]}; {args.requests} requests each, in-process")
    print(f"{'merchant':<32} {'queries':>7} {'holds shown':>11} {'truncated':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for label, queries, shown, truncated, p50, p99 in rows:
        print(f"{label:<32} {queries:>7} {shown:>11} {str(truncated):>9} {p50:>8.2f} {p99:>8.2f}")
    print(f"p50 ratio {rows[2][0]} / {rows[1][0]} (both show 200 holds): {rows[2][4] / rows[1][4]:.2f}×; "
          f"same query count everywhere: {len({r[1] for r in rows}) == 1}")


if __name__ == "__main__":
    main()
