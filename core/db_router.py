"""Reads that may be a second behind go to a read replica, when there is one.

Production past one PostgreSQL server (docs/SCALING.md) points
``DATABASE_REPLICA_URL`` at a streaming replica; the settings then add the
``replica`` alias and this router. Only reads made inside ``replica_reads()``
go there: the supervisor's dashboard and the reports, whose figures may lag
the primary by the replica's delay and which would otherwise scan the tables
every agent writes to. Everything else, and every write, stays on the
primary: an agent's own queue, a ticket page after a reply, a remedy's checks
must see what was just committed. Without the setting the router is inert.

    with replica_reads():
        board = selectors.dashboard()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import connections, router, transaction

REPLICA = "replica"
_reading_from_replica: ContextVar[bool] = ContextVar("reading_from_replica", default=False)


def has_replica() -> bool:
    return REPLICA in settings.DATABASES


@contextmanager
def replica_reads() -> Iterator[None]:
    """Reads in this block (this thread or task) may come from the replica."""
    token = _reading_from_replica.set(True)
    try:
        yield
    finally:
        _reading_from_replica.reset(token)


@contextmanager
def analytic_reads(model) -> Iterator[None]:
    """``replica_reads()`` for queries that aggregate a month of rows (the
    reports): on PostgreSQL they run in one transaction on the database
    ``model`` is read from, with the planner settings of a reporting session
    (``REPORT_DB_SETTINGS``: sorts in memory rather than on disk, index probes
    priced as the cached reads they are, no parallel workers whose start-up
    costs more than the scans they split). ``SET LOCAL``: the settings end with
    the transaction and never reach a pooled connection's next user."""
    with replica_reads():
        alias = router.db_for_read(model)
        if connections[alias].vendor != "postgresql":
            yield
            return
        with transaction.atomic(using=alias):
            pairs = list(settings.REPORT_DB_SETTINGS.items())
            if pairs:
                with connections[alias].cursor() as cursor:
                    cursor.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(pairs)),
                                   [str(part) for pair in pairs for part in pair])
            yield


class ReplicaRouter:
    def db_for_read(self, model, **hints) -> str | None:
        if _reading_from_replica.get() and has_replica():
            return REPLICA
        return None  # the primary

    def db_for_write(self, model, **hints) -> str | None:
        return None

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the same data on both

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints) -> bool:
        return db != REPLICA  # a replica follows the primary's schema; it is never migrated
