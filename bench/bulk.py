"""Bulk jobs benchmark: a macro reply over 10,000 tickets of one incident,
time and memory, and what the progress updates cost.

    .venv/bin/python bench/bulk.py [--tickets 10000] [--pairs 1] [--chunk tickets/10]
                                   [--progress-every 100] [--progress-interval 1.0]
                                   [--profile-items 2000] [--trace-items 2000] [--capture-items 3]
                                   [--no-profile] [--no-trace] [--no-listener] [--json out.json]

What it does, on its own PostgreSQL database (never anyone else's):

1. drops and recreates ``cs_bench_bulk`` (``BENCH_DATABASE_URL``, default
   ``postgres://postgres@127.0.0.1:5432/cs_bench_bulk``; the name must contain
   "bench" and the host must be loopback) and empties Redis db 6
   (``BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/6``), which becomes
   the channel layer, cache and Celery broker: the production layout
   (``DEBUG=0``, PostgreSQL through the psycopg pool, channels_redis);
2. in this process (``django.setup()`` with that environment): ``migrate``,
   ``seed_demo`` (roles, users, queues), then ``--tickets`` open tickets in
   bulk (``bulk_create`` of orders with their shipments, tickets with their
   opening message seq 1 and ``last_seq`` 1, as ``seed_demo --tickets`` does;
   the set-up is not what is measured), one grade-2 incident opened by the
   supervisor (``open_incident``) with every ticket linked (``link_tickets``),
   ``VACUUM ANALYZE``;
3. starts a listener process that joins the channel-layer group ``console``
   (as every staff console does) and counts the frames it receives, so the
   progress updates are shown to have gone out;
4. a warm-up job over ``--warmup-items`` tickets; then one uninterrupted job
   over all the incident's tickets with progress as configured (every
   ``BULK_PROGRESS_EVERY`` = 100 items or ``BULK_PROGRESS_INTERVAL_S`` = 1 s):
   ``create_bulk_job``, ``preview_job`` (the dry run over every item),
   ``run_job`` as the Celery task calls it (the job is set ``queued`` as
   ``start_job`` does, without the broker hop);
5. ``--pairs`` pairs of identical jobs, one with progress as configured and
   one with progress effectively off (``progress_every=10**9,
   progress_interval_s=1e9``), run *interleaved* in ``--chunk``-item slices (a tenth of the job)
   through ``run_job(stop_after=...)`` (the resume path), the order
   alternating slice by slice (on/off, off/on, ...): load from other work
   and the growing tables then weigh on both alike, where whole-job runs
   one after the other differed by up to 17 % between two runs of the same
   mode on this shared machine. Overhead = (t_on - t_off) / t_off, per
   slice and in total; also the time measured inside the progress reports
   themselves (``incidents.services.runner._report``: UPDATE, re-read, publish);
6. a profile over the first ``--profile-items`` tickets timing every SQL
   statement, every COMMIT and every channel-layer publish; the same items
   again with ``run_job`` under one event loop (what a fix could do, see
   below); a ``CaptureQueriesContext`` over ``--capture-items`` items printed
   statement by statement; and a probe of one publish as the app makes it
   from sync code (``async_to_sync``: a new thread, event loop and Redis
   connection each time) against the same ``group_send`` on one loop;
7. memory: ``tracemalloc`` peaks of ``create_bulk_job`` and ``preview_job``
   over all tickets and of ``run_job`` over ``--trace-items`` items (tracing
   makes Python ~2.5x slower; the resident set over the full untraced runs
   is printed beside it); the traced job is left stopped half-way;
8. prints the tables: wall time, items/s, ms per item, this process's CPU,
   the machine's busy cores, RSS and ``ru_maxrss``, progress updates sent and
   received, and the overhead against the 10 % goal.

The job's actor is the demo supervisor ``lead1``; the macro fills
``{buyer_name}``, ``{order_no}``, ``{carrier}`` and ``{tracking_no}``, so every
item posts one message through ``tickets.services.post_message`` (its own
durable transaction, idempotent by ``client_msg_id``).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# the safety checks of the harness: a loopback PostgreSQL whose name says "bench"
from bench.harness import check_targets  # noqa: E402

OVERHEAD_GOAL = 0.10  # progress may slow a job by at most 10 %
BUSY_WARN_CORES = 1.5  # machine CPU use during a run above which other work competed
MACRO = ("{buyer_name}您好，您的订单 {order_no} 由{carrier}承运（单号 {tracking_no}），因浙江区域丢件潮我们已向"
         "承运商发起核查，24 小时内给您答复。")
OFF = {"progress_every": 10**9, "progress_interval_s": 1e9}
STOP = "bench.stop"
STARTED = time.perf_counter()


def log(msg: str) -> None:
    # elapsed time, not the clock: django.setup() switches the process to TIME_ZONE
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {msg}", flush=True)


def rss_mb() -> float:
    """Current resident set of this process (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_busy() -> tuple[int, int]:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


# --- targets and environment ------------------------------------------------------


@dataclass
class Config:
    database_url: str
    redis_url: str
    tickets: int
    pairs: int
    chunk: int
    progress_every: int | None
    progress_interval: float | None
    warmup_items: int
    capture_items: int
    profile_items: int
    trace_items: int
    profile: bool
    trace: bool
    listener: bool
    json_path: str | None


def recreate(cfg: Config) -> dict[str, str]:
    import psycopg
    import redis
    from psycopg import sql

    dbname, admin_url = check_targets(cfg)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        pg_version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    client = redis.Redis.from_url(cfg.redis_url)
    client.flushdb()
    redis_version = client.info("server")["redis_version"]
    client.close()
    log(f"database {dbname} recreated (PostgreSQL {pg_version}, synchronous_commit={sync_commit}); "
        f"redis {cfg.redis_url} emptied (Redis {redis_version})")
    return {"postgresql": pg_version, "redis": redis_version, "synchronous_commit": sync_commit}


def app_env(cfg: Config) -> None:
    """The production layout in this process (and the listener it starts)."""
    for name in ("DJANGO_DEBUG", "SQLITE_PATH", "DB_POOL"):
        os.environ.pop(name, None)
    os.environ.update(
        DATABASE_URL=cfg.database_url, REDIS_URL=cfg.redis_url, DEBUG="0", SECRET_KEY="bench-bulk-only",
        ALLOWED_HOSTS="127.0.0.1,localhost", LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="cs_portal.settings",
        PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT),
    )


# --- the channel-layer listener (a separate process) ---------------------------------


def listen() -> None:
    """Join ``console`` like a staff console and count what arrives until STOP."""
    import asyncio

    import django

    django.setup()
    from channels.layers import get_channel_layer

    async def run() -> dict:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("console", channel)
        print("ready", flush=True)
        types: Counter = Counter()
        jobs: dict[int, dict] = {}
        errors: list[str] = []
        while True:
            try:
                message = await layer.receive(channel)
            except Exception as exc:  # a dropped connection: what is queued for the channel is still there
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                if len(errors) > 100:
                    break
                await asyncio.sleep(0.1)
                continue
            payload = message.get("payload") or {}
            kind = payload.get("type")
            if kind == STOP:
                break
            types[kind] += 1
            if kind == "bulk.progress":
                now = time.time()
                job = jobs.setdefault(payload["job_id"], {"frames": 0, "first": now, "last": now, "max_gap_s": 0.0,
                                                          "last_percent": 0, "last_status": ""})
                job["max_gap_s"] = max(job["max_gap_s"], now - job["last"])
                job.update(frames=job["frames"] + 1, last=now, last_percent=payload["percent"],
                           last_status=payload["status"])
        await layer.group_discard("console", channel)
        return {"types": dict(types), "jobs": {str(k): v for k, v in jobs.items()}, "errors": errors}

    print(json.dumps(asyncio.run(run())), flush=True)


class Listener:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--listen"], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"the listener did not start: {line} {self.proc.stderr.read()[-2000:]}")
        log(f"listener pid {self.proc.pid} joined the channel-layer group 'console'")

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def stop(self, send_now) -> dict:
        send_now("console", {"type": STOP})
        try:
            out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            log(f"listener output unreadable: {out[-500:]} {err[-1500:]}")
            return {}


# --- meters around the app's own functions -----------------------------------------


@dataclass
class Meter:
    """Frames published (by payload type) and the time spent publishing them;
    calls to ``incidents.services.runner._report`` (write + publish one progress update)
    and their time. The wrappers cost two ``perf_counter`` calls each."""

    frames: Counter = field(default_factory=Counter)
    publish_s: Counter = field(default_factory=Counter)
    reports: int = 0
    report_s: float = 0.0

    def reset(self) -> None:
        self.frames, self.publish_s, self.reports, self.report_s = Counter(), Counter(), 0, 0.0


def install_meters(meter: Meter):
    import core.realtime as realtime
    import incidents.services.runner as svc

    original_send, original_report = realtime.send_now, svc._report

    def send_now(group, payload):
        start = time.perf_counter()
        try:
            return original_send(group, payload)
        finally:
            kind = f"{payload.get('type')}→{group.split('.')[0]}"
            meter.frames[kind] += 1
            meter.publish_s[kind] += time.perf_counter() - start

    def report(job, tally):
        start = time.perf_counter()
        try:
            return original_report(job, tally)
        finally:
            meter.reports += 1
            meter.report_s += time.perf_counter() - start

    realtime.send_now = send_now  # publish_on_commit looks the name up at call time
    svc.send_now = send_now       # incidents imported the name itself
    svc._report = report
    return original_send


# --- data ---------------------------------------------------------------------------


def seed(cfg: Config) -> dict:
    from io import StringIO

    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import User
    from incidents import services
    from merchants.models import Merchant, Order, Shipment
    from tickets import sla
    from tickets.models import Message, Queue, Ticket

    times = {}
    start = time.perf_counter()
    call_command("migrate", verbosity=0)
    times["migrate"] = time.perf_counter() - start
    start = time.perf_counter()
    call_command("seed_demo", demo_database=True, stdout=StringIO())  # DEBUG=0 here
    times["seed_demo"] = time.perf_counter() - start

    start = time.perf_counter()
    lead = User.objects.get(username="lead1")
    buyers = list(User.objects.filter(username__startswith="buyer").order_by("pk").values_list("pk", flat=True))
    merchants = list(Merchant.objects.order_by("pk").values_list("pk", flat=True))
    queue = Queue.objects.get(code="logistics")
    carriers = ["顺丰速运", "中通快递", "圆通速递", "韵达快递", "京东物流", "申通快递", "EMS"]
    now = timezone.now()
    grade = "3"
    made, batch = 0, 5000
    while made < cfg.tickets:
        n = min(batch, cfg.tickets - made)
        with transaction.atomic():
            orders = Order.objects.bulk_create([
                Order(order_no=f"BK{made + i + 1:08d}", buyer_id=buyers[(made + i) % len(buyers)],
                      merchant_id=merchants[(made + i) % len(merchants)], amount_fen=5_990, status="shipped",
                      items=[{"sku": "M003-2", "name": "赣南脐橙 10斤", "variant": "大果", "qty": 1, "price_fen": 5_990}],
                      shipping_address="浙江省杭州市西湖区文三路 90 号", region="浙江",
                      placed_at=now - timedelta_minutes(3 * 24 * 60 + (made + i) % 600))
                for i in range(n)
            ])
            Shipment.objects.bulk_create([
                Shipment(order=o, carrier=carriers[(made + i) % len(carriers)], tracking_no=f"BK{made + i + 1:010d}",
                         status="exception", shipped_at=o.placed_at + timedelta_minutes(600),
                         eta=(now + timedelta_minutes(3 * 24 * 60)).date())
                for i, o in enumerate(orders)
            ])
            tickets = Ticket.objects.bulk_create([
                Ticket(subject=f"包裹丢失 {o.order_no}", category="not_received", party="buyer", channel="web",
                       grade=grade, tier=sla.GRADE_TIERS[grade], language="zh-hans", queue=queue,
                       buyer_id=o.buyer_id, merchant_id=o.merchant_id, order=o, status="open",
                       created_at=now - timedelta_minutes((made + i) % 720), last_seq=1,
                       last_message_at=now - timedelta_minutes((made + i) % 720),
                       due_at=now - timedelta_minutes((made + i) % 720) + sla.deadline_for(grade))
                for i, o in enumerate(orders)
            ])
            Message.objects.bulk_create([
                Message(ticket=t, seq=1, author_id=t.buyer_id, author_role="buyer",
                        body="物流显示已到杭州转运中心后三天没有更新，包裹是不是丢了？", created_at=t.created_at)
                for t in tickets
            ])
        made += n
    times["tickets"] = time.perf_counter() - start

    start = time.perf_counter()
    incident = services.open_incident(actor=lead, title="浙江丢件潮（基准）", grade="2", region="浙江",
                                      category="not_received", description="bench/bulk.py")
    ids = list(Ticket.objects.filter(order__order_no__startswith="BK").order_by("pk").values_list("pk", flat=True))
    linked = services.link_tickets(actor=lead, incident_id=incident.pk, ticket_ids=ids)
    times["incident"] = time.perf_counter() - start
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    times["vacuum"] = time.perf_counter() - start
    log(f"seeded: {len(ids):,} open tickets on shipped orders in 浙江, incident #{incident.pk} with {linked:,} "
        f"linked; " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    return {"lead": lead, "incident": incident, "ticket_ids": ids, "times": times}


def timedelta_minutes(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


def vacuum_written() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("incidents_bulkjobitem", "incidents_bulkjob", "tickets_message", "tickets_ticket"):
            cursor.execute(f"VACUUM ANALYZE {table}")


# --- jobs: create, preview, run (in one go or in slices) ---------------------------------


@dataclass
class Run:
    """One job: its creation and dry run, then every ``run_job`` call made on it."""

    label: str
    mode: str  # on | off
    job_id: int = 0
    items: int = 0
    create_s: float = 0.0
    preview_s: float = 0.0
    calls: int = 0
    wall_s: float = 0.0
    slices: list = field(default_factory=list)  # wall seconds of each run_job call
    cpu_s: float = 0.0
    busy_jiffies: list = field(default_factory=lambda: [0, 0])
    listener_cpu_s: float = 0.0
    rss_before_mb: float = float("nan")
    rss_after_mb: float = float("nan")
    maxrss_delta_mb: float = 0.0
    reports: int = 0
    report_s: float = 0.0
    progress_frames: int = 0
    progress_publish_s: float = 0.0
    other_frames: int = 0
    other_publish_s: float = 0.0
    publish_by_kind: dict = field(default_factory=dict)
    trace: dict = field(default_factory=dict)
    processed: int = 0
    status: str = ""

    @property
    def busy_cores(self) -> float:
        return self.busy_jiffies[0] / max(1, self.busy_jiffies[1]) * (os.cpu_count() or 1)

    @property
    def per_s(self) -> float:
        return self.processed / self.wall_s if self.wall_s else float("nan")

    @property
    def ms_per_item(self) -> float:
        return 1000 * self.wall_s / self.processed if self.processed else float("nan")

    def as_dict(self) -> dict:
        return {**self.__dict__, "busy_cores": self.busy_cores, "per_s": self.per_s, "ms_per_item": self.ms_per_item}


def prepare(ctx: dict, run: Run, *, ticket_ids: list[int] | None = None, trace: bool = False) -> None:
    """create_bulk_job + preview_job (timed), then queue the job as start_job does."""
    import tracemalloc

    from incidents import selectors, services
    from incidents.models import BulkJob

    lead = ctx["lead"]
    if trace:
        tracemalloc.reset_peak()
    start = time.perf_counter()
    if ticket_ids is None:
        job = services.create_bulk_job(actor=lead, kind="macro_reply", incident_id=ctx["incident"].pk,
                                       params={"body": MACRO})
    else:
        job = services.create_bulk_job(actor=lead, kind="macro_reply", ticket_ids=ticket_ids, params={"body": MACRO})
    run.create_s = time.perf_counter() - start
    if trace:
        run.trace["create_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.reset_peak()
    start = time.perf_counter()
    _, rows, counts = selectors.preview_job(user=lead, job_id=job.pk)
    run.preview_s = time.perf_counter() - start
    if trace:
        run.trace["preview_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    if counts["refused"] or counts["ok"] != job.total:
        raise SystemExit(f"preview of job {job.pk}: {counts} (expected {job.total} ok); first row {rows[:1]}")
    run.job_id, run.items = job.pk, job.total
    BulkJob.objects.filter(pk=job.pk).update(status=BulkJob.Status.QUEUED)  # what start_job does, minus Celery


def progress_args(cfg: Config, mode: str) -> dict:
    if mode == "off":
        return dict(OFF)
    return {"progress_every": cfg.progress_every, "progress_interval_s": cfg.progress_interval}


def call_run_job(cfg: Config, run: Run, meter: Meter, listener: Listener | None, *, stop_after: int | None = None,
                 wrap=None, one_loop: bool = False, trace: bool = False) -> None:
    """One ``run_job`` call on ``run``'s job, measured and added to ``run``."""
    import tracemalloc

    from incidents import services

    job_id, progress = run.job_id, progress_args(cfg, run.mode)

    def call():
        if one_loop:  # wrapped below, as the profile's comparison does
            return services.run_job(job_id=job_id, stop_after=stop_after, **progress)
        # the production entry point (the Celery task and the embedded default's thread)
        return services.run_job_in_one_loop(job_id=job_id, stop_after=stop_after, **progress)

    runner = call
    if one_loop:
        # what a fix in the Celery task could do: run the job under one event loop, so each
        # send_now's async_to_sync schedules group_send on that loop instead of making a new
        # loop, thread and Redis connection per frame (the ASGI server gives views the same)
        from asgiref.sync import async_to_sync, sync_to_async

        async def main():
            return await sync_to_async(call, thread_sensitive=True)()

        runner = async_to_sync(main)
    gc.collect()
    meter.reset()
    rss0, maxrss0 = rss_mb(), maxrss_mb()
    if run.calls == 0:
        run.rss_before_mb = rss0
    if trace:
        tracemalloc.reset_peak()
        traced0 = tracemalloc.get_traced_memory()[0]
    listener0 = listener.cpu_s() if listener else 0.0
    machine0, cpu0 = machine_busy(), time.process_time()
    start = time.perf_counter()
    if wrap is not None:
        with wrap():
            job = runner()
    else:
        job = runner()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    machine1 = machine_busy()
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        run.trace.update(run_peak_mb=(peak - traced0) / 2**20, run_retained_mb=(current - traced0) / 2**20,
                         run_items=job.processed)
    run.calls += 1
    run.wall_s += wall
    run.slices.append(wall)
    run.cpu_s += cpu
    run.busy_jiffies[0] += machine1[0] - machine0[0]
    run.busy_jiffies[1] += machine1[1] - machine0[1]
    run.listener_cpu_s += (listener.cpu_s() - listener0) if listener else 0.0
    run.rss_after_mb = rss_mb()
    run.maxrss_delta_mb += maxrss_mb() - maxrss0
    run.reports += meter.reports
    run.report_s += meter.report_s
    for kind, n in meter.frames.items():
        seconds = meter.publish_s[kind]
        before = run.publish_by_kind.get(kind, [0, 0.0])
        run.publish_by_kind[kind] = [before[0] + n, before[1] + seconds]
        if kind.startswith("bulk.progress"):
            run.progress_frames += n
            run.progress_publish_s += seconds
        else:
            run.other_frames += n
            run.other_publish_s += seconds
    run.processed, run.status = job.processed, job.status


def check_done(run: Run) -> None:
    from incidents.models import BulkJob
    from tickets.models import Message

    job = BulkJob.objects.get(pk=run.job_id)
    posted = Message.objects.filter(client_msg_id__startswith=f"bulk-{job.pk}-").count()
    if (job.status, job.done_count, job.skipped_count, job.failed_count, posted) != ("done", job.total, 0, 0, job.total):
        raise SystemExit(f"job {job.pk} ended {job.status} done={job.done_count} skipped={job.skipped_count} "
                         f"failed={job.failed_count}, {posted} messages for {job.total} items")
    log(f"{run.label}: job #{job.pk} {run.items:,} items in {run.calls} call(s): create {run.create_s:.2f} s, "
        f"preview {run.preview_s:.2f} s, run {run.wall_s:.1f} s ({run.per_s:.0f} items/s), {run.reports} progress "
        f"reports ({run.report_s:.2f} s), {run.other_frames:,} other frames ({run.other_publish_s:.1f} s publishing), "
        f"busy cores {run.busy_cores:.2f}")


def whole_job(cfg: Config, ctx: dict, meter: Meter, listener: Listener | None, *, label: str, mode: str = "on",
              ticket_ids: list[int] | None = None, wrap=None, one_loop: bool = False) -> Run:
    run = Run(label=label, mode=mode)
    prepare(ctx, run, ticket_ids=ticket_ids)
    call_run_job(cfg, run, meter, listener, wrap=wrap, one_loop=one_loop)
    check_done(run)
    return run


def interleaved_pair(cfg: Config, ctx: dict, meter: Meter, listener: Listener | None, pair: int) -> tuple[Run, Run]:
    """Two identical jobs, progress on and off, run slice by slice in alternating order."""
    on = Run(label=f"pair {pair}: progress on", mode="on")
    off = Run(label=f"pair {pair}: progress off", mode="off")
    for run in (on, off) if pair % 2 else (off, on):
        prepare(ctx, run)
    slices = math.ceil(on.items / cfg.chunk)
    # one call more than slices: when the last slice ends exactly on the last item, the job is
    # still "running" and the next call finds nothing pending, reports and marks it done
    for index in range(slices + 1):
        order = (on, off) if (index + pair) % 2 else (off, on)
        for run in order:
            call_run_job(cfg, run, meter, listener, stop_after=cfg.chunk)
        if index < slices:
            log(f"pair {pair} slice {index + 1}/{slices}: on {on.slices[-1]:.1f} s, off {off.slices[-1]:.1f} s "
                f"({', '.join(r.mode for r in order)})")
    for run in (on, off):
        check_done(run)
    return on, off


# --- where one item's time goes ----------------------------------------------------------


def shape(sql: str) -> str:
    sql = re.sub(r"'(?:[^']|'')*'", "'…'", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "N", sql)
    sql = re.sub(r"\s+", " ", sql)
    words = sql.split(" ")
    verb = words[0].upper()
    table = next((w.strip('"') for w in words if w.startswith('"') and w.endswith('"') and "_" in w), "")
    if verb == "SELECT":
        table = re.search(r'FROM "(\w+)"', sql)
        table = table.group(1) if table else ""
        lock = " FOR UPDATE" if "FOR UPDATE" in sql else ""
        joins = sql.count(" JOIN ")
        where = re.search(r"WHERE (.{0,80})", sql)
        return f"SELECT {table}{f' +{joins} joins' if joins else ''}{lock} WHERE {where.group(1) if where else ''}"
    return f"{verb} {table}"


def profile(cfg: Config, ctx: dict, meter: Meter, listener: Listener | None) -> dict:
    """Where an item's time goes: every statement, COMMIT and publish timed; the same items
    under one event loop; a few items captured statement by statement; a publish probe."""
    from contextlib import contextmanager

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from incidents import services

    stats: dict[str, list] = defaultdict(lambda: [0, 0.0])
    commits = [0, 0.0]

    def timed(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry = stats[shape(sql)]
            entry[0] += 1
            entry[1] += time.perf_counter() - start

    @contextmanager
    def wrap():
        original = connection._commit

        def commit():
            start = time.perf_counter()
            try:
                return original()
            finally:
                commits[0] += 1
                commits[1] += time.perf_counter() - start

        connection._commit = commit  # the on_commit publishes run after it, not inside
        try:
            with connection.execute_wrapper(timed):
                yield
        finally:
            del connection._commit

    subset = ctx["ticket_ids"][: cfg.profile_items]
    vacuum_written()
    run = whole_job(cfg, ctx, meter, listener, label="profile: SQL timed", ticket_ids=subset, wrap=wrap)
    result = {"run": run, "stats": dict(stats), "commits": list(commits)}
    stats.clear()
    commits[:] = [0, 0.0]
    fixed = whole_job(cfg, ctx, meter, listener, label="same, one event loop", ticket_ids=subset, wrap=wrap,
                      one_loop=True)
    result.update(one_loop=fixed, one_loop_sql_s=sum(v[1] for v in stats.values()), one_loop_commit_s=commits[1])

    ids = ctx["ticket_ids"][: cfg.capture_items]
    small = Run(label="captured", mode="on")
    prepare(ctx, small, ticket_ids=ids)
    meter.reset()
    with CaptureQueriesContext(connection) as captured:
        services.run_job(job_id=small.job_id)
    result["captured"] = [(q["sql"], float(q["time"])) for q in captured.captured_queries]
    result["captured_items"] = len(ids)
    result["captured_frames"] = dict(meter.frames)
    result["captured_progress_frames"] = sum(v for k, v in meter.frames.items() if k.startswith("bulk.progress"))
    result["probe"] = publish_probe(ctx["original_send"])
    return result


def publish_probe(original_send, n: int = 300) -> dict:
    """One publish as ``core.realtime.send_now`` makes it from sync code
    (``async_to_sync``: a new thread and event loop, so channels_redis opens a
    new Redis connection, and closes it with the loop) against the same
    ``group_send`` awaited on one long-lived loop. To a group nobody joined."""
    import asyncio

    from channels.layers import get_channel_layer

    group, payload = "bench_probe", {"type": "bench.probe"}
    start = time.perf_counter()
    for _ in range(n):
        original_send(group, payload)
    per_call = (time.perf_counter() - start) / n
    layer = get_channel_layer()

    async def many() -> float:
        await layer.group_send(group, {"type": "broadcast", "payload": payload})  # connect once
        begin = time.perf_counter()
        for _ in range(n):
            await layer.group_send(group, {"type": "broadcast", "payload": payload})
        return (time.perf_counter() - begin) / n

    per_loop = asyncio.run(many())
    log(f"publish probe: send_now {1000 * per_call:.2f} ms per frame; group_send on one loop "
        f"{1000 * per_loop:.2f} ms per frame ({n} each)")
    return {"send_now_ms": 1000 * per_call, "one_loop_ms": 1000 * per_loop, "n": n}


def memory(cfg: Config, ctx: dict, meter: Meter, listener: Listener | None) -> Run:
    """tracemalloc peaks: create and preview over every ticket, run_job over --trace-items."""
    import tracemalloc

    run = Run(label="memory: tracemalloc", mode="on")
    vacuum_written()
    tracemalloc.start()
    try:
        prepare(ctx, run, trace=True)
        call_run_job(cfg, run, meter, listener, stop_after=cfg.trace_items, trace=True)
    finally:
        tracemalloc.stop()
    log(f"{run.label}: job #{run.job_id}: peak {run.trace['create_peak_mb']:.1f} MB in create_bulk_job, "
        f"{run.trace['preview_peak_mb']:.1f} MB in preview_job ({run.items:,} items), "
        f"{run.trace['run_peak_mb']:.2f} MB in run_job over {run.processed:,} items (left stopped there)")
    return run


# --- output ----------------------------------------------------------------------------


def machine_info(versions: dict) -> dict:
    import django

    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
    return {"cores": os.cpu_count(), "cpu": model, "ram_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "django": django.get_version(), **versions,
            "load_before": round(os.getloadavg()[0], 2)}


def git_source() -> str:
    """What this process imports: HEAD and the uncommitted changes when the run starts
    (the modules are loaded once, so later edits to the tree do not change the run)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]
    return f"working tree at {git('rev-parse', '--short', 'HEAD')}" + (
        f" with {len(dirty)} uncommitted change(s): {', '.join(dirty[:8])}" if dirty else " (clean)")


def summary(cfg: Config, setup: dict, warm: Run, single: Run, pairs: list[tuple[Run, Run]], prof: dict | None,
            traced: Run | None, heard: dict, machine: dict) -> dict:
    n = cfg.tickets
    line = "=" * 120
    print("\n" + line)
    print(f"SUMMARY: macro reply over {n:,} tickets of one incident; progress every {cfg.progress_every} items or "
          f"{cfg.progress_interval:g} s; {machine['cores']} cores ({machine['cpu']}), PostgreSQL {machine['postgresql']}, "
          f"Redis {machine['redis']}, Python {machine['python']}, Django {machine['django']}")
    print(line)
    print(f"{'job':<26}{'#':>4}{'create s':>9}{'preview s':>10}{'calls':>6}{'run s':>8}{'items/s':>8}{'ms/item':>8}"
          f"{'updates':>8}{'heard':>6}{'report s':>9}{'CPU s':>7}{'busy':>6}{'RSS MB':>10}{'maxrssΔ':>8}")
    jobs_heard = heard.get("jobs", {})
    extra = ([prof["run"], prof["one_loop"]] if prof else []) + ([traced] if traced else [])
    everyone = [warm, single, *[r for pair in pairs for r in pair], *extra]
    for r in everyone:
        got = jobs_heard.get(str(r.job_id), {}).get("frames", "-") if heard else "-"
        print(f"{r.label[:26]:<26}{r.job_id:>4}{r.create_s:9.2f}{r.preview_s:10.2f}{r.calls:>6}{r.wall_s:8.1f}"
              f"{r.per_s:8.0f}{r.ms_per_item:8.2f}{r.progress_frames:>8}{got!s:>6}{r.report_s:9.2f}{r.cpu_s:7.1f}"
              f"{r.busy_cores:6.2f}{f'{r.rss_before_mb:.0f}→{r.rss_after_mb:.0f}':>10}{r.maxrss_delta_mb:8.1f}")
    if traced:
        print("(the memory job ran under tracemalloc, ~2.5x slower; its times are not comparable)")

    # progress overhead, from the interleaved pairs
    on = [p[0] for p in pairs]
    off = [p[1] for p in pairs]
    t_on, t_off = sum(r.wall_s for r in on), sum(r.wall_s for r in off)
    overhead = (t_on - t_off) / t_off
    per_slice = []
    for a, b in pairs:
        # the closing calls (nothing left to do, the last of each job) are in the totals, not here
        for x, y in zip(a.slices[:-1], b.slices[:-1]):
            per_slice.append((x - y) / y)
    spread = statistics.stdev(per_slice) / math.sqrt(len(per_slice)) if len(per_slice) > 1 else float("nan")
    direct_s = sum(r.report_s for r in on) - sum(r.report_s for r in off)
    direct = direct_s / t_off
    c_on, c_off = sum(r.cpu_s for r in on), sum(r.cpu_s for r in off)
    cpu_overhead = (c_on - c_off) / c_off
    busiest = max(r.busy_cores for r in on + off)
    print()
    print(f"Progress overhead, {len(pairs)} interleaved pair(s) of {n:,}-item jobs in {cfg.chunk:,}-item slices: "
          f"on {t_on:.1f} s vs off {t_off:.1f} s = {100 * overhead:+.1f} %")
    if per_slice:
        print(f"  per slice ({len(per_slice)} pairs of adjacent slices): median {100 * statistics.median(per_slice):+.1f} %, "
              f"mean {100 * statistics.fmean(per_slice):+.1f} % ± {100 * spread:.1f} (standard error), "
              f"range {100 * min(per_slice):+.1f} … {100 * max(per_slice):+.1f} %")
    print(f"  inside the progress reports (UPDATE of the job row, re-read, publish to 'console'): "
          f"{sum(r.report_s for r in on):.2f} s for {sum(r.reports for r in on)} reports in the on jobs, "
          f"{sum(r.report_s for r in off):.2f} s for {sum(r.reports for r in off)} in the off jobs (one per slice "
          f"and the last) = {100 * direct:+.2f} % of t_off, {1000 * sum(r.report_s for r in on) / max(1, sum(r.reports for r in on)):.1f} ms per report")
    print(f"  this process's CPU: on {c_on:.1f} s vs off {c_off:.1f} s = {100 * cpu_overhead:+.1f} %")
    if busiest > BUSY_WARN_CORES:
        print(f"WARNING: up to {busiest:.2f} of {os.cpu_count()} cores were busy during the pairs (this benchmark, "
              f"PostgreSQL, Redis and the listener take about 1): other work competed; interleaving spreads it over "
              f"both modes, but the slices are noisier.")
    verdict = "MET" if overhead <= OVERHEAD_GOAL else "MISSED"
    print(f"Goal (progress slows the job by at most {100 * OVERHEAD_GOAL:.0f} %): {verdict} "
          f"({100 * overhead:+.1f} % measured; {100 * direct:+.2f} % spent in the reports themselves)")

    creates = [r.create_s for r in [single, *on, *off]]
    previews = [r.preview_s for r in [single, *on, *off]]
    print(f"create_bulk_job over {n:,} tickets: median {statistics.median(creates):.2f} s; preview_job (dry run over "
          f"every item): median {statistics.median(previews):.2f} s ({1000 * statistics.median(previews) / n:.2f} ms/item)")
    print(f"One uninterrupted {n:,}-item job with progress on: {single.wall_s:.1f} s, {single.per_s:.0f} items/s, "
          f"{single.progress_frames} progress updates ({single.reports} reports + the final frame)")
    if heard:
        types = heard.get("types", {})
        sent = sum(r.progress_frames for r in everyone) + (prof["captured_progress_frames"] if prof else 0)
        got = types.get("bulk.progress", 0)
        print(f"Listener on 'console': {got:,} bulk.progress frames received of {sent:,} sent"
              f"{' (some lost)' if got < sent else ''}; other frames received: "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(types.items()) if k != "bulk.progress")
              + (f"; {len(heard['errors'])} receive error(s), first: {heard['errors'][0]}" if heard.get("errors") else ""))
        gap = jobs_heard.get(str(single.job_id), {}).get("max_gap_s")
        if gap is not None:
            print(f"Longest silence between two progress frames of the uninterrupted job, as the console heard it: "
                  f"{gap:.2f} s")
    if traced:
        t = traced.trace
        print(f"Memory (tracemalloc): peak {t['create_peak_mb']:.1f} MB in create_bulk_job and "
              f"{t['preview_peak_mb']:.1f} MB in preview_job over {traced.items:,} items; run_job over "
              f"{t['run_items']:,} items {t['run_peak_mb']:.2f} MB above its start, {t['run_retained_mb']:.2f} MB still "
              f"held after it. RSS over the untraced runs: {min(r.rss_before_mb for r in everyone):.0f} → "
              f"{max(r.rss_after_mb for r in everyone):.0f} MB")
    out = {"tickets": n, "chunk": cfg.chunk, "jobs": [r.as_dict() for r in everyone], "overhead": overhead,
           "per_slice": per_slice, "direct_overhead": direct, "cpu_overhead": cpu_overhead, "goal_met": verdict == "MET",
           "max_busy_cores": busiest, "heard": heard, "machine": machine, "setup_s": setup["times"]}
    if prof:
        out["profile"] = profile_report(prof)
    print(f"Code measured: {machine['source']}")
    out["source"] = machine["source"]
    return out


def profile_report(prof: dict) -> dict:
    run: Run = prof["run"]
    n = run.processed
    stats = prof["stats"]
    sql_s = sum(v[1] for v in stats.values())
    queries = sum(v[0] for v in stats.values())
    commits, commit_s = prof["commits"]
    publish_s = run.other_publish_s + run.progress_publish_s
    frames = run.other_frames + run.progress_frames
    rest = run.wall_s - sql_s - commit_s - publish_s
    print(f"\n--- where an item's time goes (profile job, {n:,} items, {run.wall_s:.1f} s, {run.ms_per_item:.2f} ms/item; "
          f"each statement timed around the driver call) ---")
    print(f"{'part':<66}{'per item':>10}{'ms/item':>9}{'share':>7}")
    for name, count, seconds in (("SQL statements (round trips; the implicit BEGIN rides on the first)", queries / n, sql_s),
                                 ("COMMIT", commits / n, commit_s),
                                 ("channel-layer publishes (async_to_sync + channels_redis)", frames / n, publish_s),
                                 ("Python: ORM, rendering, the loop", None, rest)):
        print(f"{name:<66}{'' if count is None else f'{count:.2f}':>10}{1000 * seconds / n:9.3f}"
              f"{100 * seconds / run.wall_s:6.1f}%")
    print(f"{'statement':<92}{'per item':>9}{'ms each':>9}")
    for name, (count, seconds) in sorted(stats.items(), key=lambda kv: -kv[1][1]):
        print(f"{name[:92]:<92}{count / n:9.3f}{1000 * seconds / count:9.3f}")
    print("publishes (payload type → group): " + "; ".join(
        f"{kind} {count / n:.3f}/item, {1000 * seconds / count:.2f} ms each"
        for kind, (count, seconds) in sorted(run.publish_by_kind.items(), key=lambda kv: -kv[1][1])))
    probe = prof["probe"]
    print(f"publish probe ({probe['n']} frames to an empty group): send_now {probe['send_now_ms']:.2f} ms per frame "
          f"(async_to_sync: new thread + event loop + Redis connection each time); the same group_send on one "
          f"long-lived loop {probe['one_loop_ms']:.2f} ms")
    fixed: Run = prof["one_loop"]
    f_publish = fixed.other_publish_s + fixed.progress_publish_s
    f_frames = fixed.other_frames + fixed.progress_frames
    print(f"the same {n:,} items with run_job under one event loop (sync_to_async inside async_to_sync, as the Celery "
          f"task could call it): {fixed.ms_per_item:.2f} ms/item instead of {run.ms_per_item:.2f} "
          f"({100 * (fixed.ms_per_item / run.ms_per_item - 1):+.0f} %); publishes {1000 * f_publish / max(1, f_frames):.2f} "
          f"ms per frame instead of {1000 * publish_s / max(1, frames):.2f}; SQL {1000 * prof['one_loop_sql_s'] / n:.2f} "
          f"ms/item instead of {1000 * sql_s / n:.2f}")
    captured = prof["captured"]
    k = prof["captured_items"]
    print(f"\n--- CaptureQueriesContext over a run_job of {k} items: {len(captured)} statements "
          f"({len(captured) / k:.1f} per item with the job's fixed ones), frames {prof['captured_frames']} ---")
    for sql, seconds in captured:
        flat = re.sub(r"\s+", " ", sql)
        print(f"  {1000 * seconds:7.2f} ms  {flat[:150]}")
    return {"queries_per_item": queries / n, "sql_ms_per_item": 1000 * sql_s / n, "commits_per_item": commits / n,
            "commit_ms_per_item": 1000 * commit_s / n, "frames_per_item": frames / n,
            "publish_ms_per_item": 1000 * publish_s / n, "python_ms_per_item": 1000 * rest / n,
            "ms_per_item": run.ms_per_item, "statements": dict(stats), "publish_by_kind": run.publish_by_kind,
            "probe": probe, "one_loop": {"ms_per_item": fixed.ms_per_item,
                                         "publish_ms_per_frame": 1000 * f_publish / max(1, f_frames),
                                         "sql_ms_per_item": 1000 * prof["one_loop_sql_s"] / n},
            "captured_statements": len(captured), "captured_items": k}


# --- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Config | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=10_000, help="tickets linked to the incident = items per job")
    parser.add_argument("--pairs", type=int, default=1, help="interleaved pairs of progress-on/off jobs")
    parser.add_argument("--chunk", type=int, default=None,
                        help="items per slice of the interleaved pairs (default: a tenth of --tickets)")
    parser.add_argument("--progress-every", type=int, default=None, help="default: settings.BULK_PROGRESS_EVERY")
    parser.add_argument("--progress-interval", type=float, default=None,
                        help="default: settings.BULK_PROGRESS_INTERVAL_S")
    parser.add_argument("--warmup-items", type=int, default=100)
    parser.add_argument("--profile-items", type=int, default=2000, help="items of the SQL-timed profile jobs")
    parser.add_argument("--trace-items", type=int, default=2000, help="items run_job handles under tracemalloc")
    parser.add_argument("--capture-items", type=int, default=3, help="items shown statement by statement")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="skip the profile jobs")
    parser.add_argument("--no-trace", dest="trace", action="store_false", help="skip the tracemalloc job")
    parser.add_argument("--no-listener", dest="listener", action="store_false",
                        help="do not subscribe a console listener to the channel layer")
    parser.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")
    parser.add_argument("--listen", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    if a.listen:
        return None
    if not (100 <= a.tickets <= 20_000):
        parser.error("--tickets must be 100..20000 (a job takes at most 20,000 targets)")
    a.chunk = a.chunk or max(10, a.tickets // 10)
    if not (1 <= a.pairs <= 10) or not (10 <= a.chunk <= a.tickets):
        parser.error("--pairs must be 1..10 and --chunk 10..tickets")
    if not (1 <= a.warmup_items <= a.tickets) or not (1 <= a.capture_items <= 50):
        parser.error("--warmup-items must be 1..tickets and --capture-items 1..50")
    return Config(
        database_url=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cs_bench_bulk"),
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"),
        tickets=a.tickets, pairs=a.pairs, chunk=a.chunk, progress_every=a.progress_every,
        progress_interval=a.progress_interval, warmup_items=a.warmup_items, capture_items=a.capture_items,
        profile_items=max(1, min(a.profile_items, a.tickets)), trace_items=max(1, min(a.trace_items, a.tickets)),
        profile=a.profile, trace=a.trace, listener=a.listener, json_path=a.json_path,
    )


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    if cfg is None:
        listen()
        return
    check_targets(cfg)
    log(f"CS Workbench bulk-job benchmark; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    versions = recreate(cfg)
    app_env(cfg)
    import django

    django.setup()
    from django.conf import settings

    cfg.progress_every = cfg.progress_every or settings.BULK_PROGRESS_EVERY
    cfg.progress_interval = settings.BULK_PROGRESS_INTERVAL_S if cfg.progress_interval is None else cfg.progress_interval
    machine = machine_info(versions)
    machine["source"] = git_source()
    log(f"code: {machine['source']}")
    setup = seed(cfg)
    meter = Meter()
    setup["original_send"] = install_meters(meter)
    listener = Listener() if cfg.listener else None
    try:
        warm = whole_job(cfg, setup, meter, listener, label="warm-up",
                         ticket_ids=setup["ticket_ids"][: cfg.warmup_items])
        vacuum_written()
        single = whole_job(cfg, setup, meter, listener, label="one job, progress on")
        pairs = []
        for pair in range(1, cfg.pairs + 1):
            vacuum_written()
            pairs.append(interleaved_pair(cfg, setup, meter, listener, pair))
        prof = profile(cfg, setup, meter, listener) if cfg.profile else None
        traced = memory(cfg, setup, meter, listener) if cfg.trace else None
    finally:
        heard = listener.stop(setup["original_send"]) if listener else {}
    result = summary(cfg, setup, warm, single, pairs, prof, traced, heard, machine)
    if cfg.json_path:
        Path(cfg.json_path).write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    log(f"done in {time.perf_counter() - STARTED:.0f} s; the database stays for inspection")


if __name__ == "__main__":
    main()
