"""The gunicorn master's warm-up (cs_portal/warmup.py): it compiles every
template of the project, so one that does not compile stops a deploy, and it
opens no connection a forked worker would share."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_warm_up_compiles_every_project_template_and_connects_to_nothing():
    # a fresh interpreter, as the master is: nothing else has loaded anything yet
    code = (
        "import django, threading; django.setup()\n"
        "from django.db import connections\n"
        "from django.db.backends.postgresql.base import DatabaseWrapper\n"
        "from cs_portal.warmup import warm_up\n"
        "print(warm_up())\n"
        "print(sum(c.connection is not None for c in connections.all(initialized_only=True)),"
        " len(DatabaseWrapper._connection_pools), threading.active_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "cs_portal.settings"})
    assert out.returncode == 0, out.stderr[-2000:]
    compiled, counts = out.stdout.split("\n")[:2]
    project_templates = [p for pattern in ("templates/**/*.html", "*/templates/**/*.html")
                         for p in ROOT.glob(pattern) if ".venv" not in p.parts]
    assert int(compiled) == len(project_templates) > 50
    assert counts.split() == ["0", "0", "1"]  # no open connection, no database pool, no thread


@pytest.mark.django_db
def test_a_template_that_does_not_compile_stops_the_warm_up(tmp_path, settings):
    from django.template import TemplateSyntaxError, engines

    from cs_portal.warmup import _templates

    (tmp_path / "broken.html").write_text("{% if %}")
    settings.BASE_DIR = tmp_path
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path], "APP_DIRS": False}]
    engines._engines = {}
    engines.__dict__.pop("templates", None)
    try:
        with pytest.raises(TemplateSyntaxError):
            _templates()
    finally:
        engines._engines = {}
        engines.__dict__.pop("templates", None)


def test_a_worker_logs_a_garbage_collection_that_stalls_its_sockets(monkeypatch):
    """post_fork's watch: a collection longer than WEB_SLOW_GC_MS is logged with
    its generation (the chat's latency tail was found this way)."""
    import gc

    from cs_portal import gunicorn as config

    class Log:
        lines: list[str] = []

        def warning(self, text, *args):
            self.lines.append(text % args)

    monkeypatch.setattr(config, "SLOW_GC_S", 0.0)
    before = list(gc.callbacks)
    try:
        config._log_slow_collections(Log())
        gc.collect(0)
    finally:
        gc.callbacks[:] = before
    assert any(line.startswith("slow garbage collection: generation 0 took") for line in Log.lines)
    assert config.GC_THRESHOLD == (50_000, 50, 100)  # the default, unless WEB_GC_THRESHOLD says otherwise
