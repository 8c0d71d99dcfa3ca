"""Run one function in N real threads lined up on a barrier (PostgreSQL only)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection


def requires_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("real row locks need PostgreSQL (SQLite serialises writers instead)")


def race(fn: Callable[[int], Any], n: int, timeout: float = 60) -> tuple[list[Any], list[BaseException]]:
    """Call ``fn(i)`` in ``n`` threads at once; return (results, errors)."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait(timeout=timeout)
            value = fn(i)
            with lock:
                results.append(value)
        except BaseException as exc:  # noqa: BLE001 - collected for the test to judge
            with lock:
                errors.append(exc)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    return results, errors
