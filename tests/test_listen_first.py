"""``deploy/listen_first.py``: the port bound before the server imports,
handed over as systemd's socket activation does, and held across a deploy
(a new server started beside the old, the old stopped once the new is up).
The cold start and the deploy through gunicorn itself are in
``test_production.py``."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.live import ROOT, child_env, free_port

SCRIPT = ROOT / "deploy" / "listen_first.py"


def _module():
    spec = importlib.util.spec_from_file_location("listen_first", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("bind, expected", [
    ("0.0.0.0:8000", ("0.0.0.0", 8000)),
    ("127.0.0.1:9001", ("127.0.0.1", 9001)),
    ("[::1]:8000", ("::1", 8000)),
    (":8000", ("0.0.0.0", 8000)),
    ("unix:/run/cs.sock", None),
    ("fd://3", None),
])
def test_the_address_is_read_as_gunicorn_reads_bind(bind, expected):
    assert _module().address(bind) == expected


# what the program it becomes sees: the socket on descriptor 3, listening on
# the port, and the two variables naming this same process
_INHERITOR = """
import os, socket
sock = socket.socket(fileno=3)
print(os.environ["LISTEN_FDS"], os.environ["LISTEN_PID"] == str(os.getpid()), sock.getsockname()[1],
      sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
"""


def test_the_program_inherits_the_listening_socket_as_systemd_hands_it_over():
    port = free_port()
    done = subprocess.run([sys.executable, str(SCRIPT), sys.executable, "-c", _INHERITOR], cwd=ROOT,
                          env=child_env(BIND=f"127.0.0.1:{port}"), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True", str(port), "1"]


def test_a_port_already_taken_is_refused_before_anything_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, str(SCRIPT), sys.executable, "-c", "print('started')"], cwd=ROOT,
                              env=child_env(BIND=f"127.0.0.1:{port}"), capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "Address already in use" in done.stderr
    assert "started" not in done.stdout


def test_it_refuses_to_hand_over_when_descriptor_3_is_someone_else_s():
    port = free_port()
    command = f'exec 3</dev/null; exec "{sys.executable}" "{SCRIPT}" "{sys.executable}" -c "print(\'started\')"'
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=child_env(BIND=f"127.0.0.1:{port}"),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "file descriptor 3 is taken" in done.stderr
    assert "started" not in done.stdout


def test_a_unix_socket_address_is_passed_through_to_the_program_unbound():
    done = subprocess.run([sys.executable, str(SCRIPT), sys.executable, "-c",
                           "import os; print(os.environ.get('LISTEN_FDS', 'none'))"], cwd=ROOT,
                          env=child_env(BIND="unix:/tmp/cs-listen-first-test.sock"), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def test_without_a_program_it_says_how_to_call_it_and_binds_nothing():
    port = free_port()
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, env=child_env(BIND=f"127.0.0.1:{port}"),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "listen_first.py PROGRAM" in done.stderr


# --- the holder: deploys and stops -----------------------------------------------------------

# a stand-in for gunicorn with cs_portal/gunicorn.py's hooks: it reads what it is from a file
# when it starts (the "code on disk"), reports its start on CS_READY_FD as the hooks do, and
# answers every connection on the held socket with that text and its pid
_SERVER = r"""
import os, signal, socket, sys, time
what = open(sys.argv[1]).read().strip()
with open(f"{sys.argv[1]}.{os.getpid()}.deploy", "w") as told:  # whether it was told it starts beside another
    told.write(os.environ.get("CS_DEPLOY", "-"))
if what == "crash":
    sys.exit(3)
if what == "records-hup":  # speaks no protocol: a HUP is its own business
    for number in (signal.SIGHUP, signal.SIGUSR1):
        signal.signal(number, lambda n, f: open(sys.argv[1] + ".hup", "a").write(f"{signal.Signals(n).name}\n"))
else:
    ready = int(os.environ["CS_READY_FD"])
    os.write(ready, b"workers 2\n")
    time.sleep(0.3)  # importing the app
    os.write(ready, f"worker {os.getpid()}-a\n".encode())
    if what != "half-up":
        os.write(ready, f"worker {os.getpid()}-b\n".encode())
stopping = []
signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
sock = socket.socket(fileno=3)
sock.settimeout(0.05)
while not stopping:
    try:
        conn, _ = sock.accept()
    except (TimeoutError, InterruptedError):
        continue
    with conn:
        try:
            conn.recv(1024)
            conn.sendall(f"{what} {os.getpid()}".encode())
        except OSError:  # a client that only checked the port is open
            pass
sys.exit(int(os.environ.get("STOP_STATUS", "0")))
"""


class Held:
    """listen_first.py holding a port for the stand-in server."""

    def __init__(self, tmp_path, what: str, **env: str) -> None:
        self.code = tmp_path / "code.txt"
        self.code.write_text(what)
        server = tmp_path / "server.py"
        server.write_text(_SERVER)
        self.port = free_port()
        self.log = (tmp_path / "holder.log").open("w+")
        self.process = subprocess.Popen([sys.executable, str(SCRIPT), sys.executable, str(server), str(self.code)],
                                        cwd=ROOT, env=child_env(BIND=f"127.0.0.1:{self.port}", **env),
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(500):  # bound in milliseconds; from then on a refusal is a failure
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except ConnectionRefusedError:
                time.sleep(0.01)

    def ask(self, timeout: float = 10) -> str:
        """What the server answers (a refused connection fails the test)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as conn:
            conn.sendall(b"?")
            return conn.recv(1024).decode()

    def until(self, predicate, timeout: float = 20) -> list[str]:
        """Ask every 20 ms until ``predicate(answer)``; every answer, in order."""
        answers, started = [], time.monotonic()
        while time.monotonic() - started < timeout:
            answers.append(self.ask())
            if predicate(answers[-1]):
                return answers
            time.sleep(0.02)
        raise AssertionError(f"never: {answers[-3:]}")

    def serving(self, what: str) -> str:
        """Ask until the server answering is ``what``; its pid."""
        return self.until(lambda answer: answer.startswith(f"{what} "))[-1].split()[1]

    def deploy(self, what: str) -> None:
        """New "code" on disk, then the deploy."""
        self.code.write_text(what)
        self.process.send_signal(signal.SIGHUP)

    def logged(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def wait_logged(self, text: str, timeout: float = 10) -> None:
        assert _eventually(lambda: text in self.logged(), timeout), self.logged()[-2000:]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


@pytest.fixture
def hold(tmp_path):
    """``hold(what, **env)``: a holder with the stand-in server, stopped (and
    killed, with whatever it started, if it will not stop) after the test."""
    made: list[Held] = []

    def start(what: str, **env: str) -> Held:
        made.append(Held(tmp_path, what, **env))
        return made[-1]

    yield start
    for held in made:
        if held.process.poll() is None:
            try:
                held.stop()
            except subprocess.TimeoutExpired:
                os.killpg(held.process.pid, signal.SIGKILL)
        held.log.close()


def _eventually(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_a_deploy_serves_the_new_code_without_a_refused_connection(hold):
    held = hold("v1")
    try:
        old = held.serving("v1")
        held.deploy("v2")
        answers = held.until(lambda answer: answer.startswith("v2"))  # each ask() fails on a refusal
        assert {a.split()[0] for a in answers} <= {"v1", "v2"}
        new = answers[-1].split()[1]
        assert new != old
        assert _eventually(lambda: not _alive(int(old)))  # the old server is stopped once the new one is up
        assert held.ask().split() == ["v2", new]
        assert "deploy: new server" in held.logged() and f"stopped server {old} exited (0)" in held.logged()
    finally:
        assert held.stop() == 0


def test_a_new_server_that_fails_to_start_leaves_the_old_one_serving(hold):
    held = hold("v1")
    try:
        pid = held.serving("v1")
        held.deploy("crash")
        held.wait_logged("exited (3) before it was up")
        assert held.ask().split() == ["v1", pid]  # still the old one
        held.deploy("v3")  # the fix, deployed
        held.serving("v3")
    finally:
        assert held.stop() == 0


def test_a_new_server_not_up_in_time_is_stopped_and_the_old_one_serves_on(hold):
    held = hold("v1", DEPLOY_TIMEOUT="1")
    try:
        pid = held.serving("v1")
        held.deploy("half-up")  # one of its two workers never starts
        held.wait_logged("not up within 1 s (1 of 2 workers)")
        time.sleep(0.3)  # it is stopped; nobody answers for it
        assert {held.ask().split()[1] for _ in range(20)} == {pid}
    finally:
        assert held.stop() == 0


def test_a_program_that_does_not_report_its_start_gets_the_hup_itself_as_every_other_signal(hold, tmp_path):
    held = hold("records-hup")
    received = tmp_path / "code.txt.hup"
    try:
        pid = held.serving("records-hup")
        held.process.send_signal(signal.SIGHUP)
        assert _eventually(lambda: received.exists())
        held.process.send_signal(signal.SIGUSR1)  # forwarded to the running server in any case
        assert _eventually(lambda: received.read_text() == "SIGHUP\nSIGUSR1\n")
        assert held.ask().split()[1] == pid  # no second server
    finally:
        assert held.stop() == 0


def test_a_stop_waits_for_the_server_and_exits_with_its_status(hold):
    held = hold("v1", STOP_STATUS="5")
    pid = held.serving("v1")
    assert held.stop() == 5
    assert not _alive(int(pid))
    with pytest.raises(ConnectionRefusedError):  # the port goes with its holder
        held.ask(timeout=1)


def test_a_server_that_exits_by_itself_takes_its_holder_with_it(hold):
    held = hold("v1")
    pid = int(held.serving("v1"))
    os.kill(pid, signal.SIGKILL)
    assert held.process.wait(timeout=10) == 128 + signal.SIGKILL  # supervisord starts both again


def test_a_stop_during_a_deploy_stops_both_servers(hold):
    held = hold("v1")
    old = int(held.serving("v1"))
    held.deploy("half-up")  # never up: the deploy is still waiting when the stop comes
    held.wait_logged("deploy: new server")
    new = int(held.logged().split("deploy: new server ")[1].split()[0])
    assert held.stop() == 0
    assert not _alive(old) and not _alive(new)
    assert "deploy failed" not in held.logged()


def test_a_socket_systemd_hands_over_is_held_and_passed_on_instead_of_binding_one(tmp_path):
    # as a .socket unit starts the service: descriptor 3 listening, LISTEN_PID naming the process
    held_by_systemd = socket.socket()
    held_by_systemd.bind(("127.0.0.1", 0))
    held_by_systemd.listen()
    port = held_by_systemd.getsockname()[1]
    systemd = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ.update(LISTEN_FDS='1', "
               "LISTEN_PID=str(os.getpid())); os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")
    with held_by_systemd:
        done = subprocess.run([sys.executable, "-c", systemd, str(held_by_systemd.fileno()), str(SCRIPT),
                               sys.executable, "-c", _INHERITOR], pass_fds=[held_by_systemd.fileno()], cwd=ROOT,
                              env=child_env(BIND="127.0.0.1:1"), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True", str(port), "1"]  # its child got systemd's socket, not port 1


def test_a_second_deploy_while_one_is_under_way_is_ignored(hold):
    held = hold("v1")
    held.serving("v1")
    held.deploy("half-up")  # not up until the timeout
    held.wait_logged("deploy: new server")
    held.process.send_signal(signal.SIGHUP)
    held.wait_logged("one is under way already")
    assert held.logged().count("deploy: new server") == 1


def test_only_a_deploy_s_server_is_told_it_starts_beside_a_running_one(hold):
    """``CS_DEPLOY=1`` lets a deploy's server load what pages need before its
    workers start (cs_portal/warmup.py); the first server, which every socket
    waits for, is not told so, even when the holder's own environment says it."""
    held = hold("v1", CS_DEPLOY="1")
    try:
        first = held.serving("v1")
        held.deploy("v2")
        second = held.serving("v2")
        told = {pid: (held.code.parent / f"code.txt.{pid}.deploy").read_text() for pid in (first, second)}
        assert told == {first: "-", second: "1"}
    finally:
        assert held.stop() == 0
