"""Seeding for the reports: tickets, replies, ratings, remedies and shipments
made through the project's services, then timestamps set to known values so
each figure can be checked against a number written in the test."""

from __future__ import annotations

from datetime import timedelta

from compensation import services as compensation
from compensation.models import Remedy
from compensation.tests.factories import new_key, remedy_ticket
from merchants.tests.factories import OrderFactory, ShipmentFactory
from tickets import services as tickets
from tickets.models import Message, Ticket
from tickets.tests.factories import ticket_in_state


def answered(ticket: Ticket, *, after_s: float) -> Ticket:
    """The ticket's first agent reply ``after_s`` seconds after it opened."""
    Ticket.objects.filter(pk=ticket.pk).update(first_response_at=ticket.created_at + timedelta(seconds=after_s))
    return Ticket.objects.get(pk=ticket.pk)


def resolved_and_rated(*, buyer, agent, score: int | None, region: str = "浙江", category="logistics_delay",
                       first_response_s: float | None = None, merchant=None) -> Ticket:
    order = OrderFactory(buyer=buyer, region=region, **({"merchant": merchant} if merchant else {}))
    ticket = ticket_in_state("resolved", buyer=buyer, agent=agent, order=order, category=category)
    if score is not None:
        tickets.rate_ticket(actor=buyer, ticket_id=ticket.pk, score=score)
    if first_response_s is not None:
        ticket = answered(ticket, after_s=first_response_s)
    return ticket


def chat(*, buyer, agent, script: list[tuple[str, float]]) -> Ticket:
    """An assigned chat ticket whose conversation follows ``script``:
    (``buyer`` or ``agent``, seconds after the ticket opened). The opening
    message is the first buyer line."""
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, channel="chat")
    opening = Message.objects.filter(ticket=ticket, author_role="buyer").order_by("seq").first()
    first_role, first_s = script[0]
    assert first_role == "buyer"
    Message.objects.filter(pk=opening.pk).update(created_at=ticket.created_at + timedelta(seconds=first_s))
    for role, seconds in script[1:]:
        message = tickets.post_message(actor=buyer if role == "buyer" else agent, ticket_id=ticket.pk,
                                       body="在吗？" if role == "buyer" else "您好，在的")
        Message.objects.filter(pk=message.pk).update(created_at=ticket.created_at + timedelta(seconds=seconds))
    # the first reply as the script has it (the service stamped the real now)
    first_agent_s = next(seconds for role, seconds in script if role == "agent")
    return answered(ticket, after_s=first_agent_s)


def executed_remedy(*, buyer, agent, merchant, kind: str, with_coupon: bool = False, amount_fen: int | None = None):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    result = compensation.apply_remedy(actor=agent, ticket_id=ticket.pk, kind=kind, reason="安抚补偿",
                                       amount_fen=amount_fen, with_coupon=with_coupon, idempotency_key=new_key())
    assert result.status_code == 201, result.body
    return Remedy.objects.get(pk=result.remedy_id)


def shipment(*, carrier: str, region: str = "浙江", **extra):
    return ShipmentFactory(order=OrderFactory(region=region), carrier=carrier, **extra)
