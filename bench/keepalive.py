"""The keep-alive race: a request sent on an idle connection just as the
server closes it is reset under it.

    .venv/bin/python bench/keepalive.py [--connections 200] [--idle 5] [--burners 3] [--server-keepalive 5,75]

For each server keep-alive (``WEB_KEEPALIVE``, production's gunicorn with one
uvicorn worker on a loopback port, database ``cs_bench_keepalive``), opens
``--connections`` connections 50 ms apart; each answers one request, sits idle
for ``--idle`` seconds give or take a few milliseconds (30 ms under to 10 ms
over), then does what a careful client (httpx, a balancer) does before reusing
a connection: if the server's close has already arrived (the socket is
readable) the connection is dropped ("seen closed"), else the next request is
sent on it ("answered", or "reset" when the server closed it under the
request). ``--burners`` processes spin on the CPU meanwhile, as a peak's load
would, so that the server's event loop runs late.

A reset request is one the client cannot know the fate of; a balancer answers
it with a 502 and does not retry a POST. The fix is the server keeping idle
connections longer than its clients do (``cs_portal/gunicorn.py``).
"""

from __future__ import annotations

import argparse
import os
import random
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import Server  # noqa: E402
from bench.owndb import recreate_database  # noqa: E402

DB = "postgres://postgres@127.0.0.1:5432/cs_bench_keepalive"
REQUEST = b"GET /api/v1/tickets/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # a 401: no database work


def exchange(sock: socket.socket) -> None:
    """One request, its answer read whole; ConnectionError if the server closed instead."""
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before answering")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the answer")
        body += chunk


def probe(port: int, idle: float, index: int, results: dict[str, int], lock: threading.Lock) -> None:
    time.sleep(index * 0.05)
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        exchange(sock)
        time.sleep(idle + random.uniform(-0.03, 0.01))
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            outcome = "seen closed"
        else:
            try:
                exchange(sock)
                outcome = "answered"
            except OSError:  # ConnectionResetError, or the ConnectionError above
                outcome = "reset"
    finally:
        sock.close()
    with lock:
        results[outcome] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--idle", type=float, default=5.0, help="the clients' idle time, seconds (default 5)")
    parser.add_argument("--burners", type=int, default=3, help="CPU-bound processes beside the server (default 3)")
    parser.add_argument("--server-keepalive", default="5,75", help="WEB_KEEPALIVE values to try (default 5,75)")
    args = parser.parse_args()

    recreate_database(DB)
    env = {**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH")},
           "DATABASE_URL": DB, "DEBUG": "0", "SECRET_KEY": "bench-keepalive-only", "ALLOWED_HOSTS": "127.0.0.1",
           "SECURE_SSL_REDIRECT": "0", "SECURE_HSTS_SECONDS": "0", "SECURE_COOKIES": "0",
           "DJANGO_SETTINGS_MODULE": "cs_portal.settings", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    for keepalive in args.server_keepalive.split(","):
        server = Server(kind="prod", workers=1, app=ROOT, env={**env, "WEB_KEEPALIVE": keepalive},
                        log_dir=Path(tempfile.mkdtemp(prefix="cs-bench-keepalive-")), label="keepalive")
        server.start()
        results = {"answered": 0, "seen closed": 0, "reset": 0}
        lock = threading.Lock()
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
        try:
            threads = [threading.Thread(target=probe, args=(server.port, args.idle, i, results, lock))
                       for i in range(args.connections)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for burner in burners:
                burner.kill()
            server.stop()
        print(f"server keep-alive {keepalive} s, clients idle {args.idle} s (-30/+10 ms), {args.burners} CPU burners: "
              f"{results['answered']} answered, {results['seen closed']} seen closed before reuse, "
              f"{results['reset']} reset under the request")
    recreate_database(DB, drop_only=True)


if __name__ == "__main__":
    main()
