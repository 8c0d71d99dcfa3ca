"""In-process helpers for ``bench/tickets.py``, run as a subprocess with the
benchmark's environment (never imported by the benchmark itself, so the
benchmark process stays free of Django and of the app's settings).

    .venv/bin/python bench/django_probe.py session agent1
        prints a session id for that user (``force_login``); the benchmark uses
        it only when the login page at /accounts/login/ cannot be used.

    .venv/bin/python bench/django_probe.py queries [--explain]
        for each measured read (the ticket list three ways, the console page)
        prints, as JSON, the number of SQL queries one request issues, each
        query's SQL and time and, with --explain, the plan PostgreSQL runs for
        each query on the tickets table (EXPLAIN (ANALYZE, BUFFERS)).

Read-only apart from the session row that ``session`` writes.
"""

from __future__ import annotations

import json
import os
import sys
import time

# run with the app's directory as cwd (the benchmark runs the app from a snapshot)
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cs_portal.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.services import issue_api_token  # noqa: E402

READS = [
    ("list", "/api/v1/tickets/"),
    ("list_open", "/api/v1/tickets/?status=open"),
    ("list_overdue", "/api/v1/tickets/?overdue=true"),
    ("console", "/console/"),
]


def session(username: str) -> None:
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    print(client.cookies["sessionid"].value)


class _Recorder:
    """``connection.execute_wrapper``: each query's SQL, parameters and time."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.rows.append({"sql": sql, "params": params, "ms": (time.perf_counter() - started) * 1000})


def queries(explain: bool) -> None:
    agent = get_user_model().objects.get(username="agent1")
    token = issue_api_token(user=agent)
    # the API is measured with a token; a failing view is reported, not raised
    api = Client(HTTP_AUTHORIZATION=f"Token {token.key}", raise_request_exception=False)
    page = Client(raise_request_exception=False)
    page.force_login(agent)  # the console with a session
    out = {}
    for name, path in READS:
        client = page if name == "console" else api
        client.get(path)  # warm per-process caches, as on the measured server
        recorder = _Recorder()
        with connection.execute_wrapper(recorder):
            started = time.perf_counter()
            response = client.get(path)
            elapsed_ms = (time.perf_counter() - started) * 1000
        rows = []
        for q in recorder.rows:
            with connection.cursor() as cursor:
                row = {"sql": connection.ops.compose_sql(q["sql"], q["params"]), "ms": round(q["ms"], 3)}
                if explain and "tickets_ticket" in q["sql"] and q["sql"].lstrip().upper().startswith("SELECT"):
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + q["sql"], q["params"])
                    row["plan"] = "\n".join(r[0] for r in cursor.fetchall())
            rows.append(row)
        out[name] = {
            "path": path, "status": response.status_code, "in_process_ms": round(elapsed_ms, 2),
            "queries": rows,
        }
    print(json.dumps(out))


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "session":
        session(argv[1])
    elif argv and argv[0] == "queries":
        queries(explain="--explain" in argv[1:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
