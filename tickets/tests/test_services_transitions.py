"""The ticket state machine through ``transition_ticket``: every transition
allowed and refused, by state, role and condition."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tickets import services
from tickets.errors import (
    AssigneeInvalid,
    IllegalTransition,
    PermissionDenied,
    TicketNotFound,
    TransitionForbidden,
    TransitionRefused,
    UnknownTransition,
)
from tickets.models import Ticket, TicketEvent
from tickets.tests.factories import open_ticket, ticket_in_state

STATES = ["open", "assigned", "waiting_merchant", "waiting_buyer", "resolved", "closed"]
NAMES = ["assign", "reassign", "release", "wait_merchant", "wait_buyer", "resume", "escalate", "resolve", "close", "reopen"]

# (state, transition) → state after, when a supervisor runs it
ALLOWED = {
    ("open", "assign"): "assigned",
    ("open", "escalate"): "open",
    ("assigned", "reassign"): "assigned",
    ("assigned", "release"): "open",
    ("assigned", "wait_merchant"): "waiting_merchant",
    ("assigned", "wait_buyer"): "waiting_buyer",
    ("assigned", "escalate"): "assigned",
    ("assigned", "resolve"): "resolved",
    ("waiting_merchant", "reassign"): "waiting_merchant",
    ("waiting_merchant", "resume"): "assigned",
    ("waiting_merchant", "escalate"): "waiting_merchant",
    ("waiting_merchant", "resolve"): "resolved",
    ("waiting_buyer", "reassign"): "waiting_buyer",
    ("waiting_buyer", "resume"): "assigned",
    ("waiting_buyer", "escalate"): "waiting_buyer",
    ("waiting_buyer", "resolve"): "resolved",
    ("resolved", "close"): "closed",
    ("resolved", "reopen"): "assigned",
}


@pytest.mark.django_db
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", NAMES)
def test_every_transition_from_every_state(state, name, buyer, order, agent, other_agent, supervisor):
    # given a ticket driven to ``state`` by an agent
    ticket = ticket_in_state(state, buyer=buyer, agent=agent, order=order)
    events_before = TicketEvent.objects.filter(ticket=ticket).count()
    kwargs = {"assignee_id": other_agent.pk} if name in ("assign", "reassign") else {}

    if (state, name) in ALLOWED:
        # when the supervisor runs it, then it lands in the expected state and is recorded
        result = services.transition_ticket(actor=supervisor, ticket_id=ticket.pk, name=name, **kwargs)
        result.refresh_from_db()
        assert result.status == ALLOWED[(state, name)]
        event = TicketEvent.objects.filter(ticket=ticket).latest("id")
        assert event.kind == name
        assert event.actor_id == supervisor.pk
        assert event.data["from"] == state
        assert event.data["to"] == result.status
    else:
        # when it is not allowed from this state, then 409 and nothing changes
        with pytest.raises(IllegalTransition) as refused:
            services.transition_ticket(actor=supervisor, ticket_id=ticket.pk, name=name, **kwargs)
        assert refused.value.status == 409
        assert refused.value.code == "illegal_transition"
        ticket.refresh_from_db()
        assert ticket.status == state
        assert TicketEvent.objects.filter(ticket=ticket).count() == events_before


@pytest.mark.django_db
def test_unknown_and_system_transitions_are_404(buyer, order, supervisor):
    ticket = open_ticket(buyer=buyer, order=order)
    for name in ("fly", "route", "save", "__init__"):
        with pytest.raises(UnknownTransition) as refused:
            services.transition_ticket(actor=supervisor, ticket_id=ticket.pk, name=name)
        assert refused.value.status == 404


@pytest.mark.django_db
def test_agent_takes_open_ticket_for_themself(buyer, order, agent):
    ticket = open_ticket(buyer=buyer, order=order)
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.assignee_id) == ("assigned", agent.pk)


@pytest.mark.django_db
def test_second_taker_gets_409(buyer, order, agent, other_agent):
    ticket = open_ticket(buyer=buyer, order=order)
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    with pytest.raises(IllegalTransition):
        services.transition_ticket(actor=other_agent, ticket_id=ticket.pk, name="assign")
    ticket.refresh_from_db()
    assert ticket.assignee_id == agent.pk


@pytest.mark.django_db
def test_agent_cannot_assign_someone_else(buyer, order, agent, other_agent):
    ticket = open_ticket(buyer=buyer, order=order)
    with pytest.raises(PermissionDenied):
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign", assignee_id=other_agent.pk)
    ticket.refresh_from_db()
    assert ticket.status == "open"


@pytest.mark.django_db
def test_assignee_must_be_an_agent(buyer, other_buyer, order, supervisor):
    ticket = open_ticket(buyer=buyer, order=order)
    with pytest.raises(AssigneeInvalid):
        services.transition_ticket(actor=supervisor, ticket_id=ticket.pk, name="assign", assignee_id=other_buyer.pk)
    with pytest.raises(AssigneeInvalid):
        services.transition_ticket(actor=supervisor, ticket_id=ticket.pk, name="assign", assignee_id=999999)


@pytest.mark.django_db
def test_only_holder_or_supervisor_works_an_assigned_ticket(buyer, order, agent, other_agent, supervisor):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    for name in ("resolve", "wait_buyer", "wait_merchant", "release"):
        with pytest.raises(TransitionForbidden) as refused:
            services.transition_ticket(actor=other_agent, ticket_id=ticket.pk, name=name)
        assert refused.value.status == 403
    with pytest.raises(TransitionForbidden):
        services.transition_ticket(actor=other_agent, ticket_id=ticket.pk, name="escalate")
    with pytest.raises(PermissionDenied):
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="reassign", assignee_id=other_agent.pk)
    services.transition_ticket(actor=supervisor, ticket_id=ticket.pk, name="resolve")
    ticket.refresh_from_db()
    assert ticket.status == "resolved"


@pytest.mark.django_db
def test_buyer_cannot_run_staff_transitions(buyer, order, agent):
    ticket = open_ticket(buyer=buyer, order=order)
    with pytest.raises(TransitionForbidden):
        services.transition_ticket(actor=buyer, ticket_id=ticket.pk, name="assign")
    with pytest.raises(TransitionForbidden):
        services.transition_ticket(actor=buyer, ticket_id=ticket.pk, name="escalate")
    resolved = ticket_in_state("resolved", buyer=buyer, agent=agent, order=order)
    with pytest.raises(TransitionForbidden):
        services.transition_ticket(actor=buyer, ticket_id=resolved.pk, name="close")


@pytest.mark.django_db
def test_other_buyer_and_other_merchant_see_404(buyer, other_buyer, order, agent, other_merchant_user):
    ticket = ticket_in_state("resolved", buyer=buyer, agent=agent, order=order)
    with pytest.raises(TicketNotFound):
        services.transition_ticket(actor=other_buyer, ticket_id=ticket.pk, name="reopen")
    with pytest.raises(TicketNotFound):
        services.transition_ticket(actor=other_merchant_user, ticket_id=ticket.pk, name="reopen")


@pytest.mark.django_db
def test_merchant_cannot_resolve_its_ticket(buyer, order, agent, merchant_user):
    ticket = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    assert ticket.party == "both"  # waiting on the merchant brings it in
    with pytest.raises(TransitionForbidden):
        services.transition_ticket(actor=merchant_user, ticket_id=ticket.pk, name="resolve")


@pytest.mark.django_db
def test_buyer_reopens_within_window_back_to_the_agent(buyer, order, agent):
    ticket = ticket_in_state("resolved", buyer=buyer, agent=agent, order=order)
    services.transition_ticket(actor=buyer, ticket_id=ticket.pk, name="reopen", note="还是没收到")
    ticket.refresh_from_db()
    assert ticket.status == "assigned"
    assert ticket.assignee_id == agent.pk
    assert ticket.resolved_at is None
    assert ticket.due_at > timezone.now() + timedelta(minutes=29)
    assert TicketEvent.objects.filter(ticket=ticket, kind="reopen", data__note="还是没收到").exists()


@pytest.mark.django_db
def test_reopen_after_window_is_refused(buyer, order, agent, settings):
    ticket = ticket_in_state("resolved", buyer=buyer, agent=agent, order=order)
    Ticket.objects.filter(pk=ticket.pk).update(resolved_at=timezone.now() - settings.REOPEN_WINDOW - timedelta(minutes=1))
    with pytest.raises(TransitionRefused) as refused:
        services.transition_ticket(actor=buyer, ticket_id=ticket.pk, name="reopen")
    assert refused.value.status == 422
    assert refused.value.extra["reason"] == "reopen_window_passed"
    ticket.refresh_from_db()
    assert ticket.status == "resolved"


@pytest.mark.django_db
def test_wait_merchant_needs_a_merchant(buyer, agent):
    ticket = open_ticket(buyer=buyer, category="coupon_failure")
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    with pytest.raises(TransitionRefused) as refused:
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="wait_merchant")
    assert refused.value.extra["reason"] == "no_merchant"


@pytest.mark.django_db
def test_escalate_raises_tier_until_the_top(buyer, order, agent):
    ticket = open_ticket(buyer=buyer, order=order)
    assert ticket.tier == 1
    for expected in (2, 3, 4):
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="escalate")
        ticket.refresh_from_db()
        assert ticket.tier == expected
    with pytest.raises(TransitionRefused) as refused:
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="escalate")
    assert refused.value.extra["reason"] == "already_top_tier"
    assert list(TicketEvent.objects.filter(ticket=ticket, kind="escalate").values_list("data__tier_to", flat=True)) == [2, 3, 4]


@pytest.mark.django_db
def test_transition_publishes_after_commit(buyer, order, agent, django_capture_on_commit_callbacks):
    ticket = open_ticket(buyer=buyer, order=order)
    with django_capture_on_commit_callbacks() as callbacks:
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    # nothing was sent inside the transaction; the publish waits for commit
    assert len(callbacks) >= 1


@pytest.mark.django_db
def test_available_transitions_follow_role(buyer, order, agent, other_agent, supervisor):
    from tickets.selectors import available_transitions

    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    assert set(available_transitions(ticket=ticket, user=agent)) == {
        "release", "wait_merchant", "wait_buyer", "escalate", "resolve"}
    assert available_transitions(ticket=ticket, user=other_agent) == []
    assert "reassign" in available_transitions(ticket=ticket, user=supervisor)
    assert available_transitions(ticket=ticket, user=buyer) == []
