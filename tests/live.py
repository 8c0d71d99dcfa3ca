"""The production recipe started for real, for the tests that need it:
``scripts/serve`` (gunicorn + uvicorn workers, Celery worker and beat under
supervisord) on the test database, with a Redis server of its own that a test
may stop and start, and websocket clients that behave like the pages.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# set for the browser tests' event loop; a server process must not inherit it
TEST_ONLY_ENV = ("DJANGO_ALLOW_ASYNC_UNSAFE",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in TEST_ONLY_ENV}, **extra}


class PrivateRedis:
    """A Redis server of the test's own on a free port, to stop and restart."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class Served:
    """``scripts/serve`` running: its base URL and the processes behind it."""

    base: str
    process: subprocess.Popen
    redis: PrivateRedis
    log: Path
    env: dict[str, str]  # what it was started with (``scripts/deploy`` needs the same)

    @property
    def origin(self) -> str:
        return self.base

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://")

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.base.removeprefix("http://").rpartition(":")
        return host, int(port)

    def worker_pids(self) -> set[int]:
        """The ASGI worker processes (gunicorn's children, under the port's
        holder ``deploy/listen_first.py``, under supervisord)."""
        return {pid for pid, cmd in _processes()
                if "gunicorn" in cmd and "listen_first" not in cmd and _parent(_parent(_parent(pid))) == self.process.pid}

    def holder_pid(self) -> int:
        """``deploy/listen_first.py``, which holds the port: a deploy is its ``SIGHUP``."""
        return next(pid for pid, cmd in _processes() if "listen_first.py" in cmd and _parent(pid) == self.process.pid)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _processes() -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found.append((int(entry), cmd))
    return found


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])


def serve(*, database_url: str, tmp: Path, workers: int = 2, redis: PrivateRedis | None = None) -> Served:
    """Start the production recipe (``scripts/serve``) and wait until it answers."""
    redis = redis or PrivateRedis(tmp)
    if redis.process is None:
        redis.start()
    port = free_port()
    log = tmp / "serve.log"
    from django.conf import settings

    # the same key as the tests' process: the sessions they make must be valid there
    env = child_env(
        DATABASE_URL=database_url, REDIS_URL=redis.url, DEBUG="0", SECRET_KEY=settings.SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="0", SECURE_COOKIES="0", SECURE_HSTS_SECONDS="0",
        BIND=f"127.0.0.1:{port}", WEB_WORKERS=str(workers), SKIP_MIGRATE="1", SKIP_COLLECTSTATIC="1",
        RUN_DIR=str(tmp / "run"), CELERY_CONCURRENCY="1", PYTHON=sys.executable, DB_POOL_MAX="8",
    )
    process = subprocess.Popen([str(ROOT / "scripts" / "serve")], cwd=ROOT, env=env, stdout=log.open("w"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    served = Served(base=f"http://127.0.0.1:{port}", process=process, redis=redis, log=log, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("scripts/serve exited:\n" + served.log_text()[-3000:])
        try:
            if httpx.get(f"{served.base}/api/schema/", timeout=2).status_code in (200, 401, 403):
                if len(served.worker_pids()) >= workers:
                    return served
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(served)
    raise RuntimeError("scripts/serve did not answer within 60 s:\n" + served.log_text()[-3000:])


def stop(served: Served) -> None:
    try:
        os.killpg(served.process.pid, signal.SIGTERM)
        served.process.wait(timeout=40)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(served.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    served.redis.stop()


@dataclass
class ChatClient:
    """A chat page in a test: reconnects like ``static/js/chat.js`` (at once on
    1012/1013, else after a short pause; never on 4401/4403) and resumes from
    the last seq it showed."""

    url: str
    cookie: str
    origin: str
    messages: list[dict] = field(default_factory=list)
    frames: list[dict] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    served_by: list[str] = field(default_factory=list)
    last_seq: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task | None = None
    _ws: object = None
    stopped: bool = False

    def start(self, after_seq: int) -> None:
        self.last_seq = after_seq
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        import websockets

        while not self.stopped:
            sep = "&" if "?" in self.url else "?"
            try:
                async with websockets.connect(
                    f"{self.url}{sep}after_seq={self.last_seq}",
                    additional_headers={"Origin": self.origin, "Cookie": f"sessionid={self.cookie}"},
                    open_timeout=5, ping_interval=None,
                ) as ws:
                    self._ws = ws
                    self.served_by.append(ws.response.headers.get("x-served-by", ""))
                    self.connected.set()
                    async for raw in ws:
                        frame = json.loads(raw)
                        self.frames.append(frame)
                        if frame.get("type") == "message":
                            if frame["seq"] > self.last_seq:
                                self.last_seq = frame["seq"]
                                self.messages.append(frame)
                            else:
                                self.messages.append({**frame, "duplicate": True})
                        elif frame.get("type") == "resync":
                            await ws.send('{"type":"sync"}')
                    self.closes.append(ws.close_code)
            except websockets.ConnectionClosed as closed:
                self.closes.append(closed.rcvd.code if closed.rcvd else None)
            except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake):
                self.closes.append(None)
            finally:
                self._ws = None
                self.connected.clear()
            if self.closes and self.closes[-1] in (4401, 4403):
                return
            await asyncio.sleep(0.2)

    async def send(self, frame: dict) -> None:
        await self.connected.wait()
        await self._ws.send(json.dumps(frame))

    async def wait_for(self, predicate, timeout: float = 15) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; frames: {self.frames[-10:]}, closes: {self.closes}")
            await asyncio.sleep(0.05)

    def bodies(self) -> list[str]:
        return [m["body"] for m in self.messages]

    async def close(self) -> None:
        self.stopped = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()
