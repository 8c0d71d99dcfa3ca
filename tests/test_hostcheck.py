"""``deploy/hostcheck.py``: the note ``scripts/serve`` prints when PostgreSQL
shares the machine under the kernel's session autogroup."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import ROOT, child_env

SCRIPT = ROOT / "deploy" / "hostcheck.py"


@pytest.fixture(scope="module")
def hostcheck():
    spec = importlib.util.spec_from_file_location("hostcheck", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def autogroup(tmp_path):
    def setting(value: str | None):
        path = tmp_path / "sched_autogroup_enabled"
        if value is not None:
            path.write_text(value + "\n")
        return path
    return setting


@pytest.mark.parametrize("url", [
    "postgres://postgres@127.0.0.1:5432/cs", "postgresql://u:p@localhost/cs", "postgres://u@[::1]:5432/cs",
    "postgres:///cs", "postgres:///cs?host=/var/run/postgresql", "postgres://u@/cs?host=/tmp",
])
def test_a_local_database_under_autogroup_gets_the_note(hostcheck, autogroup, url):
    assert hostcheck.database_is_local(url)
    notes = hostcheck.notes(url, autogroup=autogroup("1"))
    assert len(notes) == 1 and "sched_autogroup_enabled" in notes[0]


@pytest.mark.parametrize("url", [
    "postgres://u@db.internal:5432/cs", "postgres://u@10.0.0.5/cs", "postgres:///cs?host=db.internal",
    "sqlite:///tmp/cs.sqlite3", "",
])
def test_a_database_elsewhere_gets_none(hostcheck, autogroup, url):
    assert not hostcheck.database_is_local(url)
    assert hostcheck.notes(url, autogroup=autogroup("1")) == []


@pytest.mark.parametrize("value", ["0", None])  # turned off, or a kernel without the setting
def test_without_autogroup_a_local_database_gets_none(hostcheck, autogroup, value):
    assert hostcheck.notes("postgres://postgres@127.0.0.1:5432/cs", autogroup=autogroup(value)) == []


def test_the_script_prints_the_note_and_always_succeeds():
    """As ``scripts/serve`` runs it: a note on this machine's kernel when the
    database is local, nothing when it is not, exit status 0 either way."""
    local = subprocess.run([sys.executable, str(SCRIPT)], env=child_env(DATABASE_URL="postgres://x@127.0.0.1/cs"),
                           capture_output=True, text=True, timeout=30)
    remote = subprocess.run([sys.executable, str(SCRIPT)], env=child_env(DATABASE_URL="postgres://x@db.internal/cs"),
                            capture_output=True, text=True, timeout=30)
    assert local.returncode == 0 and remote.returncode == 0
    assert remote.stdout == ""
    setting = Path("/proc/sys/kernel/sched_autogroup_enabled")
    on = setting.exists() and setting.read_text().strip() == "1"
    assert ("==> note: PostgreSQL is on this machine" in local.stdout) is on
