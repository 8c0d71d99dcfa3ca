"""Row locks of ``tickets``, taken in the one global order of ``core/locks.py``
(… shipment → ticket → remedy → overtime request → agent profile → …).

SQLite ignores ``select_for_update``; there the IMMEDIATE transaction mode
serialises writers instead.
"""

from __future__ import annotations

from django.db import transaction

from core.locks import lock
from tickets.models import AgentProfile, Ticket


def _assert_in_transaction() -> None:
    assert transaction.get_connection().in_atomic_block, "lock helpers run inside a transaction"


def lock_ticket(ticket_id: int) -> Ticket | None:
    _assert_in_transaction()
    return lock(Ticket.objects, "ticket").filter(pk=ticket_id).first()


def lock_agent_profiles(user_ids: list[int]) -> list[AgentProfile]:
    _assert_in_transaction()
    return list(lock(AgentProfile.objects, "agent_profile").filter(user_id__in=user_ids).order_by("pk"))
