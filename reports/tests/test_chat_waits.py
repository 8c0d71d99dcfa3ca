"""The chat report's stored figure stays right on every write path: the chat
sockets' batch stores the same waits as ``post_message``, and the migration's
backfill finds the same waits the services stored."""

from __future__ import annotations

import importlib
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection

from reports.tests.factories import chat
from tickets.models import Message, Ticket
from tickets.rules import viewer_of
from tickets.services.chat import ChatPost, store_chat_batch
from tickets.tests.factories import ticket_in_state


def stored_waits(ticket) -> list:
    return list(Message.objects.filter(ticket=ticket).order_by("seq").values_list("seq", "waited_from"))


@pytest.mark.django_db
def test_the_chat_batch_stores_the_wait_it_ends(buyer, agent):
    # given: a chat opened by the buyer (the opening message starts the wait)
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, channel="chat")
    opened = Ticket.objects.get(pk=ticket.pk).buyer_waiting_since
    assert opened == ticket.created_at
    buyer_v, agent_v = viewer_of(buyer), viewer_of(agent)
    # when: the buyer writes again, then in one batch the agent answers and the buyer writes once more
    store_chat_batch(posts=[ChatPost(viewer=buyer_v, ticket_id=ticket.pk, body="还在吗", client_msg_id=None)],
                     reads=[], now=opened + timedelta(seconds=30))
    later = opened + timedelta(seconds=42)
    store_chat_batch(posts=[ChatPost(viewer=agent_v, ticket_id=ticket.pk, body="在的", client_msg_id=None),
                            ChatPost(viewer=buyer_v, ticket_id=ticket.pk, body="好的", client_msg_id=None)],
                     reads=[], now=later)
    # then: the reply keeps when the wait began, and the buyer's last line opened a new one
    reply = Message.objects.get(ticket=ticket, author_role="agent", internal=False, notice="")
    assert reply.waited_from == opened and reply.created_at - reply.waited_from == timedelta(seconds=42)
    assert Ticket.objects.get(pk=ticket.pk).buyer_waiting_since == later
    # and an agent's second word ends nothing
    store_chat_batch(posts=[ChatPost(viewer=agent_v, ticket_id=ticket.pk, body="马上处理", client_msg_id=None)],
                     reads=[], now=later + timedelta(seconds=5))
    store_chat_batch(posts=[ChatPost(viewer=agent_v, ticket_id=ticket.pk, body="还有吗", client_msg_id=None)],
                     reads=[], now=later + timedelta(seconds=9))
    assert [w for _, w in stored_waits(ticket) if w is not None] == [opened, later]


@pytest.mark.django_db
def test_a_web_ticket_keeps_the_wait_but_stores_no_chat_figure(buyer, agent):
    ticket = chat(buyer=buyer, agent=agent, channel="web", script=[("buyer", 0), ("agent", 20), ("buyer", 30)])
    assert all(w is None for _, w in stored_waits(ticket))
    assert Ticket.objects.get(pk=ticket.pk).buyer_waiting_since is not None


@pytest.mark.django_db
def test_the_backfill_finds_what_the_services_stored(buyer, other_buyer, agent, other_agent):
    tickets = [
        chat(buyer=buyer, agent=agent, script=[("buyer", 0), ("buyer", 5), ("note", 8), ("agent", 20),
                                               ("agent", 25), ("buyer", 40), ("agent", 41.5), ("buyer", 50)]),
        chat(buyer=other_buyer, agent=other_agent, script=[("buyer", 0), ("agent", 3)]),
        chat(buyer=buyer, agent=other_agent, channel="web", script=[("buyer", 0), ("agent", 9), ("buyer", 12)]),
    ]
    services = {t.pk: (stored_waits(t), Ticket.objects.get(pk=t.pk).buyer_waiting_since) for t in tickets}
    assert sum(1 for t in tickets for _, w in services[t.pk][0] if w is not None) == 3
    Message.objects.update(waited_from=None)
    Ticket.objects.update(buyer_waiting_since=None)

    migration = importlib.import_module("tickets.migrations.0010_report_figures")
    migration.backfill(None, SimpleNamespace(connection=connection))

    assert {t.pk: (stored_waits(t), Ticket.objects.get(pk=t.pk).buyer_waiting_since) for t in tickets} == services
