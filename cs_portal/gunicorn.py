"""gunicorn settings for production (``scripts/serve``): N uvicorn workers
(uvloop, httptools, websockets) on one port, N from the CPU count.

Every value comes from the environment, so one machine's shape is set where
it is started: ``WEB_WORKERS``, ``BIND``, ``FORWARDED_ALLOW_IPS`` (the
balancers whose ``X-Forwarded-*`` headers are believed), ``ACCESS_LOG`` (off
by default: one line per request costs CPU at peak; the balancer logs),
``WEB_KEEPALIVE`` (seconds an idle HTTP connection is kept, below),
``WEB_WARMUP`` (the master loads what workers would, ``cs_portal.warmup``: ``auto``,
the default, what sockets need, and what pages need too on a deploy; ``1`` all of
it always; ``0`` nothing),
``WEB_GC_THRESHOLD`` (the workers' ``gc.set_threshold``) and ``WEB_SLOW_GC_MS``
(a collection longer than this is logged: it stalls every socket of its worker).
"""

import multiprocessing
import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_WORKERS") or multiprocessing.cpu_count())
worker_class = "cs_portal.workers.Worker"  # uvicorn's, without permessage-deflate
# the app is imported once in the master and forked: a worker that dies is
# replaced in milliseconds, not the seconds Django takes to import, so its
# sockets' pages find a live worker when they reconnect (no connection is
# opened at import time: the database pool and Redis connect in each worker)
preload_app = os.environ.get("WEB_PRELOAD", "1") == "1"
# a worker whose event loop is stuck this long is killed and replaced
timeout = int(os.environ.get("WEB_WORKER_TIMEOUT", "30"))
# on a deploy or a stop, sockets close with 1012 and the pages come back at once
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "20"))
# An idle keep-alive connection is closed by whichever side times out first, and
# a request sent on it just as the server closes it is lost: the connection is
# reset under it and the client cannot tell whether it ran. Behind a balancer that
# keeps upstream connections (nginx 60 s, AWS ALB 60 s by default) the server
# must outlast it, so the balancer always closes first. With uvicorn's 5 s, 3 in
# 200 connections reused at the 5 s mark on a busy worker were reset
# (PERFORMANCE.md, 2026-12-04 night). Set it above the balancer's idle timeout
# (Google's: 600 s, so 620).
keepalive = int(os.environ.get("WEB_KEEPALIVE", "75"))
backlog = 4096
# gunicorn's control socket (``gunicornc``) sits at one path per user
# ($HOME/.gunicorn/gunicorn.ctl): every server of the machine, a deploy's new
# one beside the old included, would take it from the one before. Signals
# through supervisord are the interface (deploy/listen_first.py: HUP deploys).
control_socket_disable = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-" if os.environ.get("ACCESS_LOG", "0") == "1" else None
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "warning")


def post_fork(server, worker):
    """Objects imported before the fork (Django, the app) never become garbage:
    move them out of the collector's sight, and collect young objects less
    often. A full collection over a preloaded Django and a thousand sockets
    stalled every socket of the worker for tens of milliseconds (the chat
    benchmark's p99 at 2,000 clients)."""
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    _log_slow_collections(server.log)


# deploy/listen_first.py, which holds the port, reads from this pipe when a
# server it started for a deploy is up: the master's "workers N" once the app is
# loaded, then each worker's "worker PID" (its hooks, below)
_HOLDER_FD = int(os.environ.pop("CS_READY_FD", "") or -1)
if _HOLDER_FD >= 0:
    os.set_inheritable(_HOLDER_FD, False)  # the workers have it through fork; no program they start does


def _tell_holder(line: str) -> None:
    if _HOLDER_FD < 0:
        return
    try:
        os.write(_HOLDER_FD, f"{line}\n".encode())  # one write under PIPE_BUF: lines never interleave
    except OSError:  # the holder stopped reading (it exits, or this server is up already)
        pass


GC_THRESHOLD = tuple(int(x) for x in os.environ.get("WEB_GC_THRESHOLD", "50000,50,100").split(","))
SLOW_GC_S = float(os.environ.get("WEB_SLOW_GC_MS", "50")) / 1000


def _log_slow_collections(log) -> None:
    """A collection that stalls the worker's event loop (every socket on it)
    longer than WEB_SLOW_GC_MS is logged with its generation and what it found."""
    import gc
    import time

    started = [0.0]

    def watch(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = time.perf_counter() - started[0]
        if took >= SLOW_GC_S:
            log.warning("slow garbage collection: generation %s took %.0f ms (%s collected, %s uncollectable)",
                        info.get("generation"), took * 1000, info.get("collected"), info.get("uncollectable"))

    gc.callbacks.append(watch)


def when_ready(server):
    """In the master, after the app is imported and before the first fork:
    load what the workers' first requests would (``cs_portal.warmup``; what
    pages need only on a deploy, where nobody waits for it)."""
    import time

    _tell_holder(f"workers {server.num_workers}")
    mode = os.environ.get("WEB_WARMUP", "auto")
    if mode == "0":
        return
    from cs_portal.warmup import warm_up

    started = time.perf_counter()
    # what pages need too when nobody waits for it: beside a running server (a deploy), or if asked
    templates = warm_up(pages=mode == "1" or os.environ.get("CS_DEPLOY") == "1")
    server.log.info("warmed up in %.2f s (%d templates)", time.perf_counter() - started, templates)


def post_worker_init(worker):
    """In each worker, about to serve: tell the socket's holder (a deploy
    waits for every new worker before it stops the old server)."""
    _tell_holder(f"worker {worker.pid}")


def on_exit(server):
    """The master's last step when it stops, its workers gone: keep its heap
    (Django and the app it preloaded) out of the interpreter's final
    collections. They walked every object the master had imported, about a
    quarter of a second of CPU while the old process still ran and a cold
    restart waited for it to go (0.65-0.72 s from SIGTERM to exit with no
    socket open, 0.45 s frozen; PERFORMANCE.md). Everything else of the exit
    is as before: atexit handlers, the logs flushed, the exit status."""
    import gc

    gc.freeze()
