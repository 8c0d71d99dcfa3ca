"""Listen on the port first, then become the server: ``listen_first.py PROGRAM [ARGS...]``.

A cold start of the web server (a crash, ``supervisorctl restart web``, a
machine booting) spends a second or two importing Django and the app before
gunicorn binds its port. Every page and chat socket that reconnects in that
time is refused and backs off, and the last of them come back well after the
server could take them. Bound first, the kernel accepts their connections
into the backlog while the app imports, and the workers answer them the
moment they are up.

This binds ``BIND`` (``host:port``, as gunicorn reads it; default
``0.0.0.0:8000``) with the backlog of ``cs_portal/gunicorn.py`` (4,096), hands the
socket over as systemd's socket activation does (file descriptor 3,
``LISTEN_FDS=1``, ``LISTEN_PID`` = this process), and replaces itself with
PROGRAM, so PROGRAM keeps this process id. gunicorn serves an inherited socket
natively. Imports nothing but the standard library: it runs in milliseconds.

Under systemd, use a ``.socket`` unit instead: systemd holds the port across
restarts too. A ``unix:`` or ``fd://`` address is passed through unchanged.
"""

from __future__ import annotations

import os
import socket
import sys

SD_LISTEN_FDS_START = 3
BACKLOG = 4096  # cs_portal/gunicorn.py's backlog, which gunicorn sets again on the socket it inherits


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


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__.split("\n", 1)[0])
    where = address(os.environ.get("BIND", "0.0.0.0:8000"))
    if where is not None:
        try:
            sock = listen(where, BACKLOG)
        except OSError as error:
            sys.exit(f"listen_first: cannot listen on {where[0]}:{where[1]}: {error.strerror}")
        if sock.fileno() != SD_LISTEN_FDS_START:
            # the lowest free descriptor was not 3: something this process
            # inherited holds it, and handing ours over would close that
            sys.exit(f"listen_first: file descriptor {SD_LISTEN_FDS_START} is taken; start it without extra "
                     "descriptors open (supervisord and systemd do)")
        os.set_inheritable(SD_LISTEN_FDS_START, True)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
