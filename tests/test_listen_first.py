"""``deploy/listen_first.py``: the port bound before the server imports, and
handed over as systemd's socket activation does. The cold start it serves
(a connection held until the workers are up) is in ``test_production.py``."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys

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
