"""The harness every benchmark in ``bench/`` shares.

- **Targets**: ``check_targets`` refuses anything but a loopback PostgreSQL
  whose database name contains "bench" and a loopback Redis;
  ``recreate_database`` drops and recreates that database and empties the
  bench Redis db.
- **Code under test**: ``snapshot`` copies the working tree (``--ref
  worktree``) or a commit (``--ref HEAD``) to a temporary directory and runs
  ``collectstatic`` there, so edits made while a benchmark runs cannot change
  what it measures half-way; ``manage`` runs ``manage.py`` in that copy.
- **The server**: ``Server`` starts the app the way production runs it
  (``--server prod``, the default: gunicorn with ``--config
  python:cs_portal.gunicorn``, ``WEB_WORKERS=--workers`` uvicorn workers on
  one loopback port bound first by ``deploy/listen_first.py`` where the code
  has it, as ``scripts/serve`` starts it minus supervisord and Celery) or as
  one daphne process (``--server daphne``, the layout of the older figures),
  with production settings (DEBUG=0) minus the https-only
  switches. ``Server.cpu_s()`` is the CPU of the whole process tree: the
  gunicorn master, every worker alive, and those that already exited (a
  killed worker, a restarted master).
- **Measuring**: ``pct`` (nearest rank), ``proc_cpu_s``, ``tree_cpu_s``,
  ``cpu_by_command`` (PostgreSQL, Redis), ``machine_busy``, ``CpuMeter``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
DAPHNE = str(ROOT / ".venv" / "bin" / "daphne")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
SERVER_KINDS = ("prod", "daphne")
TICK = os.sysconf("SC_CLK_TCK")


# --- small helpers -------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for an empty list."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * p // 100)))
    return ordered[int(rank) - 1]


def is_loopback(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- CPU from /proc --------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def proc_cpu_s(pid: int) -> float:
    """user+system CPU seconds of a process (Linux /proc)."""
    fields = _stat_fields(pid)
    if fields is None:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICK


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (by the parent field of /proc/*/stat)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def gunicorn_workers(pid: int) -> list[int]:
    """The ASGI workers of the server started as ``pid``: gunicorn's children,
    under ``deploy/listen_first.py`` when that holds the port (during a deploy,
    the workers of both servers); a commit from before it held the port
    became gunicorn itself."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    if b"listen_first.py" not in command:
        return children_of(pid)
    return [worker for master in children_of(pid) for worker in children_of(master)]


def connections_by_process(port: int, pids: list[int]) -> dict[int, int]:
    """How many established TCP connections on local ``port`` each of ``pids``
    holds now (its accepted clients), from /proc: the socket inodes among each
    process's descriptors, matched against the kernel's connection table."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
                established.add(fields[9])
    counts = {}
    for pid in pids:
        count = 0
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(fd.path)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in established:
                    count += 1
        except OSError:
            pass
        counts[pid] = count
    return counts


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants alive now."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants alive now, plus those of the
    children they have reaped (gunicorn's master reaps a killed worker), so
    the sum only grows while the root lives."""
    total = 0.0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is not None:
            total += sum(int(x) for x in fields[11:15]) / TICK
    return total


def tree_pss_mb(pid: int) -> float:
    """Memory of ``pid`` and its descendants in MB, counted as PSS (pages shared
    between the preloaded master and its forked workers are split between them,
    not counted once per process as RSS would)."""
    total_kb = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
                        break
        except OSError:
            continue
    return total_kb / 1024


def cpu_by_command(names: tuple[str, ...]) -> float:
    """user+system CPU seconds of every process whose command is in ``names``
    (PostgreSQL, redis-server), with that of their exited children (the
    postmaster collects its finished backends'), so the sum only grows."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        if comm in names:
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, for a utilisation figure."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def scheduler_grouping() -> str:
    """How this kernel shares its cores between processes, for a benchmark
    that runs beside another load (the figures depend on it). With autogroup
    on, every session is weighed as one: each PostgreSQL backend is a session
    of its own (the postmaster's children call ``setsid``), a server's workers
    share the session they were started in (PERFORMANCE.md, 2026-12-06)."""
    from deploy.hostcheck import autogroup_setting  # what scripts/serve reads for its note

    enabled = autogroup_setting()
    if enabled is None:
        return "kernel: no autogroup setting (cores shared between threads)"
    if enabled:
        return ("kernel: sched_autogroup_enabled=1 (cores shared between sessions first: each PostgreSQL "
                "backend is one, the server's workers together another)")
    return "kernel: sched_autogroup_enabled=0 (cores shared between threads)"


class CpuMeter:
    """Client (this process), server (its whole process tree) and whole-machine
    CPU over a measured interval. ``server`` is a ``Server`` or a pid."""

    def __init__(self, server: "Server | int") -> None:
        self.server_cpu = server.cpu_s if isinstance(server, Server) else (lambda: proc_cpu_s(server))

    def __enter__(self) -> "CpuMeter":
        self.t0 = time.perf_counter()
        self.client0 = time.process_time()
        self.server0 = self.server_cpu()
        self.machine0 = machine_busy()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.t0
        self.client = time.process_time() - self.client0
        self.server = self.server_cpu() - self.server0
        busy1, total1 = machine_busy()
        busy0, total0 = self.machine0
        cores = os.cpu_count() or 1
        self.machine_cores = (busy1 - busy0) / max(1, total1 - total0) * cores


# --- configuration -------------------------------------------------------------


@dataclass
class Config:
    """What every benchmark needs; each adds its own fields in a subclass
    (all with defaults)."""

    database_url: str
    redis_url: str
    json_path: str | None = None
    ref: str = "worktree"
    keep_snapshot: bool = False
    server: str = "prod"  # "prod": gunicorn + uvicorn workers; "daphne": one daphne process
    workers: int = 2  # gunicorn workers with --server prod
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cs-bench-")))
    app: Path = ROOT  # the snapshot the app runs from (set by ``snapshot``)
    source: str = ""

    def app_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("DJANGO_DEBUG", "SQLITE_PATH", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"):
            env.pop(name, None)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            DEBUG="0",
            SECRET_KEY="bench",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            # production settings, minus what needs TLS: plain-http loopback
            SECURE_SSL_REDIRECT="0",
            SECURE_COOKIES="0",  # else the session and CSRF cookies are Secure-only
            SECURE_HSTS_SECONDS="0",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        return env

    def server_label(self) -> str:
        return server_label(self.server, self.workers)


def server_label(kind: str, workers: int) -> str:
    return f"gunicorn+uvicorn x{workers}" if kind == "prod" else "daphne x1"


def add_server_args(parser: argparse.ArgumentParser) -> None:
    """``--server`` and ``--workers``, the same in every benchmark."""
    parser.add_argument("--server", choices=SERVER_KINDS, default="prod",
                        help="'prod' (default): gunicorn --config python:cs_portal.gunicorn with --workers uvicorn "
                             "workers on one port, as scripts/serve runs it; 'daphne': one daphne process")
    parser.add_argument("--workers", type=int, default=2, help="WEB_WORKERS for --server prod (default 2)")


def check_server_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be 1..16")
    if args.server == "daphne":
        args.workers = 1  # one process; --workers applies to --server prod


def check_targets(cfg) -> tuple[str, str]:
    """Refuse anything but a loopback database whose name says it is a bench."""
    db = urlsplit(cfg.database_url)
    dbname = db.path.lstrip("/")
    if db.scheme not in ("postgres", "postgresql", "pgsql"):
        raise SystemExit(f"BENCH_DATABASE_URL must be PostgreSQL, got {db.scheme!r}")
    if not is_loopback(db.hostname):
        raise SystemExit(f"refusing a non-loopback database host {db.hostname!r}")
    if "bench" not in dbname or dbname in ("postgres", "template0", "template1"):
        raise SystemExit(f"refusing to drop database {dbname!r}: its name must contain 'bench'")
    redis = urlsplit(cfg.redis_url)
    if not is_loopback(redis.hostname):
        raise SystemExit(f"refusing a non-loopback Redis host {redis.hostname!r}")
    admin_url = urlunsplit((db.scheme, db.netloc, "/postgres", db.query, ""))
    return dbname, admin_url


def recreate_database(cfg: Config) -> None:
    dbname, admin_url = check_targets(cfg)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        version = conn.execute("SHOW server_version").fetchone()[0]
    log(f"database {dbname} recreated (PostgreSQL {version})")
    flush_redis(cfg)
    log(f"redis {cfg.redis_url} emptied (bench db)")


def flush_redis(cfg: Config, *, keep: str = "") -> None:
    """Empty the bench Redis db (throttle counters, Celery queue, channel
    layer), all but the keys matching the glob ``keep`` when given."""
    import redis  # a dependency of channels-redis, in the venv

    if urlsplit(cfg.redis_url).path.strip("/") in ("", "0"):
        raise SystemExit("use a Redis db of the bench's own (not db 0)")
    client = redis.Redis.from_url(cfg.redis_url)
    if not keep:
        client.flushdb()
    else:
        kept = set(client.scan_iter(match=keep, count=1000))
        doomed = [key for key in client.scan_iter(count=1000) if key not in kept]
        for start in range(0, len(doomed), 1000):
            client.delete(*doomed[start:start + 1000])
    client.close()


# --- the code under test --------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def snapshot(cfg: Config) -> None:
    """Copy the code under test to ``workdir/app``: the working tree or a commit."""
    dest = cfg.workdir / "app"
    dest.mkdir()
    head = git("rev-parse", "--short", "HEAD").strip()
    if cfg.ref == "worktree":
        names = [n for n in git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0") if n]
        copied = 0
        for name in names:
            src = ROOT / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                (dest / name).write_bytes(src.read_bytes())
                copied += 1
        dirty = [line for line in git("status", "--porcelain").splitlines() if line.strip()]
        cfg.source = f"working tree at {head}" + (f" with {len(dirty)} uncommitted change(s)" if dirty else " (clean)")
        log(f"snapshot of the {cfg.source}: {copied} files in {dest}")
    else:
        if cfg.ref.startswith("-"):
            raise SystemExit(f"--ref {cfg.ref!r} is not a commit")
        commit = git("rev-parse", "--verify", f"{cfg.ref}^{{commit}}").strip()
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
        subject = git("log", "-1", "--format=%s", commit).strip()
        cfg.source = f"commit {commit[:7]} ({subject[:60]})"
        log(f"snapshot of {cfg.source} in {dest}")
    cfg.app = dest
    manage(cfg, "collectstatic", "--noinput", "-v0")


def manage(cfg: Config, *args: str, timeout: float = 900) -> str:
    started = time.perf_counter()
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=cfg.app, env=cfg.app_env(), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"manage.py {' '.join(args)} failed ({result.returncode})")
    log(f"manage.py {' '.join(args)}: {time.perf_counter() - started:.1f} s")
    return result.stdout


def seed_demo(cfg: Config) -> list[str]:
    """``seed_demo`` on production settings (DEBUG=0) must be told the database
    is a demo one; a snapshot from before that flag runs without it."""
    source = (cfg.app / "cs_portal" / "management" / "commands" / "seed_demo.py").read_text()
    return ["seed_demo", "--demo-database"] if "--demo-database" in source else ["seed_demo"]


# --- the server ------------------------------------------------------------------


class Server:
    """The app on a free loopback port, as production runs it (``kind="prod"``:
    gunicorn + ``workers`` uvicorn workers) or as one daphne process.

    ``Server(cfg, label)`` takes the kind, worker count, code and environment
    from a ``Config``; ``app``/``env``/``log_dir`` can be given instead by a
    benchmark that has no ``Config``. ``stop`` + ``start`` restarts it on the
    same port (the log is appended to).
    """

    def __init__(self, cfg: Config | None = None, label: str = "server", *, kind: str | None = None,
                 workers: int | None = None, app: Path | None = None, env: dict[str, str] | None = None,
                 log_dir: Path | None = None, port: int | None = None) -> None:
        self.cfg = cfg
        self.kind = kind or (cfg.server if cfg else "prod")
        if self.kind not in SERVER_KINDS:
            raise ValueError(f"server kind {self.kind!r}: one of {SERVER_KINDS}")
        self.workers = workers or (cfg.workers if cfg else 2)
        self.app = app or (cfg.app if cfg else ROOT)
        self._env = env
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        self.label = server_label(self.kind, self.workers)
        name = "gunicorn" if self.kind == "prod" else "daphne"
        self.log_path = (log_dir or (cfg.workdir if cfg else Path(tempfile.mkdtemp(prefix="cs-bench-")))) / \
            f"{name}-{label}.log"
        self.proc: subprocess.Popen | None = None
        self.dead_cpu_s = 0.0  # CPU of the earlier incarnations (restarts), with their workers
        self.started_at = float("nan")  # monotonic
        self.answered_at = float("nan")  # monotonic: the first HTTP answer after start

    # what is run

    def env(self) -> dict[str, str]:
        env = dict(self._env) if self._env is not None else self.cfg.app_env()
        if self.kind == "prod":
            env.update(BIND=f"127.0.0.1:{self.port}", WEB_WORKERS=str(self.workers), ACCESS_LOG="0")
        return env

    def command(self) -> list[str]:
        if self.kind == "daphne":
            return [DAPHNE, "-b", "127.0.0.1", "-p", str(self.port), "cs_portal.asgi:application"]
        if not (self.app / "cs_portal" / "gunicorn.py").exists():
            raise SystemExit(f"--server prod: {self.app} has no cs_portal/gunicorn.py (use --server daphne for this ref)")
        gunicorn = [GUNICORN, "--config", "python:cs_portal.gunicorn", "cs_portal.asgi:application"]
        listen_first = self.app / "deploy" / "listen_first.py"
        # as deploy/supervisord.conf starts it: the port bound before the app imports
        return [sys.executable, str(listen_first), *gunicorn] if listen_first.exists() else gunicorn

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else -1

    # lifecycle

    def launch(self) -> None:
        """Start the process and return at once (``wait_ready`` waits for it)."""
        if getattr(self, "_log", None):
            self._log.close()  # a restart: the same log, appended to
        self._log = open(self.log_path, "a")
        self._log.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.command())}\n")
        self._log.flush()
        self.started_at = time.monotonic()
        self.answered_at = float("nan")
        self.proc = subprocess.Popen(self.command(), cwd=self.app, env=self.env(), stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def listening(self) -> bool:
        """The port accepts TCP connections (gunicorn's master has bound it;
        its workers may still be booting)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def answers(self) -> bool:
        try:
            httpx.get(self.base + "/api/v1/tickets/", timeout=2)  # any HTTP answer (401) will do
        except httpx.TransportError:
            return False
        if self.answered_at != self.answered_at:
            self.answered_at = time.monotonic()
        return True

    def wait_ready(self, timeout: float = 90, quiet: bool = False) -> None:
        """Until it answers HTTP and (prod) every worker is up and has finished
        booting (each one idle for a moment: nothing is still importing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.label} exited ({self.proc.returncode}); log:\n{self.tail(30)}")
            if self.answers():
                break
            time.sleep(0.2)
        else:
            raise SystemExit(f"{self.label} did not answer within {timeout:.0f} s; log:\n{self.tail(30)}")
        if self.kind == "prod":
            while time.monotonic() < deadline:
                workers = self.worker_pids()
                if len(workers) >= self.workers:
                    before = {pid: proc_cpu_s(pid) for pid in workers}
                    time.sleep(0.3)
                    if all(proc_cpu_s(pid) - cpu < 0.05 for pid, cpu in before.items()):
                        break
                else:
                    time.sleep(0.2)
            else:
                raise SystemExit(f"{self.label}: {len(self.worker_pids())} of {self.workers} workers up after "
                                 f"{timeout:.0f} s; log:\n{self.tail(30)}")
        if not quiet:
            workers = f", workers {sorted(self.worker_pids())}" if self.kind == "prod" else ""
            log(f"{self.label} pid {self.proc.pid}{workers} answers on {self.base} "
                f"({time.monotonic() - self.started_at:.1f} s; log {self.log_path})")

    def start(self) -> None:
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop(timeout=5)  # a server that never came up is not left behind, respawning its workers
            raise

    def worker_pids(self) -> list[int]:
        """gunicorn's workers (``gunicorn_workers``); daphne: the process itself."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return gunicorn_workers(self.proc.pid) if self.kind == "prod" else [self.proc.pid]

    def signal(self, sig: int) -> float:
        """Send ``sig`` to the master (daphne: the process); returns the monotonic time."""
        at = time.monotonic()
        self.proc.send_signal(sig)
        return at

    def reap(self, timeout: float) -> bool:
        """Wait for the master to exit, adding its CPU (with its reaped workers')."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                self.proc.returncode = self.proc.returncode if self.proc.returncode is not None else -1
                return True
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.dead_cpu_s += usage.ru_utime + usage.ru_stime
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.returncode is None:
            orphans = process_tree(self.proc.pid)[1:]
            self.proc.send_signal(signal.SIGTERM)
            if not self.reap(timeout):
                for pid in [self.proc.pid, *orphans]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.reap(10)
                log(f"{self.label} pid {self.proc.pid} did not stop within {timeout:.0f} s: killed")
            else:
                log(f"{self.label} pid {self.proc.pid} stopped")
            for pid in orphans:  # a worker the master left behind
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if getattr(self, "_log", None):
            self._log.close()

    def pss_mb(self) -> float:
        """Memory of the server's processes now (PSS, MB); 0 when it is not running."""
        if self.proc is None or self.proc.returncode is not None:
            return 0.0
        return tree_pss_mb(self.proc.pid)

    def cpu_s(self) -> float:
        """CPU seconds of every process this server has run so far."""
        live = 0.0
        if self.proc is not None and self.proc.returncode is None:
            live = tree_cpu_s(self.proc.pid)
        return self.dead_cpu_s + live

    # the log

    def tail(self, lines: int = 12) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def last_error(self) -> str:
        """The last exception line the server logged, to explain a 500."""
        for line in reversed(self.log_path.read_text(errors="replace").splitlines()):
            if re.match(r"^[\w.]+(Error|Exception|DoesNotExist)\b", line.strip()):
                return line.strip()[:200]
        return ""
