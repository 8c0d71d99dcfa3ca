"""The gunicorn master's warm-up (cs_portal/warmup.py): it compiles every
template of the project, so one that does not compile stops a deploy, and it
opens no connection a forked worker would share."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _in_a_fresh_interpreter(code: str) -> list[str]:
    """The lines ``code`` prints in a new Python, as the gunicorn master is:
    nothing else has loaded anything yet."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "cs_portal.settings"})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split("\n")


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
    compiled, counts = _in_a_fresh_interpreter(code)[:2]
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


def test_without_pages_the_warm_up_loads_what_sockets_need_and_no_view_or_template():
    """A cold start's warm-up (no deploy): the session engine, the channel
    layer and the models' caches, not the views behind the URLconf or the
    templates, which would hold every waiting socket back."""
    code = (
        "import sys, django; django.setup()\n"
        "from django.conf import settings\n"
        "from cs_portal.warmup import warm_up\n"
        "before = set(sys.modules)\n"
        "print(warm_up(pages=False))\n"
        "print(settings.SESSION_ENGINE in sys.modules, 'tickets.views' in sys.modules, 'tickets.views' in before)\n"
    )
    compiled, loaded = _in_a_fresh_interpreter(code)[:2]
    assert compiled == "0" and loaded.split() == ["True", "False", "False"]


@pytest.mark.parametrize(("mode", "deploy", "pages"), [
    ("auto", "", False), ("auto", "1", True), ("1", "", True), ("0", "1", None)])
def test_the_master_loads_what_pages_need_on_a_deploy_or_when_asked(monkeypatch, mode, deploy, pages):
    from cs_portal import gunicorn as config
    from cs_portal import warmup

    asked = []
    monkeypatch.setattr(warmup, "warm_up", lambda *, pages: asked.append(pages) or 0)
    monkeypatch.setenv("WEB_WARMUP", mode)
    monkeypatch.setenv("CS_DEPLOY", deploy)
    monkeypatch.delenv("CS_READY_FD", raising=False)

    class Server:
        num_workers = 2
        log = __import__("logging").getLogger("test")

    config.when_ready(Server())
    assert asked == ([] if pages is None else [pages])
