"""Tiers are roles: agent (1) → team lead (2) → head (3) → all levels (4).
Only someone at or above a ticket's tier resolves or closes it; "report up"
(上报) escalates one tier with a note and tells the next tier."""

from __future__ import annotations

import pytest

from accounts import roles
from accounts.tests.factories import UserFactory
from tickets import rules, selectors, services, sla
from tickets.errors import BelowTicketTier, IllegalTransition, NoteRequired, TransitionRefused
from tickets.models import Ticket, TicketEvent
from tickets.tests.factories import open_ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def head(db):
    return UserFactory(role=roles.HEAD, username="head_a", display_name="孙立")


def _at_tier(tier: int, *, buyer, holder) -> Ticket:
    """An assigned ticket raised to ``tier`` through the real escalation."""
    ticket = open_ticket(buyer=buyer)
    services.transition_ticket(actor=holder, ticket_id=ticket.pk, name="assign")
    for _ in range(tier - 1):
        services.report_up(actor=holder, ticket_id=ticket.pk, note="需要上级处理")
    ticket = Ticket.objects.get(pk=ticket.pk)
    assert ticket.tier == tier
    return ticket


@pytest.mark.parametrize(("rank", "tier", "allowed"), [
    (roles.RANK_AGENT, 1, True), (roles.RANK_AGENT, 2, False), (roles.RANK_AGENT, 3, False),
    (roles.RANK_AGENT, 4, False), (roles.RANK_TEAM_LEAD, 1, True), (roles.RANK_TEAM_LEAD, 2, True),
    (roles.RANK_TEAM_LEAD, 3, False), (roles.RANK_TEAM_LEAD, 4, False), (roles.RANK_HEAD, 3, True),
    (roles.RANK_HEAD, 4, True), (0, 1, False),
])
def test_may_settle_is_at_or_above_the_tier(rank, tier, allowed):
    assert rules.may_settle(rank=rank, tier=tier) is allowed


def test_the_ladder_maps_tiers_to_roles(agent, supervisor, head, buyer):
    assert [roles.staff_rank(u) for u in (agent, supervisor, head, buyer)] == [1, 2, 3, 0]
    assert roles.role_of(head) == roles.HEAD and roles.is_supervisor(head) and roles.is_agent(head)
    assert rules.TIER_OWNER_ROLES == {1: roles.AGENT, 2: roles.SUPERVISOR, 3: roles.HEAD, 4: roles.HEAD}
    assert rules.tiers_heard_by(roles.RANK_HEAD) == [3, 4] and rules.tiers_heard_by(roles.RANK_TEAM_LEAD) == [2]
    assert set(roles.ensure_role_groups()) >= {roles.AGENT, roles.SUPERVISOR, roles.HEAD}


def test_an_agent_cannot_resolve_a_ticket_above_their_tier(agent, buyer):
    ticket = _at_tier(2, buyer=buyer, holder=agent)

    assert "resolve" not in selectors.available_transitions(ticket=ticket, user=agent)
    with pytest.raises(BelowTicketTier) as refused:
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resolve")

    assert refused.value.status == 403 and refused.value.extra["owner_role"] == roles.SUPERVISOR
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.ASSIGNED and ticket.resolved_at is None


def test_a_team_lead_resolves_tier_two_but_not_the_heads_tier(agent, supervisor, head, buyer):
    tier2 = _at_tier(2, buyer=buyer, holder=agent)
    services.transition_ticket(actor=supervisor, ticket_id=tier2.pk, name="resolve")
    assert Ticket.objects.get(pk=tier2.pk).status == Ticket.Status.RESOLVED

    tier3 = _at_tier(3, buyer=buyer, holder=agent)
    with pytest.raises(BelowTicketTier):
        services.transition_ticket(actor=supervisor, ticket_id=tier3.pk, name="resolve")
    assert Ticket.objects.get(pk=tier3.pk).status == Ticket.Status.ASSIGNED

    services.transition_ticket(actor=head, ticket_id=tier3.pk, name="resolve")
    assert Ticket.objects.get(pk=tier3.pk).status == Ticket.Status.RESOLVED


def test_the_head_resolves_and_closes_at_all_levels(agent, head, buyer):
    ticket = _at_tier(4, buyer=buyer, holder=agent)
    assert {"resolve"} <= set(selectors.available_transitions(ticket=ticket, user=head))

    services.transition_ticket(actor=head, ticket_id=ticket.pk, name="resolve")
    services.transition_ticket(actor=head, ticket_id=ticket.pk, name="close")

    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.CLOSED


def test_closing_needs_the_tier_too(agent, supervisor, buyer):
    ticket = _at_tier(2, buyer=buyer, holder=agent)
    services.transition_ticket(actor=supervisor, ticket_id=ticket.pk, name="resolve")

    assert "close" not in selectors.available_transitions(ticket=Ticket.objects.get(pk=ticket.pk), user=agent)
    with pytest.raises(BelowTicketTier):
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="close")
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.RESOLVED


def test_a_grade_one_ticket_is_the_heads_from_the_start(agent, supervisor, head, buyer):
    ticket = open_ticket(buyer=buyer, actor=agent, grade=sla.GRADE_SEVERE)
    assert ticket.tier == sla.TIER_HEAD
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")

    for user in (agent, supervisor):
        with pytest.raises(BelowTicketTier):
            services.transition_ticket(actor=user, ticket_id=ticket.pk, name="resolve")
    services.transition_ticket(actor=head, ticket_id=ticket.pk, name="resolve")
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.RESOLVED


def test_report_up_escalates_with_the_note_and_tells_the_next_tier(agent, buyer, monkeypatch,
                                                                   django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("tickets.events.publish_on_commit", lambda groups, payload: sent.append((groups, payload)))
    ticket = open_ticket(buyer=buyer)
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    due_before = Ticket.objects.get(pk=ticket.pk).due_at

    services.report_up(actor=agent, ticket_id=ticket.pk, note="买家投诉升级，需主管处理")

    ticket = Ticket.objects.get(pk=ticket.pk)
    assert ticket.tier == sla.TIER_TEAM_LEAD and ticket.due_at >= due_before
    event = TicketEvent.objects.filter(ticket=ticket, kind="escalate").get()
    assert event.actor == agent
    assert event.data["reason"] == "reported_up" and event.data["note"] == "买家投诉升级，需主管处理"
    assert event.data["tier_from"] == 1 and event.data["tier_to"] == 2
    told = [payload for groups, payload in sent if payload["type"] == "ticket.reported_up"]
    assert told == [{"type": "ticket.reported_up", "ticket_id": ticket.pk, "tier": 2, "subject": ticket.subject,
                     "note": "买家投诉升级，需主管处理", "by": {"id": agent.pk, "name": agent.name}}]
    assert [groups for groups, payload in sent if payload["type"] == "ticket.reported_up"] == [["tier.2"]]


def test_report_up_refusals_change_nothing(agent, other_agent, head, buyer):
    ticket = open_ticket(buyer=buyer)
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")

    with pytest.raises(NoteRequired):
        services.report_up(actor=agent, ticket_id=ticket.pk, note="  ")
    from tickets.errors import TransitionForbidden

    with pytest.raises(TransitionForbidden):  # another agent's ticket
        services.report_up(actor=other_agent, ticket_id=ticket.pk, note="我来上报")
    assert Ticket.objects.get(pk=ticket.pk).tier == 1

    top = _at_tier(4, buyer=buyer, holder=agent)
    with pytest.raises(TransitionRefused):
        services.report_up(actor=head, ticket_id=top.pk, note="已经最高")
    services.transition_ticket(actor=head, ticket_id=top.pk, name="resolve")
    with pytest.raises(IllegalTransition):
        services.report_up(actor=head, ticket_id=top.pk, note="已解决")
    assert TicketEvent.objects.filter(ticket=top, kind="escalate").count() == 3


def test_report_up_api_and_the_tier_owner_field(api, agent, buyer):
    ticket = open_ticket(buyer=buyer)
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    client = api(agent)

    missing = client.post(f"/api/v1/tickets/{ticket.pk}/report-up/", {}, format="json")
    assert missing.status_code == 400 and missing.json()["code"] == "note_required"

    response = client.post(f"/api/v1/tickets/{ticket.pk}/report-up/", {"note": "超出权限"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["tier"] == 2 and body["tier_owner_role"] == roles.SUPERVISOR
    assert "resolve" not in body["available_transitions"]

    refused = client.post(f"/api/v1/tickets/{ticket.pk}/transitions/resolve/", {}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "below_ticket_tier"
    assert api(buyer).post(f"/api/v1/tickets/{ticket.pk}/report-up/", {"note": "x"}, format="json").status_code == 403


def test_console_shows_the_ladder_and_reports_up(client, agent, supervisor, buyer):
    ticket = open_ticket(buyer=buyer)
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    client.force_login(agent)

    page = client.get(f"/console/tickets/{ticket.pk}/").content.decode()
    assert 'class="tier-ladder"' in page and "data-report-up" in page and supervisor.name in page

    refused = client.post(f"/console/tickets/{ticket.pk}/report-up/", {"note": ""})
    assert refused.status_code == 400 and Ticket.objects.get(pk=ticket.pk).tier == 1

    response = client.post(f"/console/tickets/{ticket.pk}/report-up/", {"note": "请主管处理"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "data-below-tier" in html and 'data-transition="resolve"' not in html
    assert Ticket.objects.get(pk=ticket.pk).tier == 2
