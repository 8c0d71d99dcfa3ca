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
