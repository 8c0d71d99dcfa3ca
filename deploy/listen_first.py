"""Listen on the port first, hold it, and run the server under it: ``listen_first.py PROGRAM [ARGS...]``.

A cold start of the web server (a crash, ``supervisorctl restart web``, a
machine booting) spends a second or two importing Django and the app before
gunicorn could bind its port. Every page and chat socket that reconnects in
that time would be refused and back off, and the last of them come back well
after the server could take them. Bound first, the kernel accepts their
connections into the backlog while the app imports, and the workers answer
them the moment they are up.

This binds ``BIND`` (``host:port``, as gunicorn reads it; default
``0.0.0.0:8000``) with the backlog of ``cs_portal/gunicorn.py`` (4,096) and
runs PROGRAM as its child, handing the socket over as systemd's socket
activation does (file descriptor 3, ``LISTEN_FDS=1``, ``LISTEN_PID`` = the
child); gunicorn serves an inherited socket natively. It stays as the parent,
holding the socket, for one reason: a deploy.

**A deploy** (``SIGHUP`` to this process: ``supervisorctl signal HUP web``)
starts PROGRAM again beside the running one, on the same socket: the new
gunicorn master imports the new code and forks its workers while the old
workers go on serving, and only once every new worker is up is the old
master stopped (``SIGTERM``: its workers finish their requests and close their
sockets with 1012, and the pages reconnect at once, to the new workers). The
port never closes and no request meets a server that is not up. If the new
server exits before it is up (code that does not import, a bad setting), or
is not up within ``DEPLOY_TIMEOUT`` seconds (default 120), the old one goes on
serving and the failure is logged. gunicorn's own ``SIGHUP`` could not do
this: its master preloads the app (``preload_app``), and workers it forks
again run the code it loaded at its start, not the code on disk.

A deploy's new server has ``CS_DEPLOY=1`` in its environment (the first
one has not): nobody waits for it, so it loads what pages need before its
workers start (``cs_portal/warmup.py``), where a cold start does not.

The new server says when it is up through a pipe named by ``CS_READY_FD``
(``cs_portal/gunicorn.py``: the master writes ``workers N`` once it has
loaded the app, each worker ``worker PID`` once it has started). A PROGRAM
that never writes there gets ``SIGHUP`` forwarded instead, as before.

Every other signal (``TERM``, ``INT``, ``QUIT`` to stop; ``TTIN``, ``TTOU``,
``USR1``, ``USR2``, ``WINCH``) goes to the running server; on a stop this
process waits for it and exits with its status. If the server exits by
itself, so does this process, with its status (supervisord restarts both).

Imports nothing but the standard library: it starts in milliseconds and holds
a few megabytes. Under systemd it can be the service itself (``ExecReload=/bin/kill
-HUP $MAINPID``); with a ``.socket`` unit, which keeps the port open even while
the service restarts, it takes the socket systemd hands it (``LISTEN_FDS=1`` for
this process) instead of binding one. A ``unix:`` or ``fd://`` address is passed
through unchanged and PROGRAM is run in this process's place.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time

SD_LISTEN_FDS_START = 3
BACKLOG = 4096  # cs_portal/gunicorn.py's backlog, which gunicorn sets again on the socket it inherits
READY_FD = "CS_READY_FD"
DEPLOY_ENV = "CS_DEPLOY"  # "1" in a deploy's new server, started while the old one serves
STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
FORWARDED = (*STOPS, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
HANDLED = (*FORWARDED, signal.SIGHUP, signal.SIGCHLD)  # the holder's own handlers


def address(bind: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` as a socket address; None for a unix
    socket, an inherited descriptor or a port without a host."""
    if bind.startswith(("unix:", "fd://")) or ":" not in bind:
        return None
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def listen(where: tuple[str, int], backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in where[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart binds over TIME_WAIT, as gunicorn does
    sock.bind(where)
    sock.listen(backlog)
    return sock


def handed_over() -> bool:
    """systemd's socket activation handed this process one socket (descriptor 3)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        return False
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):  # each server started gets its own
        os.environ.pop(name, None)
    return True


def log(message: str) -> None:
    print(f"[listen_first {os.getpid()}] {message}", file=sys.stderr, flush=True)


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


class Generation:
    """One run of PROGRAM on the held socket, and what it said of its start."""

    def __init__(self, argv: list[str], *, deploy: bool = False) -> None:
        read, write = os.pipe()
        # a signal the holder forwards to the child before it has exec'd PROGRAM would be taken by
        # the holder's handlers the child inherited, and lost: held back across the fork, the
        # child meets it (a stop) with the default action, the parent with its own handlers
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        pid = os.fork()
        if pid == 0:  # the child: the socket and the pipe handed over, then PROGRAM
            try:
                for number in HANDLED:
                    signal.signal(number, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
                os.close(read)
                os.set_inheritable(write, True)
                os.set_inheritable(SD_LISTEN_FDS_START, True)
                os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), **{READY_FD: str(write)})
                # a deploy's server starts beside one that serves: it may take its time (the warm-up)
                os.environ.pop(DEPLOY_ENV, None)
                if deploy:
                    os.environ[DEPLOY_ENV] = "1"
                os.execv(argv[0], argv)
            finally:
                os._exit(127)  # exec failed: the parent sees the status
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        os.close(write)
        self.pid, self.ready_fd = pid, read
        self.started = time.monotonic()
        self.workers: int | None = None  # how many workers it said it starts
        self.up: set[str] = set()  # the workers that said they started
        self._buffer = b""

    @property
    def speaks(self) -> bool:
        """It reported its workers (gunicorn with cs_portal/gunicorn.py)."""
        return self.workers is not None

    @property
    def ready(self) -> bool:
        return self.workers is not None and len(self.up) >= self.workers

    def read(self) -> None:
        try:
            data = os.read(self.ready_fd, 4096)
        except OSError:
            data = b""
        if not data:  # every writer gone (the server exited); it reports nothing more
            self.close()
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            kind, _, value = line.decode(errors="replace").partition(" ")
            if kind == "workers" and value.isdigit():
                self.workers = int(value)
            elif kind == "worker":
                self.up.add(value)

    def close(self) -> None:
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None


class Holder:
    """The socket's holder: the running server, a deploy's new one, the old
    ones still stopping."""

    def __init__(self, argv: list[str], deploy_timeout: float) -> None:
        self.argv = argv
        self.deploy_timeout = deploy_timeout
        self.current: Generation | None = None  # started by run(), once the signals are ours
        self.incoming: Generation | None = None
        self.retiring: dict[int, Generation] = {}
        self.stopping = False
        self.status: int | None = None  # the running server's exit status, once it has exited

    def run(self) -> int:
        wake_read, wake_write = os.pipe()
        for fd in (wake_read, wake_write):
            os.set_blocking(fd, False)
        signals: list[int] = []
        for number in HANDLED:
            signal.signal(number, lambda number, frame: signals.append(number))
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        self.current = Generation(self.argv)
        while True:
            fds = [wake_read, *(g.ready_fd for g in self._generations() if g.ready_fd is not None)]
            readable, _, _ = select.select(fds, [], [], 1.0)
            if wake_read in readable:
                while True:
                    try:
                        if not os.read(wake_read, 512):
                            break
                    except BlockingIOError:
                        break
            for generation in self._generations():
                if generation.ready_fd is not None and generation.ready_fd in readable:
                    generation.read()
            while signals:
                self._signalled(signals.pop(0))
            self._reap()
            self._watch_deploy()
            if self.current is None and not self.retiring and self.incoming is None:
                return self.status if self.status is not None else 0

    def _generations(self) -> list[Generation]:
        return [g for g in (self.current, self.incoming, *self.retiring.values()) if g is not None]

    def _signalled(self, number: int) -> None:
        if number == signal.SIGCHLD:
            return  # reaped below
        if number in STOPS:
            self.stopping = True
            for generation in self._generations():
                self._send(generation, number)
        elif number == signal.SIGHUP:
            self._deploy()
        elif self.current is not None:
            self._send(self.current, number)

    def _deploy(self) -> None:
        if self.stopping or self.current is None:
            return
        if not self.current.speaks:  # a PROGRAM that does not report its start: its own reload
            self._send(self.current, signal.SIGHUP)
            return
        if self.incoming is not None:
            log(f"deploy: one is under way already (new server {self.incoming.pid}); this one is ignored")
            return
        self.incoming = Generation(self.argv, deploy=True)
        log(f"deploy: new server {self.incoming.pid} starting beside {self.current.pid}")

    def _watch_deploy(self) -> None:
        incoming = self.incoming
        if incoming is None or self.stopping:  # a stop has told every server to go already
            return
        if incoming.ready and self.current is not None:
            old = self.current
            self.current, self.incoming = incoming, None
            self.retiring[old.pid] = old
            log(f"deploy: new server {incoming.pid} up in {time.monotonic() - incoming.started:.1f} s with "
                f"{incoming.workers} workers; stopping the old one ({old.pid})")
            self._send(old, signal.SIGTERM)
        elif time.monotonic() - incoming.started > self.deploy_timeout:
            log(f"deploy failed: new server {incoming.pid} not up within {self.deploy_timeout:.0f} s "
                f"({len(incoming.up)} of {incoming.workers} workers); the old one ({self.current.pid}) goes on serving")
            self._send(incoming, signal.SIGTERM)
            self.retiring[incoming.pid] = incoming
            self.incoming = None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._exited(pid, status)

    def _exited(self, pid: int, status: int) -> None:
        if pid in self.retiring:  # an old server after a deploy, or a new one that was not up in time
            self.retiring.pop(pid).close()
            log(f"stopped server {pid} exited ({exit_code(status)})")
        elif self.incoming is not None and pid == self.incoming.pid:
            self.incoming.close()
            self.incoming = None
            if not self.stopping:
                log(f"deploy failed: new server {pid} exited ({exit_code(status)}) before it was up; "
                    f"the old one ({self.current.pid if self.current else '-'}) goes on serving")
        elif self.current is not None and pid == self.current.pid:
            self.current.close()
            self.current, self.status = None, exit_code(status)
            if not self.stopping:
                # the server stopped by itself: so does its holder (supervisord starts both again), and a
                # deploy under way stops with it rather than serving unsupervised
                log(f"server {pid} exited ({self.status}); stopping")
                self.stopping = True
                for generation in self._generations():
                    self._send(generation, signal.SIGTERM)

    @staticmethod
    def _send(generation: Generation, number: int) -> None:
        try:
            os.kill(generation.pid, number)
        except ProcessLookupError:
            pass


def hold(argv: list[str]) -> None:
    """Run PROGRAM under the socket on descriptor 3, through deploys, until it stops."""
    sys.exit(Holder(argv, deploy_timeout=float(os.environ.get("DEPLOY_TIMEOUT", "120"))).run())


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__.split("\n", 1)[0])
    if handed_over():  # systemd's .socket unit holds the port already: hold it from here
        hold(argv)
    where = address(os.environ.get("BIND", "0.0.0.0:8000"))
    if where is None:  # nothing to hold: the program binds its own
        os.execv(argv[0], argv)
    try:
        sock = listen(where, BACKLOG)
    except OSError as error:
        sys.exit(f"listen_first: cannot listen on {where[0]}:{where[1]}: {error.strerror}")
    if sock.fileno() != SD_LISTEN_FDS_START:
        # the lowest free descriptor was not 3: something this process
        # inherited holds it, and handing ours over would close that
        sys.exit(f"listen_first: file descriptor {SD_LISTEN_FDS_START} is taken; start it without extra "
                 "descriptors open (supervisord and systemd do)")
    hold(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
