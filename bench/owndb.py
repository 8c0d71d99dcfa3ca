"""A benchmark's own database: drop and recreate it, start Django on it, and
COPY rows into it. Shared by the benchmarks that seed at size in-process
(``search``, ``board``, ``reports``, ``escrow``); the served benchmarks use
``bench.harness``.

Only a loopback database whose name holds "bench" is ever dropped.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit


def recreate_database(url: str, *, drop_only: bool = False) -> None:
    """Drop the database of ``url`` (and create it empty again unless ``drop_only``)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing {url}: the name must contain 'bench' and the host be loopback")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def start_django(url: str, *, migrate: bool = True) -> None:
    """A fresh database at ``url``, Django set up on it (no Redis: the
    in-memory layer and cache, no connection pool), migrated unless told not to."""
    recreate_database(url)
    os.environ.update(DATABASE_URL=url, DEBUG="1", DB_POOL="0")
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cs_portal.settings")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def copy_rows(table: str, columns: list[str], rows) -> None:
    """COPY ``rows`` (tuples in ``columns`` order) into ``table``."""
    from django.db import connection

    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
