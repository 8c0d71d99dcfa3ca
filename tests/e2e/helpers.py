"""Helpers the browser tests share."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from django.db import connections


def orm(fn):
    """Run ``fn`` (ORM reads, a service call) in a worker thread and close its
    connection there: the test thread hosts Playwright's event loop, where a
    connection would be context-local, never closed, and keep the test
    database from being dropped (and ``async_to_sync`` publishing would fail)."""

    def run():
        try:
            return fn()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()
