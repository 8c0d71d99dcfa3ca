"""Running one state-machine transition on a locked ticket (inside a transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django_fsm import can_proceed

from accounts import roles
from tickets import events, rules
from tickets.errors import BelowTicketTier, IllegalTransition, TransitionForbidden, TransitionRefused, UnknownTransition
from tickets.models import Ticket, TicketEvent
from tickets.selectors import USER_TRANSITIONS
from tickets.services.conversation import append_notice

SYSTEM_TRANSITIONS = (*USER_TRANSITIONS, "route")


def check_source_state(*, ticket: Ticket, name: str, system: bool = False):
    """404 for a name that is no (user) transition, 409 from a wrong state;
    returns the bound transition method."""
    allowed = SYSTEM_TRANSITIONS if system else USER_TRANSITIONS
    if name not in allowed:
        raise UnknownTransition(f"No transition named {name!r}.")
    method = getattr(ticket, name)
    if not can_proceed(method, check_conditions=False):
        raise IllegalTransition(
            f"Cannot {name} a ticket that is {ticket.status}.", status=ticket.status, transition=name
        )
    return method


def check_permission(*, ticket: Ticket, method, actor) -> None:
    """403 unless the actor's role may run this transition on this ticket
    (django-fsm-2 never checks ``permission`` by itself). Staff below the
    ticket's tier get their own code: they may report it up instead."""
    name = method.__name__
    if name in rules.SETTLING_TRANSITIONS and roles.is_agent(actor):
        if not rules.may_settle(rank=roles.staff_rank(actor), tier=ticket.tier):
            raise BelowTicketTier(tier=ticket.tier, owner_role=rules.TIER_OWNER_ROLES[ticket.tier])
    if not method._django_fsm.has_transition_perm(ticket, ticket.status, actor):
        raise TransitionForbidden(f"You may not {method.__name__} this ticket.")


def run_transition(
    *,
    ticket: Ticket,
    name: str,
    actor,
    now: datetime,
    system: bool = False,
    note: str = "",
    event_data: dict[str, Any] | None = None,
    **kwargs: Any,
) -> TicketEvent:
    """Check source state (409), role (403) and conditions (422), run, save, record.

    ``ticket`` must be locked by the caller. ``system=True`` is for the
    platform's own moves (routing, SLA escalation, auto-resume) and skips the
    role check, never the state check.
    """
    assert transaction.get_connection().in_atomic_block, "run_transition needs the caller's transaction"
    method = check_source_state(ticket=ticket, name=name, system=system)
    if not system:
        check_permission(ticket=ticket, method=method, actor=actor)
    if not can_proceed(method):
        meta = method._django_fsm.get_transition(ticket.status)
        failed = [c for c in meta.conditions if not c(ticket)]
        hint = getattr(failed[0], "hint", "condition_failed") if failed else "condition_failed"
        raise TransitionRefused(f"Cannot {name} this ticket now ({hint}).", reason=hint)

    before = ticket.status
    tier_before = ticket.tier
    method(now=now, **kwargs)
    ticket.save()
    data = {"from": before, "to": ticket.status}
    if ticket.tier != tier_before:
        data.update(tier_from=tier_before, tier_to=ticket.tier)
    if "assignee" in kwargs and kwargs["assignee"] is not None:
        data["assignee_id"] = kwargs["assignee"].pk
    if "queue" in kwargs:
        data["queue"] = kwargs["queue"].code
    if note:
        data["note"] = note
    if event_data:
        data.update(event_data)
    event = TicketEvent.objects.create(
        ticket=ticket, kind=name, actor=actor if actor and actor.is_authenticated else None,
        data=data, created_at=now,
    )
    _tell_conversation(ticket=ticket, name=name, now=now, assignee=kwargs.get("assignee"))
    events.ticket_changed(ticket)
    return event


def _tell_conversation(*, ticket: Ticket, name: str, now: datetime, assignee=None) -> None:
    """The buyer (and the merchant) see the moves that concern them as notices in the chat."""
    if name in ("assign", "reassign") and assignee is not None:
        append_notice(ticket=ticket, notice="assigned", now=now, agent=assignee.name)
    elif name == "wait_merchant" and ticket.merchant_id:
        append_notice(ticket=ticket, notice="merchant_invited", now=now, merchant=ticket.merchant.name)
    elif name == "resolve":
        append_notice(ticket=ticket, notice="resolved", now=now)
    elif name == "reopen":
        append_notice(ticket=ticket, notice="reopened", now=now)
