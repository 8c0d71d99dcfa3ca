"""Production's worker (``cs_portal.workers``): the accept board the workers
share and the server that takes its fair share of a listening socket.

The servers here run on real sockets with production's loop (uvloop's, with
the fair-share server), each on a thread of its own standing in for a worker
process; the board is a fresh one per test. ``tests/test_production.py``
checks the same through gunicorn's two worker processes.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
import time

import pytest

from cs_portal import workers as workers_module
from cs_portal.workers import AcceptBoard, FairShareServer, Loop


class Answer(asyncio.Protocol):
    """Answers every chunk it receives with the server's name, then keeps the connection."""

    def __init__(self, name: str) -> None:
        self.name = name.encode()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(self.name)


class Worker:
    """A fair-share server on its own thread and loop, as one worker process would run it."""

    def __init__(self, name: str, sock: socket.socket, board: AcceptBoard) -> None:
        self.name, self.sock, self.board = name, sock, board
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(5)

    def _run(self) -> None:
        self.loop = Loop()
        asyncio.set_event_loop(self.loop)
        # each thread stands in for a worker process of its own
        self.server = FairShareServer(self.loop, lambda: Answer(self.name), self.sock, board=self.board,
                                      worker=threading.get_ident())
        self.ready.set()
        self.loop.run_forever()
        self.loop.close()

    def call(self, fn) -> None:
        done = threading.Event()

        def run():
            fn()
            done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(5)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.call(self.server.close)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture
def listening():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield sock
    sock.close()


@pytest.fixture
def workers():
    started: list[Worker] = []

    def start(name: str, sock: socket.socket, board: AcceptBoard) -> Worker:
        worker = Worker(name, sock, board)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def open_together(address, n: int) -> list[socket.socket]:
    """``n`` connections opened at once (their handshakes all done before anyone accepts)."""
    conns = []
    for _ in range(n):
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        conn.setblocking(False)
        conn.connect_ex(address)
        conns.append(conn)
    for conn in conns:
        conn.setblocking(True)
        conn.settimeout(5)
    return conns


def who_answers(conns: list[socket.socket]) -> list[str]:
    for conn in conns:
        conn.sendall(b"?")
    return [conn.recv(16).decode() for conn in conns]


def count_pauses(worker: Worker) -> list[float]:
    """The pauses the worker's server makes from now on (each one's length)."""
    pauses: list[float] = []
    pause = worker.server._pause

    def counted(seconds: float) -> None:
        pauses.append(seconds)
        pause(seconds)

    worker.call(lambda: setattr(worker.server, "_pause", counted))
    return pauses


def test_a_burst_of_connections_is_shared_by_the_workers(listening, workers):
    board = AcceptBoard()
    workers("a", listening, board)
    workers("b", listening, board)
    for _ in range(5):
        conns = open_together(listening.getsockname(), 16)
        answers = who_answers(conns)
        # given both workers idle, a burst opened at once: each takes a fair share of it
        assert len(answers) == 16
        assert 6 <= answers.count("a") <= 10, answers
        for conn in conns:
            conn.close()
        time.sleep(AcceptBoard.HALF_LIFE_S * 2)  # the next burst starts from level ground


def test_alone_a_worker_takes_every_connection_at_once(listening, workers):
    workers("a", listening, AcceptBoard())
    started = time.monotonic()
    conns = open_together(listening.getsockname(), 32)
    assert who_answers(conns) == ["a"] * 32
    # nothing waited for a peer that does not exist (32 × 5 ms would be 160 ms)
    assert time.monotonic() - started < 2
    for conn in conns:
        conn.close()


def test_a_worker_ahead_waits_briefly_then_takes_what_no_one_else_takes(listening, workers):
    board = AcceptBoard()
    # a live peer that never accepts: its heartbeat renewed, its accepts at 0
    peer = board.take_slot(pid=999_999, now=time.monotonic())
    worker = workers("a", listening, board)
    beating = threading.Event()

    def beat():
        while not beating.is_set():
            board.beat(peer, time.monotonic())
            time.sleep(0.01)

    threading.Thread(target=beat, daemon=True).start()
    pauses = count_pauses(worker)
    try:
        started = time.monotonic()
        conns = open_together(listening.getsockname(), 12)
        # every connection is served all the same (none left in the backlog) ...
        assert who_answers(conns) == ["a"] * 12
        took = time.monotonic() - started
    finally:
        beating.set()
    # ... each one past the first two after waiting for the peer for 5 ms (a millisecond early at most, as
    # uvloop's timers count whole milliseconds)
    assert took >= 10 * (FairShareServer.MAX_WAIT_S - 0.001)
    assert len(pauses) >= 10
    assert board.mine(worker.server._slot, time.monotonic()) > 10
    for conn in conns:
        conn.close()


def test_a_peer_that_stopped_beating_is_not_waited_for(listening, workers):
    board = AcceptBoard()
    now = time.monotonic()
    stale = board.take_slot(pid=999_998, now=now - 10)  # its last heartbeat 10 s ago
    live = board.take_slot(pid=999_997, now=now)
    board.accepted(live, now)
    board.beat(live, now - 10)  # and this one's loop has not come back for 10 s
    worker = workers("a", listening, board)
    # the dead worker's slot is the next one taken
    assert worker.server._slot == stale
    assert board.least_of_others(worker.server._slot, time.monotonic()) is None
    pauses = count_pauses(worker)
    conns = open_together(listening.getsockname(), 12)
    assert who_answers(conns) == ["a"] * 12
    assert pauses == []  # it never waited for them
    for conn in conns:
        conn.close()


def test_a_closed_server_accepts_nothing_more_and_leaves_the_board(listening, workers):
    board = AcceptBoard()
    worker = workers("a", listening, board)
    other = board.take_slot(pid=999_997, now=time.monotonic())
    assert board.least_of_others(other, time.monotonic()) == 0
    worker.call(worker.server.close)
    assert not worker.server.is_serving() and worker.server.sockets == ()
    # its slot is given back: the others no longer count it
    assert board.least_of_others(other, time.monotonic()) is None
    # a connection made now waits in the backlog for whoever serves the socket next
    conn = socket.create_connection(listening.getsockname(), timeout=5)
    conn.sendall(b"?")
    conn.settimeout(0.3)
    with pytest.raises(TimeoutError):
        conn.recv(16)
    workers("b", listening, board)
    conn.settimeout(5)
    assert conn.recv(16) == b"b"
    conn.close()


def test_the_board_decays_accepts_and_finds_the_least_live_peer():
    board = AcceptBoard()
    now = 100.0
    a = board.take_slot(pid=1, now=now)
    b = board.take_slot(pid=2, now=now)
    c = board.take_slot(pid=3, now=now)
    assert len({a, b, c}) == 3
    for _ in range(4):
        board.accepted(a, now)
    board.accepted(b, now)
    assert board.mine(a, now) == 4
    # half of it one half-life later
    assert board.mine(a, now + AcceptBoard.HALF_LIFE_S) == pytest.approx(2)
    assert board.least_of_others(a, now) == 0  # c, live and idle
    board.give_back(c)
    assert board.least_of_others(a, now) == 1  # b
    assert board.least_of_others(a, now + AcceptBoard.STALE_S + 0.1) is None  # b's heartbeat too old
    board.beat(b, now + 1)
    assert board.least_of_others(a, now + 1) == pytest.approx(0.5)
    # a worker's slot for a second socket is not another worker
    board.give_back(b)
    same = board.take_slot(pid=1, now=now + 1)
    assert board.least_of_others(a, now + 1) is None
    assert board.least_of_others(same, now + 1) is None


def test_the_board_has_room_for_a_machine_of_workers_and_says_when_full():
    board = AcceptBoard()
    now = time.monotonic()
    slots = {board.take_slot(pid=n + 1, now=now) for n in range(AcceptBoard.SLOTS)}
    assert slots == set(range(AcceptBoard.SLOTS))
    assert board.take_slot(pid=10_000, now=now) == -1
    assert board.accepted(-1, now) == 0  # a worker without a slot takes part in nothing


class OutOfDescriptorsOnce:
    """The listening socket, whose first ``accept`` fails as a process out of
    file descriptors does (EMFILE)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.failed = sock, 0

    def __getattr__(self, name):
        return getattr(self.sock, name)

    def accept(self):
        if not self.failed:
            self.failed += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()


def test_out_of_descriptors_pauses_accepting_then_serves_what_waited(listening, workers, monkeypatch):
    monkeypatch.setattr(workers_module, "ACCEPT_RETRY_DELAY_S", 0.3)
    failing = OutOfDescriptorsOnce(listening)
    worker = workers("a", failing, AcceptBoard())
    pauses = count_pauses(worker)
    started = time.monotonic()
    conn = socket.create_connection(listening.getsockname(), timeout=5)
    conn.sendall(b"?")
    # the connection waited in the backlog through the pause, then was served
    assert conn.recv(16) == b"a"
    assert failing.failed == 1 and pauses == [0.3]
    # uvloop's timers count whole milliseconds of a loop time read before the test's clock: up to one early
    assert time.monotonic() - started >= 0.3 - 0.002
    conn.close()
