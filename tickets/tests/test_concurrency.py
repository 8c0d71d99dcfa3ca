"""Real parallel transactions on PostgreSQL: one winner for a take, gap-free
seq, an idempotent sweep, and capacity held under parallel chat intake."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import roles
from accounts.tests.factories import UserFactory
from merchants.tests.factories import OrderFactory
from tests.concurrency import race, requires_postgres
from tickets import services
from tickets.errors import IllegalTransition
from tickets.models import Message, SlaBreach, Ticket, TicketEvent, WorkSession
from tickets.tests.factories import make_agent_profile, open_ticket, ticket_in_state

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_agents_take_one_ticket_exactly_one_wins(buyer, order):
    requires_postgres()
    ticket = open_ticket(buyer=buyer, order=order)
    agents = [UserFactory(role=roles.AGENT) for _ in range(8)]

    results, errors = race(
        lambda i: services.transition_ticket(actor=agents[i], ticket_id=ticket.pk, name="assign").assignee_id, 8
    )

    assert len(results) == 1
    assert len(errors) == 7 and all(isinstance(e, IllegalTransition) and e.status == 409 for e in errors)
    ticket.refresh_from_db()
    assert ticket.status == "assigned" and ticket.assignee_id == results[0]
    assert TicketEvent.objects.filter(ticket=ticket, kind="assign").count() == 1


def test_parallel_messages_get_gap_free_seq(buyer, order, agent):
    requires_postgres()
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    authors = [agent, buyer]

    def post(i):
        for n in range(10):
            services.post_message(actor=authors[i % 2], ticket_id=ticket.pk, body=f"t{i}-{n}")

    _, errors = race(post, 8)

    assert errors == []
    seqs = list(Message.objects.filter(ticket=ticket).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 83))  # the request, the "assigned" notice and the 80 posted here
    ticket.refresh_from_db()
    assert ticket.last_seq == 82


def test_parallel_sweeps_breach_each_deadline_once(buyer, order):
    requires_postgres()
    tickets = [open_ticket(buyer=buyer, order=order) for _ in range(12)]
    Ticket.objects.filter(pk__in=[t.pk for t in tickets]).update(due_at=timezone.now() - timedelta(minutes=1))

    results, errors = race(lambda i: len(services.sweep_sla()), 4)

    assert errors == []
    assert sum(results) == 12
    assert SlaBreach.objects.count() == 12
    assert set(Ticket.objects.values_list("tier", flat=True)) == {2}
    assert TicketEvent.objects.filter(kind="escalate").count() == 12


def test_parallel_chat_intake_never_exceeds_capacity():
    requires_postgres()
    agents = []
    for _ in range(2):
        agent = UserFactory(role=roles.AGENT)
        make_agent_profile(agent, capacity=2)
        WorkSession.objects.create(agent=agent, started_at=timezone.now() - timedelta(hours=1))
        agents.append(agent)
    orders = [OrderFactory() for _ in range(8)]

    _, errors = race(lambda i: open_ticket(buyer=orders[i].buyer, order=orders[i], channel="chat"), 8)

    assert errors == []
    loads = [Ticket.objects.filter(assignee=a, status="assigned").count() for a in agents]
    assert loads == [2, 2]
    assert Ticket.objects.filter(status="open", assignee__isnull=True).count() == 4


def test_two_merges_in_opposite_directions_one_wins_without_deadlock(buyer, order, agent, other_agent):
    """Issue #13 item 2: both merges lock the two tickets in id order, so the
    second waits for the first and then finds one side merged (409)."""
    requires_postgres()
    from core.errors import DomainError

    a = open_ticket(buyer=buyer, order=order, body="第一次")
    b = open_ticket(buyer=buyer, order=order, body="第二次")
    pairs = [(a.pk, b.pk), (b.pk, a.pk)] * 3
    agents = [agent, other_agent]

    results, errors = race(
        lambda i: services.merge_tickets(actor=agents[i % 2], ticket_id=pairs[i][0],
                                         into_ticket_id=pairs[i][1]).pk, len(pairs)
    )

    assert len(results) == 1, errors
    assert len(errors) == len(pairs) - 1
    assert all(isinstance(e, DomainError) and e.status == 409 for e in errors), errors
    loser = Ticket.objects.get(pk=results[0])
    winner = Ticket.objects.get(pk=loser.merged_into_id)
    assert loser.status == "merged" and winner.status == "open" and winner.merged_into_id is None
    assert list(Message.objects.filter(ticket=winner).order_by("seq").values_list("seq", flat=True)) == list(
        range(1, winner.last_seq + 1))
    assert TicketEvent.objects.filter(kind="merge").count() == 1
    assert TicketEvent.objects.filter(kind="merged_in").count() == 1
