"""Seeding for the reports: tickets, replies, ratings, remedies and shipments
made through the project's services, then timestamps set to known values so
each figure can be checked against a number written in the test."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

from django.utils import timezone

from compensation import services as compensation
from compensation.models import Remedy
from compensation.tests.factories import new_key, remedy_ticket
from merchants.tests.factories import OrderFactory, ShipmentFactory
from tickets import services as tickets
from tickets.models import Ticket
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


@contextmanager
def clock(at: datetime):
    """The services' clock stopped at ``at`` (they read ``timezone.now()``)."""
    with mock.patch("django.utils.timezone.now", return_value=at):
        yield


def chat(*, buyer, agent, script: list[tuple[str, float]], start: datetime | None = None, channel: str = "chat",
         ) -> Ticket:
    """An assigned chat ticket whose conversation follows ``script``:
    (``buyer``, ``agent`` or ``note``, an agent's internal note; seconds after
    ``start``, by default ten minutes ago, so that a script of a minute or
    two stays in the past: a reply scripted after now would fall on
    tomorrow's date when a test runs just before local midnight, outside a
    period that ends today). The opening message is the first buyer
    line. Every message goes through ``post_message`` at its scripted time, so
    what the write path stores (first reply, the chat report's waits) is what
    it would have stored then."""
    start = start or timezone.now() - timedelta(minutes=10)
    first_role, first_s = script[0]
    assert first_role == "buyer"
    with clock(start + timedelta(seconds=first_s)):
        ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, channel=channel)
    for role, seconds in script[1:]:
        with clock(start + timedelta(seconds=seconds)):
            tickets.post_message(actor=buyer if role == "buyer" else agent, ticket_id=ticket.pk,
                                 internal=role == "note", body="在吗？" if role == "buyer" else "您好，在的")
    return Ticket.objects.get(pk=ticket.pk)


def executed_remedy(*, buyer, agent, merchant, kind: str, with_coupon: bool = False, amount_fen: int | None = None):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    result = compensation.apply_remedy(actor=agent, ticket_id=ticket.pk, kind=kind, reason="安抚补偿",
                                       amount_fen=amount_fen, with_coupon=with_coupon, idempotency_key=new_key())
    assert result.status_code == 201, result.body
    return Remedy.objects.get(pk=result.remedy_id)


def shipment(*, carrier: str, region: str = "浙江", **extra):
    return ShipmentFactory(order=OrderFactory(region=region), carrier=carrier, **extra)
