"""tickets/rules.py: who may see a ticket, as a predicate and as a filter,
gives the same answers for every role and every kind of ticket (and so does
the chat socket's scope check, which reads the row and applies the predicate)."""

import itertools

import pytest

from accounts import roles
from accounts.tests.factories import UserFactory
from merchants.tests.factories import MerchantFactory, make_merchant_staff
from tickets.consumers import _seen
from tickets.errors import TicketNotFound
from tickets.models import Party, Ticket
from tickets.rules import can_view, can_view_ticket, viewer_of, visibility_filter
from tickets.selectors import get_ticket_for, tickets_visible_to
from tickets.tests.factories import open_ticket


@pytest.mark.django_db
def test_the_predicate_and_the_filter_agree(buyer, other_buyer, agent, supervisor, merchant, merchant_user,
                                            other_merchant_user, order, other_order):
    integration = UserFactory(role=roles.INTEGRATION)
    nobody = UserFactory()
    staff_without_merchant = make_merchant_staff(MerchantFactory(), username="m_unlinked")
    tickets = [open_ticket(buyer=buyer, order=order), open_ticket(buyer=other_buyer, order=other_order),
               open_ticket(buyer=buyer, order=order, category="refund_request")]
    Ticket.objects.filter(pk=tickets[0].pk).update(party=Party.MERCHANT)
    people = [buyer, other_buyer, agent, supervisor, merchant_user, other_merchant_user, integration, nobody,
              staff_without_merchant]
    checked = 0
    for person, ticket in itertools.product(people, Ticket.objects.all()):
        viewer = viewer_of(person)
        by_rule = can_view(viewer, buyer_id=ticket.buyer_id, merchant_id=ticket.merchant_id, party=ticket.party)
        condition = visibility_filter(viewer)
        by_query = (Ticket.objects.filter(pk=ticket.pk) if condition is None
                    else Ticket.objects.filter(condition, pk=ticket.pk)).exists()
        by_socket = _seen(viewer, ticket.pk) is not None
        try:  # a ticket's pages and answer: read by its key, then judged (``selectors._visible``)
            by_read = get_ticket_for(user=person, ticket_id=ticket.pk).pk == ticket.pk
        except TicketNotFound:
            by_read = False
        assert by_rule == can_view_ticket(viewer, ticket) == by_query == by_socket == by_read == (
            tickets_visible_to(user=person).filter(pk=ticket.pk).exists()), (person, ticket)
        checked += 1
    assert checked == len(people) * 3
    # and the answers themselves
    assert set(tickets_visible_to(user=agent)) == set(Ticket.objects.all())
    assert set(tickets_visible_to(user=other_buyer)) == {tickets[1]}
    assert list(tickets_visible_to(user=nobody)) == []
