"""The ASGI worker production runs (``cs_portal.gunicorn``): uvicorn's, with
permessage-deflate turned off and connections taken one at a time from the
listening socket the workers share.

Browsers offer the compression extension on every websocket and uvicorn
accepts it by default. A chat frame is a few hundred bytes of JSON, which
deflate barely shrinks, while each socket keeps a compressor and a
decompressor: measured with 1,000 sockets offering it (``bench/chat.py
--deflate``), 49 MB more memory across the workers (≈ 50 KB per socket, most of
a socket's cost), 2–4 % more server CPU and a higher delivery p99 (94–96 ms
against 78–82 ms). At a peak of hundreds of thousands of open pages memory
per socket is what a machine runs out of, so the sockets go uncompressed.

The workers share one listening socket (gunicorn's, or ``deploy/listen_first.py``'s).
uvloop's server accepts every connection waiting each time the socket wakes
it, so the first worker to wake took a whole burst: sixteen keep-alive
connections opened together (a balancer refilling its pool after a deploy, the
benchmark's agents) all fell on one of two workers, which served them on one
core while the other worker sat idle (``bench/remedies.py`` prints the split),
and kept them for as long as they stayed open.

Here each worker accepts one connection per turn of its event loop and tells
the others, through a page of memory the master shares before it forks
(``AcceptBoard``), how many it has accepted lately. A worker that is ahead of
the least busy live worker by more than one waits for it, a few milliseconds
at most, before taking the next; a worker whose loop is busy with its requests
comes back to the socket later and takes fewer, and one that stopped answering
(no heartbeat for a while) is not waited for. The socket, its backlog and
gunicorn's hand-over on a restart or a graceful reload are unchanged; only who
calls ``accept``, and when, is.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import mmap
import multiprocessing
import os
import socket
import threading
import time

import uvloop
from uvicorn_worker import UvicornWorker

log = logging.getLogger(__name__)

# an accept refused for want of descriptors or memory is tried again after this
# long, as asyncio's own servers do (the connection waits in the backlog)
ACCEPT_RETRY_DELAY_S = 1.0
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class AcceptBoard:
    """Each worker's recent accepts, in memory shared by the processes forked
    after it is made (the gunicorn master imports this module before it forks).

    A worker takes a slot when it starts serving and gives it back when it
    stops; in its slot it keeps its accepts, decaying with ``HALF_LIFE_S``,
    and a heartbeat it renews every ``BEAT_S``. Slots whose heartbeat is older
    than ``STALE_S`` (a worker killed, or its loop stuck) are ignored and may
    be taken again."""

    SLOTS = 64  # workers on one machine; one more does not take part (its accepts go uncounted)
    HALF_LIFE_S = 1.0
    BEAT_S = 0.05
    STALE_S = 0.5
    _FIELDS = 4  # pid, heartbeat, accepts, accepts' time

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, self.SLOTS * self._FIELDS * 8)  # anonymous: shared with children
        self._values = memoryview(self._memory).cast("d")
        try:
            self._lock = multiprocessing.Lock()  # a POSIX semaphore, shared with the children
        except OSError:  # no shared semaphores here: two workers starting at once might share a slot
            self._lock = threading.Lock()

    def take_slot(self, pid: int, now: float) -> int:
        values = self._values
        with self._lock:
            for slot in range(self.SLOTS):
                base = slot * self._FIELDS
                if values[base] == 0 or now - values[base + 1] > self.STALE_S:
                    values[base], values[base + 1], values[base + 2], values[base + 3] = pid, now, 0.0, now
                    return slot
        return -1  # more live workers than slots: this one does not take part

    def give_back(self, slot: int) -> None:
        if slot >= 0:
            self._values[slot * self._FIELDS] = 0

    def beat(self, slot: int, now: float) -> None:
        if slot >= 0:
            self._values[slot * self._FIELDS + 1] = now

    def accepted(self, slot: int, now: float) -> float:
        """Count one accept in ``slot``; returns its accepts, decayed to ``now``."""
        if slot < 0:
            return 0.0
        base = slot * self._FIELDS
        values = self._values
        count = self._decayed(values[base + 2], values[base + 3], now) + 1
        values[base + 2], values[base + 3], values[base + 1] = count, now, now
        return count

    def mine(self, slot: int, now: float) -> float:
        base = slot * self._FIELDS
        return self._decayed(self._values[base + 2], self._values[base + 3], now)

    def least_of_others(self, slot: int, now: float) -> float | None:
        """The fewest recent accepts among the other live workers (None: none
        live). A worker serving several sockets holds a slot for each; its
        other slots are not other workers."""
        values, least = self._values, None
        pid = values[slot * self._FIELDS]
        for other in range(self.SLOTS):
            base = other * self._FIELDS
            if values[base] in (0, pid) or now - values[base + 1] > self.STALE_S:
                continue
            count = self._decayed(values[base + 2], values[base + 3], now)
            if least is None or count < least:
                least = count
        return least

    @classmethod
    def _decayed(cls, count: float, at: float, now: float) -> float:
        return count * 0.5 ** (max(0.0, now - at) / cls.HALF_LIFE_S)


BOARD = AcceptBoard()


class FairShareServer:
    """Serves the connections of a listening socket the workers share, one
    accept per turn of the event loop, waiting up to ``MAX_WAIT_S`` for the
    other workers when this one has accepted more than one more than the least
    of them lately (``AcceptBoard``). What uvicorn uses of an
    ``asyncio.Server``: ``close`` (stop accepting; the socket is the caller's
    to close) and ``wait_closed``."""

    MAX_WAIT_S = 0.005
    LEAD = 1.0  # accepts this worker may be ahead of the least of the others

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol_factory, sock: socket.socket,
                 board: AcceptBoard = BOARD, worker: int | None = None) -> None:
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._sock = sock
        self._board = board
        self._connecting: set[asyncio.Task] = set()
        self._reading = False
        self._serving = True
        self._resume: asyncio.TimerHandle | None = None
        self._waiting_since: float | None = None
        # the worker it accepts for: its process
        self._slot = board.take_slot(worker or os.getpid(), time.monotonic())
        sock.setblocking(False)
        self._beat()
        self._read()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,) if self._serving else ()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        if not self._serving:
            return
        self._serving = False
        self._unread()
        for handle in (self._resume, self._beating):
            if handle is not None:
                handle.cancel()
        self._board.give_back(self._slot)

    async def wait_closed(self) -> None:
        # the connections are uvicorn's to wait for (``Server.shutdown``)
        return None

    def _beat(self) -> None:
        self._board.beat(self._slot, time.monotonic())
        self._beating = self._loop.call_later(self._board.BEAT_S, self._beat)

    def _read(self) -> None:
        self._resume = None
        if self._serving and not self._reading:
            self._reading = True
            self._loop.add_reader(self._sock.fileno(), self._accept_one)

    def _unread(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._sock.fileno())

    def _pause(self, seconds: float) -> None:
        self._unread()
        self._resume = self._loop.call_later(seconds, self._read)

    def _ahead(self, now: float) -> bool:
        """Whether to leave the next connection to a worker that has accepted fewer lately."""
        if self._slot < 0:
            return False
        least = self._board.least_of_others(self._slot, now)
        if least is None or self._board.mine(self._slot, now) <= least + self.LEAD:
            self._waiting_since = None
            return False
        if self._waiting_since is None:
            self._waiting_since = now
        if now - self._waiting_since >= self.MAX_WAIT_S:
            self._waiting_since = None  # the others did not come for it: take it
            return False
        return True

    def _accept_one(self) -> None:
        now = time.monotonic()
        if self._ahead(now):
            self._pause(self.MAX_WAIT_S / 5)
            return
        try:
            conn, _address = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up while it waited
        except OSError as error:
            if error.errno not in _OUT_OF_RESOURCES:
                raise
            log.error("accept failed (%s): pausing accepts for %g s", error.strerror, ACCEPT_RETRY_DELAY_S)
            self._pause(ACCEPT_RETRY_DELAY_S)
            return
        self._board.accepted(self._slot, now)
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._protocol_factory, conn))
        self._connecting.add(task)
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task) -> None:
        self._connecting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a connection could not be set up: %r", task.exception())


class Loop(uvloop.Loop):
    """uvloop's loop, whose servers on a socket handed in (gunicorn's) take
    their fair share of its connections (``FairShareServer``); anything else
    as uvloop's."""

    async def create_server(self, protocol_factory, host=None, port=None, *, sock=None, ssl=None, **kwargs):
        if sock is None or ssl is not None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return await super().create_server(protocol_factory, host, port, sock=sock, ssl=ssl, **kwargs)
        return FairShareServer(self, protocol_factory, sock)


class Worker(UvicornWorker):
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "ws_per_message_deflate": False,
                     "loop": "cs_portal.workers:Loop"}
