"""``scripts/serve``'s steps before it hands over to supervisord: migrations
and static files each skipped only when asked, the host's note printed. The
supervisord it ends with is a stand-in here that records how it was called
(the production recipe itself runs in ``tests/test_production.py``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.live import ROOT, child_env

MANIFEST = ROOT / "staticfiles" / "staticfiles.json"


@pytest.fixture
def fake_bin(tmp_path) -> Path:
    """A ``PYTHON`` whose directory holds a ``supervisord`` that only records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    supervisord = bin_dir / "supervisord"
    supervisord.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "supervisord.args"}\n')
    for script in (python, supervisord):
        script.chmod(0o755)
    return bin_dir


def _serve(fake_bin: Path, **extra: str) -> subprocess.CompletedProcess:
    env = child_env(
        PYTHON=str(fake_bin / "python"), DATABASE_URL="postgres://nobody@db.internal:5432/none",
        REDIS_URL="redis://db.internal:6379/0", SECRET_KEY="serve-script-test-0123456789-abcdefghijklmnopqrstuvwxyz",
        ALLOWED_HOSTS="cs.example.com", DEBUG="0", RUN_DIR=str(fake_bin.parent / "run"), SKIP_MIGRATE="1", **extra)
    return subprocess.run([str(ROOT / "scripts" / "serve")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_skipping_the_migrations_still_collects_the_static_files(fake_bin):
    """Production's pages name every static file through the manifest: a start
    that skips the migrations (run elsewhere) without collecting served 500s."""
    started = time.time()
    done = _serve(fake_bin)
    assert done.returncode == 0, done.stdout + done.stderr
    assert MANIFEST.stat().st_mtime >= started - 1
    assert (fake_bin.parent / "supervisord.args").read_text().split() == ["-n", "-c", "deploy/supervisord.conf"]
    assert "==> serving on" in done.stdout
    assert "==> note" not in done.stdout  # the database is elsewhere


def test_collecting_is_skipped_only_when_asked(fake_bin):
    before = MANIFEST.stat().st_mtime if MANIFEST.exists() else None
    time.sleep(0.05)
    done = _serve(fake_bin, SKIP_COLLECTSTATIC="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (MANIFEST.stat().st_mtime if MANIFEST.exists() else None) == before
    assert (fake_bin.parent / "supervisord.args").exists()


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL", "SECRET_KEY"])
def test_it_refuses_to_start_without_what_production_needs(fake_bin, missing):
    env = {k: v for k, v in child_env(PYTHON=str(fake_bin / "python"), DATABASE_URL="postgres://x@db/y",
                                      REDIS_URL="redis://db:6379/0", SECRET_KEY="k" * 50).items() if k != missing}
    done = subprocess.run([str(ROOT / "scripts" / "serve")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert missing in done.stderr
    assert not (fake_bin.parent / "supervisord.args").exists()


def test_a_deploy_without_the_run_directory_refuses_before_it_changes_anything(fake_bin, tmp_path):
    """``scripts/deploy`` needs ``scripts/serve``'s run directory (its supervisord's
    socket): without it, it stops before the migrations and the static files."""
    before = MANIFEST.stat().st_mtime if MANIFEST.exists() else None
    env = {k: v for k, v in child_env(PYTHON=str(fake_bin / "python"), DATABASE_URL="postgres://x@db.internal/y",
                                      REDIS_URL="redis://db.internal:6379/0", SECRET_KEY="k" * 50).items()
           if k != "RUN_DIR"}
    done = subprocess.run([str(ROOT / "scripts" / "deploy")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "RUN_DIR" in done.stderr
    assert (MANIFEST.stat().st_mtime if MANIFEST.exists() else None) == before
