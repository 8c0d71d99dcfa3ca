"""Realtime payloads this app emits, and the groups they go to.

Groups: ``console`` (every staff console), ``ticket.<id>`` (a ticket's
conversation), ``agent.<id>`` (one agent's console), ``tier.<n>`` (the
consoles of the staff who own tier n), ``board`` (supervisors' consoles: the
market board's figures).
"""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse

from core.realtime import publish_on_commit, send_event_on_commit
from merchants.services import merchant_group
from tickets.models import Channel, Message, OvertimeRequest, Party, SlaBreach, Ticket
from tickets.sla import TIER_TEAM_LEAD

CONSOLE = "console"
# the supervisors' consoles: the market board's figures (``incidents.events``) go here
BOARD = "board"


def ticket_group(ticket_id: int) -> str:
    return f"ticket.{ticket_id}"


def staff_group(ticket_id: int) -> str:
    """A ticket's staff-only group: internal notes go here, so buyers' and
    merchants' sockets never receive (or filter) them."""
    return f"ticket.{ticket_id}.staff"


def agent_group(user_id: int) -> str:
    return f"agent.{user_id}"


def tier_group(tier: int) -> str:
    """The consoles of the staff who own a tier (``tickets.rules.tiers_heard_by``):
    reports up and incident alerts for that tier go here."""
    return f"tier.{tier}"


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


def attachment_payload(attachment) -> dict[str, Any]:
    """``{id, content_type, size_bytes, url, thumbnail_url}``: the URLs are the
    scoped endpoints, never the storage's own."""
    return {
        "id": attachment.pk,
        "content_type": attachment.content_type,
        "size_bytes": attachment.size_bytes,
        "url": reverse("attachment-file", args=[attachment.pk]),
        "thumbnail_url": reverse("attachment-thumbnail", args=[attachment.pk]) if attachment.thumbnail else None,
    }


def attachments_of(message: Message) -> list:
    """The message's attachments as prefetched (lists prefetch them; a new
    message carries the ones it claimed); never a query of its own."""
    cached = getattr(message, "_prefetched_objects_cache", {}).get("attachments")
    return list(cached) if cached is not None else []


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
        "attachments": [attachment_payload(a) for a in attachments_of(message)],
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


def chat_event(payload: dict[str, Any], *, prev_public_seq: int | None) -> dict[str, Any]:
    """The channel-layer event of one message: the frame encoded once for every
    socket that gets it, with what the consumers need to tell a gap
    (``prev_public_seq``: the public message before this one)."""
    return {"type": "chat.message", "seq": payload["seq"], "internal": payload["internal"],
            "prev_public_seq": prev_public_seq, "text": json.dumps(payload, ensure_ascii=False)}


def message_events(payload: dict[str, Any], *, prev_public_seq: int | None, assignee_id: int | None,
                   merchant_id: int | None, party: str) -> list[tuple[str, dict[str, Any]]]:
    """Where one message goes, as ``(group, event)`` pairs: the conversation
    (an internal note only to staff), a notice without the body to the console
    of the agent who holds the ticket, and to the merchant's portal when it is a
    party to a public message."""
    ticket_id, seq = payload["ticket_id"], payload["seq"]
    conversation = staff_group(ticket_id) if payload["internal"] else ticket_group(ticket_id)
    events = [(conversation, chat_event(payload, prev_public_seq=prev_public_seq))]
    notice = {"type": "broadcast", "payload": {"type": "message.posted", "ticket_id": ticket_id, "seq": seq}}
    if assignee_id:
        events.append((agent_group(assignee_id), notice))
    if not payload["internal"] and merchant_id and party in (Party.MERCHANT, Party.BOTH):
        events.append((merchant_group(merchant_id), notice))
    return events


def message_posted(message: Message, *, prev_public_seq: int | None = None) -> None:
    ticket = message.ticket
    for group, event in message_events(message_payload(message), prev_public_seq=prev_public_seq,
                                       assignee_id=ticket.assignee_id, merchant_id=ticket.merchant_id,
                                       party=ticket.party):
        send_event_on_commit([group], event)


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


def overtime_requested(request: OvertimeRequest, *, agent) -> None:
    """The team leads' consoles hear of it: the dashboard's overtime list refreshes."""
    publish_on_commit([tier_group(TIER_TEAM_LEAD)], {
        "type": "overtime.requested", "request_id": request.pk, "agent": {"id": agent.pk, "name": agent.name},
        "minutes": request.minutes, "reason": request.reason,
    })


def overtime_decided(request: OvertimeRequest, *, supervisor) -> None:
    """The agent's shift bar learns the answer at once; the other leads' lists refresh."""
    payload = {"type": "overtime.decided", "request_id": request.pk, "agent_id": request.agent_id,
               "status": request.status, "minutes": request.minutes, "by": {"id": supervisor.pk, "name": supervisor.name}}
    publish_on_commit([agent_group(request.agent_id), tier_group(TIER_TEAM_LEAD)], payload)


def presence_changed(agent_id: int, presence: str) -> None:
    publish_on_commit([CONSOLE], {"type": "agent.presence", "agent_id": agent_id, "presence": presence})


def reported_up(ticket: Ticket, *, actor, note: str) -> None:
    """上报: the next tier's staff hear of it on their consoles (with the note)."""
    publish_on_commit([tier_group(ticket.tier)], {
        "type": "ticket.reported_up",
        "ticket_id": ticket.pk,
        "tier": ticket.tier,
        "subject": ticket.subject,
        "note": note,
        "by": {"id": actor.pk, "name": actor.name},
    })


def ticket_merged(source: Ticket, target: Ticket) -> None:
    """The source's sockets (the buyer's chat, the console) move to the target."""
    publish_on_commit([ticket_group(source.pk)], {
        "type": "ticket.merged", "ticket_id": source.pk, "into_ticket_id": target.pk,
    })
