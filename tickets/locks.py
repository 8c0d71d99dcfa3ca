"""Row locks of ``tickets``, taken in the one global order of ``core/locks.py``
(… shipment → ticket → remedy → overtime request → agent profile → …).

SQLite ignores ``select_for_update``; there the IMMEDIATE transaction mode
serialises writers instead.
"""

from __future__ import annotations

from django.db import connection, transaction

from core.locks import lock, taking
from core.rows import for_update
from tickets.models import AgentProfile, Ticket


def _assert_in_transaction() -> None:
    assert transaction.get_connection().in_atomic_block, "lock helpers run inside a transaction"


def lock_ticket(ticket_id: int) -> Ticket | None:
    _assert_in_transaction()
    return lock(Ticket.objects, "ticket").filter(pk=ticket_id).first()


def lock_ticket_rows(ticket_ids: list[int], columns: str, *, where: str = "") -> list[tuple]:
    """``columns`` of the tickets ``ticket_ids`` (and ``where``, an extra SQL
    condition on them), locked in id order, as plain rows: for the batches that
    lock many tickets at once (the chat writer, the search fold), where the ORM's
    building of the query and its instances was most of their time."""
    taking("ticket")
    table = connection.ops.quote_name(Ticket._meta.db_table)
    marks = ", ".join(["%s"] * len(ticket_ids))
    condition = f" AND {where}" if where else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table} WHERE id IN ({marks}){condition} ORDER BY id{for_update()}",
                       ticket_ids)
        return cursor.fetchall()


def lock_agent_profiles(user_ids: list[int]) -> list[AgentProfile]:
    _assert_in_transaction()
    return list(lock(AgentProfile.objects, "agent_profile").filter(user_id__in=user_ids).order_by("pk"))
