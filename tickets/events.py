"""Realtime payloads this app emits, and the groups they go to.

Groups: ``console`` (every staff console), ``ticket.<id>`` (a ticket's
conversation), ``agent.<id>`` (one agent's console).
"""

from __future__ import annotations

from typing import Any

from core.realtime import publish_on_commit
from merchants.services import merchant_group
from tickets.models import Channel, Message, Party, SlaBreach, Ticket

CONSOLE = "console"


def ticket_group(ticket_id: int) -> str:
    return f"ticket.{ticket_id}"


def agent_group(user_id: int) -> str:
    return f"agent.{user_id}"


def ticket_payload(ticket: Ticket) -> dict[str, Any]:
    return {
        "type": "ticket.changed",
        "ticket_id": ticket.pk,
        "status": ticket.status,
        "assignee_id": ticket.assignee_id,
        "queue_id": ticket.queue_id,
        "grade": ticket.grade,
        "tier": ticket.tier,
        "due_at": ticket.due_at.isoformat() if ticket.due_at else None,
    }


def message_payload(message: Message) -> dict[str, Any]:
    return {
        "type": "message",
        "ticket_id": message.ticket_id,
        "seq": message.seq,
        "author": {"id": message.author_id, "role": message.author_role,
                   "name": message.author.name if message.author_id else ""},
        "author_id": message.author_id,
        "body": message.body,
        "internal": message.internal,
        "notice": message.notice,
        "created_at": message.created_at.isoformat(),
    }


def _merchant_sees(ticket: Ticket) -> bool:
    """The merchant's portal hears of a ticket once the merchant is a party to it
    (the same rule as ``selectors.tickets_visible_to``)."""
    return bool(ticket.merchant_id) and ticket.party in (Party.MERCHANT, Party.BOTH)


def ticket_changed(ticket: Ticket) -> None:
    publish_on_commit([CONSOLE, ticket_group(ticket.pk)], ticket_payload(ticket))
    if _merchant_sees(ticket):
        # what the portal needs to say "this needs you" (or "you are invited into a chat")
        publish_on_commit([merchant_group(ticket.merchant_id)], {
            "type": "ticket.changed",
            "ticket_id": ticket.pk,
            "status": ticket.status,
            "subject": ticket.subject,
            "needs_merchant": ticket.status == Ticket.Status.WAITING_MERCHANT,
            "chat": ticket.channel == Channel.CHAT,
        })


def message_posted(message: Message) -> None:
    publish_on_commit([ticket_group(message.ticket_id)], message_payload(message))
    # staff consoles get a notice without the body, and fetch what they may see
    publish_on_commit([CONSOLE], {"type": "message.posted", "ticket_id": message.ticket_id, "seq": message.seq})
    if not message.internal and _merchant_sees(message.ticket):
        publish_on_commit([merchant_group(message.ticket.merchant_id)],
                          {"type": "message.posted", "ticket_id": message.ticket_id, "seq": message.seq})


def read_marked(*, ticket: Ticket, user, seq: int) -> None:
    """Read receipts: the others in the conversation see how far this person has read."""
    from accounts import roles

    payload = {"type": "read", "ticket_id": ticket.pk, "seq": seq,
               "author": {"id": user.pk, "name": user.name, "role": roles.role_of(user)}}
    publish_on_commit([ticket_group(ticket.pk)], payload)


def sla_breached(breach: SlaBreach, ticket: Ticket) -> None:
    payload = {
        "type": "sla.breached",
        "ticket_id": ticket.pk,
        "grade": breach.grade,
        "due_at": breach.due_at.isoformat(),
        "tier_before": breach.tier_before,
        "tier_after": breach.tier_after,
        "subject": ticket.subject,
    }
    groups = [CONSOLE] + ([agent_group(ticket.assignee_id)] if ticket.assignee_id else [])
    publish_on_commit(groups, payload)


def assignment_offered(ticket: Ticket, agent_id: int) -> None:
    publish_on_commit(
        [agent_group(agent_id)],
        {"type": "assignment", "ticket_id": ticket.pk, "subject": ticket.subject, "category": ticket.category},
    )


def shift_reminder(agent_id: int, worked_s: int, limit_s: int) -> None:
    publish_on_commit(
        [agent_group(agent_id)], {"type": "shift.reminder", "worked_s": worked_s, "limit_s": limit_s}
    )


def presence_changed(agent_id: int, presence: str) -> None:
    publish_on_commit([CONSOLE], {"type": "agent.presence", "agent_id": agent_id, "presence": presence})
