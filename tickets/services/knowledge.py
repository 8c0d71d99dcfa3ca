"""Quick replies with placeholders, and the playbook knowledge base."""

from __future__ import annotations

import re

from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction

from accounts import roles
from tickets import rules
from tickets.errors import InvalidInput, NotFound, PermissionDenied
from tickets.models import Category, Playbook, QuickReply, Ticket

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def placeholder_values(*, ticket: Ticket, agent) -> dict[str, str]:
    """What a quick reply can name; a value the ticket lacks stays unfilled."""
    values = {"agent_name": agent.name if agent is not None else ""}
    if ticket.buyer_id:
        values["buyer_name"] = ticket.buyer.name
    if ticket.merchant_id:
        values["merchant_name"] = ticket.merchant.name
    if ticket.order_id:
        values["order_no"] = ticket.order.order_no
        try:
            shipment = ticket.order.shipment
        except ObjectDoesNotExist:
            shipment = None
        if shipment is not None:
            values["carrier"] = shipment.carrier
            values["tracking_no"] = shipment.tracking_no
            if shipment.eta:
                values["eta"] = shipment.eta.strftime("%m月%d日") if ticket.language == "zh-hans" else shipment.eta.strftime("%b %d")
    values["ticket_id"] = str(ticket.pk)
    return {k: v for k, v in values.items() if v}


def render_quick_reply(*, reply: QuickReply, ticket: Ticket, agent) -> tuple[str, list[str]]:
    """The reply's text for this ticket, and the placeholders left unfilled
    (kept as ``{name}`` so the agent sees what to complete)."""
    values = placeholder_values(ticket=ticket, agent=agent)
    missing: list[str] = []

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        missing.append(name)
        return match.group(0)

    return PLACEHOLDER.sub(fill, reply.body), missing


def _clean_playbook(*, title: str, body: str, category: str) -> dict:
    title = (title or "").strip()
    body = (body or "").strip()
    category = (category or "").strip()
    if not title or len(title) > 120:
        raise InvalidInput("title is 1–120 characters.", field="title")
    if not body or len(body) > 10000:
        raise InvalidInput("body is 1–10000 characters.", field="body")
    if category and category not in Category.values:
        raise InvalidInput(f"Unknown category {category!r}.", field="category")
    return {"title": title, "body": body, "category": category}


@transaction.atomic(durable=True)
def add_playbook(*, actor, title: str, body: str, category: str = "") -> Playbook:
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff add playbooks.")
    fields = _clean_playbook(title=title, body=body, category=category)
    return Playbook.objects.create(**fields, created_by=actor)


@transaction.atomic(durable=True)
def edit_playbook(*, actor, playbook_id: int, title: str, body: str, category: str = "") -> Playbook:
    """Change a playbook's title, steps or category: its author or a team
    lead (``rules.may_edit_playbook``); 404 for an unknown one."""
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff edit playbooks.")
    playbook = Playbook.objects.filter(pk=playbook_id).first()
    if playbook is None:
        raise NotFound("No such playbook.")
    if not rules.may_edit_playbook(actor_id=actor.pk, author_id=playbook.created_by_id,
                                   is_supervisor=roles.is_supervisor(actor)):
        raise PermissionDenied("Only the playbook's author or a team lead edits it.")
    fields = _clean_playbook(title=title, body=body, category=category)
    for name, value in fields.items():
        setattr(playbook, name, value)
    playbook.save(update_fields=[*fields, "updated_at"])
    return playbook
