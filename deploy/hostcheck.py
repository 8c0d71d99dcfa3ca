"""What ``scripts/serve`` says about the machine before it serves: today one
note, when PostgreSQL runs on this machine under the kernel's session
autogroup.

With ``/proc/sys/kernel/sched_autogroup_enabled`` = 1 (most distributions'
default) the kernel shares the cores between sessions before threads, and
each PostgreSQL backend is a session of its own (the postmaster makes every
child a session leader), while the web workers, the Celery worker and beat
share the session ``scripts/serve`` started. Under a database load the whole
app is then weighed as one backend: beside ``pgbench -c 16`` the web workers
got 0.36-0.37 of a core with autogroup on and 0.46-0.50 with it off
(docs/PERFORMANCE.md, "What the kernel weighs"; docs/SCALING.md).

    python deploy/hostcheck.py      # prints each note, one per line; exit status 0
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def database_is_local(database_url: str) -> bool:
    """The URL's server is this machine: a loopback address, or a Unix socket
    (no host, or a ``host`` given as a directory)."""
    parts = urlsplit(database_url)
    if not parts.scheme.startswith("postgres"):
        return False
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    host = parts.hostname or ""
    return host in _LOOPBACK or (not host and (not socket_dir or socket_dir.startswith("/") or
                                               socket_dir in _LOOPBACK))


def autogroup_setting(path: Path = AUTOGROUP) -> bool | None:
    """Whether the kernel groups by session; None: a kernel without the
    setting (threads share the cores)."""
    try:
        return path.read_text().strip() == "1"
    except OSError:
        return None


def autogroup_enabled(path: Path = AUTOGROUP) -> bool:
    return autogroup_setting(path) is True


def notes(database_url: str, *, autogroup: Path = AUTOGROUP) -> list[str]:
    found = []
    if database_is_local(database_url) and autogroup_enabled(autogroup):
        found.append("PostgreSQL is on this machine and kernel.sched_autogroup_enabled=1: each of its backends is "
                     "weighed as much as all of the app's processes together; turn it off "
                     "(sysctl -w kernel.sched_autogroup_enabled=0; docs/SCALING.md)")
    return found


def main() -> int:
    for note in notes(os.environ.get("DATABASE_URL", "")):
        print(f"==> note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
