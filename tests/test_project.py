"""Project-wide gates: the schema, deploy checks, migrations, the dependency
direction between apps, and the offline API docs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["core", "accounts", "merchants", "tickets", "compensation", "risk", "incidents", "reports", "cs_portal"]  # lower ← higher


# set for the browser tests' event loop; a deploy check must not inherit it
TEST_ONLY_ENV = ("DJANGO_ALLOW_ASYNC_UNSAFE",)


def _child_env(extra: dict | None = None) -> dict:
    return {**{k: v for k, v in os.environ.items() if k not in TEST_ONLY_ENV}, **(extra or {})}


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=_child_env(env),
    )


def test_openapi_schema_is_valid_without_warnings():
    result = _run("spectacular", "--validate", "--fail-on-warn", "--file", os.devnull)
    assert result.returncode == 0, result.stderr[-3000:]


def test_check_deploy_is_clean_with_production_settings():
    env = {"DEBUG": "0", "SECRET_KEY": "x-check-only-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789",
           "ALLOWED_HOSTS": "cs.example.com"}
    result = _run("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {k: v for k, v in _child_env().items() if k != "SECRET_KEY"}
    env["DEBUG"] = "0"
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_no_missing_migrations():
    result = _run("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("app", [app for app in LAYERS if (ROOT / app).is_dir()])
def test_lower_apps_never_import_higher_ones(app):
    higher = set(LAYERS[LAYERS.index(app) + 1:])
    app_dir = ROOT / app
    offenders = []
    for path in app_dir.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        wrong = _imports(path) & higher
        if wrong:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(wrong)}")
    assert offenders == []


def test_dependency_check_would_catch_an_upward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("from tickets.models import Ticket\nimport compensation.services\n")
    assert {"tickets", "compensation"} <= _imports(bad)


@pytest.mark.django_db
def test_schema_and_offline_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/tickets/{ticket_id}/transitions/{name}/" in schema.content
    assert b"tokenAuth:" in schema.content  # the token's security scheme, registered with the URLconf
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "drf_spectacular_sidecar" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()


@pytest.mark.django_db
def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=_child_env({"DJANGO_SETTINGS_MODULE": "cs_portal.settings", **(env or {})}))


def test_a_cold_start_imports_neither_celery_nor_the_schema_toolkit():
    """What the gunicorn master loads before the first socket can be back (the
    app and ``warm_up`` without pages): Celery and drf-spectacular's toolkit
    (which pulls in ``django.test``) were a third of it."""
    result = _python(
        "import sys, warnings; warnings.simplefilter('ignore'); import cs_portal.asgi\n"
        "from cs_portal.warmup import warm_up; warm_up(pages=False)\n"
        "print(sorted(m for m in ('celery', 'kombu', 'drf_spectacular.plumbing', 'django.test') if m in sys.modules))")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def test_celery_finds_the_project_app_that_the_package_no_longer_imports():
    result = _python(
        "from celery.bin.celery import find_app\n"
        "import cs_portal\n"
        "app = find_app('cs_portal'); app.loader.import_default_modules()\n"
        "print(app.main, app is cs_portal.celery_app, 'tickets.tasks.sla_sweep' in app.tasks)")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["cs_portal", "True", "True"]


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the production broker is Redis")
def test_a_task_queued_before_anything_loaded_celery_goes_to_the_project_broker():
    """``enqueue`` in a process that never loaded the Celery app (a web worker
    since the package stopped importing it): the task is sent by the
    project's app to its Redis broker, not by Celery's default app to an AMQP
    broker that is not there."""
    import json

    import redis

    queue = "celery"  # the default queue: no worker reads this Redis database in the suite
    client = redis.Redis.from_url(os.environ["REDIS_URL"])

    def ours() -> list[bytes]:
        return [raw for raw in client.lrange(queue, 0, -1)
                if json.loads(raw)["headers"].get("argsrepr") == "(987654321,)"]

    for raw in ours():
        client.lrem(queue, 0, raw)
    try:
        result = _python(
            "import sys, django; django.setup()\n"
            "from incidents.tasks import run_bulk_job\n"
            "from core.tasks import enqueue\n"
            "assert 'cs_portal.celery' not in sys.modules\n"
            "print(enqueue(run_bulk_job, 987654321))",
            env={"REDIS_URL": os.environ["REDIS_URL"]})
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip() == "True", result.stderr[-3000:]
        [message] = ours()
        assert json.loads(message)["headers"]["task"] == "incidents.tasks.run_bulk_job"
    finally:
        for raw in ours():
            client.lrem(queue, 0, raw)


def test_every_beat_job_is_a_registered_celery_task(settings):
    from cs_portal.celery import app

    app.loader.import_default_modules()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, name


def test_every_app_with_tests_is_collected():
    """A test folder outside pytest.ini's testpaths would silently never run in CI."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "pytest.ini")
    testpaths = set(config["pytest"]["testpaths"].split())
    with_tests = {p.parent.parent.name for p in ROOT.glob("*/tests/__init__.py")}
    assert with_tests <= testpaths


# Indexes every write pays for and no read needs. A btree index on columns
# that lead another index of the same table answers nothing the longer one
# cannot (a foreign key's own index beside a composite that starts with it,
# Django's default), and the ``varchar_pattern_ops`` twin PostgreSQL gets for
# a ``unique=True`` CharField serves only ``LIKE 'prefix%'``. The tickets
# table had four of the first kind: 21 indexes to write for every ticket
# inserted and every update that is not heap-only (PERFORMANCE.md, 2026-12-05).
PATTERN_OPS_ALLOWED = {
    # tables written rarely (people, merchants, queues, replies) or outside the hot
    # paths, where a twin costs little; a new one on a hot table fails the test
    "accounts_user", "accounts_apitoken", "incidents_couponfailure",
    "incidents_logisticsevent", "merchants_merchant", "merchants_order", "tickets_queue", "tickets_quickreply",
}


def _indexes(cursor) -> list[tuple[str, str, list[str], bool, str]]:
    cursor.execute("""
        SELECT t.relname, c.relname, string_to_array(i.indkey::text, ' '),
               i.indpred IS NOT NULL OR i.indexprs IS NOT NULL, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_am am ON am.oid = c.relam
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = current_schema() AND am.amname = 'btree'
    """)
    return cursor.fetchall()


@pytest.mark.postgres
@pytest.mark.django_db
def test_no_index_of_ours_is_led_by_another_or_a_pattern_twin():
    from django.apps import apps
    from django.db import connection

    from tests.concurrency import requires_postgres

    requires_postgres()
    # our models' tables (not the many-to-many tables Django makes for AbstractUser's groups)
    ours = {model._meta.db_table for model in apps.get_models()
            if model._meta.app_label in LAYERS and not model._meta.auto_created}
    with connection.cursor() as cursor:
        indexes = [row for row in _indexes(cursor) if row[0] in ours]
    assert len(indexes) > 50  # the query sees our schema
    redundant = [
        f"{short} (covered by {long})"
        for table, short, keys, partial, definition in indexes
        if not partial and "UNIQUE" not in definition and "pattern_ops" not in definition
        for other_table, long, other_keys, other_partial, _ in indexes
        if other_table == table and long != short and not other_partial
        and len(other_keys) > len(keys) and other_keys[:len(keys)] == keys
    ]
    assert redundant == []
    twins = sorted(table for table, _name, _keys, _partial, definition in indexes
                   if "pattern_ops" in definition and table not in PATTERN_OPS_ALLOWED)
    assert twins == []
