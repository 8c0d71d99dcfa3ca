"""Row locks, in one global order across apps.

Every service that locks more than one kind of row takes them in this order,
each queryset ``order_by("pk")`` so two transactions never wait on each other
in a circle:

    budget day → agent quota → buyer counter → ticket → agent profile
    → order → fund hold → payout → merchant account (balance)

(``compensation`` owns the first three, ``merchants`` the last four.) SQLite
ignores ``select_for_update``; there the IMMEDIATE transaction mode serialises
writers instead.
"""

from __future__ import annotations

from django.db import transaction

from tickets.models import AgentProfile, Ticket


def _assert_in_transaction() -> None:
    assert transaction.get_connection().in_atomic_block, "lock helpers run inside a transaction"


def lock_ticket(ticket_id: int) -> Ticket | None:
    _assert_in_transaction()
    return Ticket.objects.select_for_update().filter(pk=ticket_id).first()


def lock_agent_profiles(user_ids: list[int]) -> list[AgentProfile]:
    _assert_in_transaction()
    return list(AgentProfile.objects.select_for_update().filter(user_id__in=user_ids).order_by("pk"))
