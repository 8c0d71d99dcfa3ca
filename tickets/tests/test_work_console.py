"""Overtime and playbooks in the console (issue #13 item 7): an agent asks for
overtime from the shift bar and a team lead decides it on the dashboard; an
agent past the shift who takes a ticket by hand is warned and must confirm;
agents add and edit playbooks from the console."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from accounts import roles
from accounts.tests.factories import UserFactory
from tickets import services
from tickets.errors import OvertimePending, PermissionDenied, ShiftLimitReached
from tickets.models import OvertimeRequest, Playbook, Ticket, TicketEvent, WorkSession
from tickets.tests.factories import open_ticket

HTMX = {"HTTP_HX_REQUEST": "true"}


def _worked_a_full_shift(agent) -> None:
    WorkSession.objects.create(agent=agent, started_at=timezone.now() - timedelta(hours=7, minutes=10))


# --- taking a ticket by hand past the shift ----------------------------------------


@pytest.mark.django_db
def test_taking_a_ticket_past_the_shift_needs_a_confirmation(agent, buyer, daytime):
    _worked_a_full_shift(agent)
    ticket = open_ticket(buyer=buyer)

    with pytest.raises(ShiftLimitReached) as refused:
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    assert refused.value.extra["worked_s"] >= 7 * 3600 + 600 and refused.value.extra["limit_s"] == 7 * 3600
    ticket.refresh_from_db()
    assert ticket.assignee_id is None and not TicketEvent.objects.filter(ticket=ticket, kind="assign").exists()

    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign", confirm_past_shift=True)
    ticket.refresh_from_db()
    assert ticket.assignee_id == agent.pk and ticket.status == Ticket.Status.ASSIGNED
    event = TicketEvent.objects.get(ticket=ticket, kind="assign")
    assert event.data["past_shift"] is True and event.data["worked_s"] >= 7 * 3600


@pytest.mark.django_db
def test_within_the_shift_or_its_granted_overtime_no_confirmation_is_asked(agent, other_agent, supervisor, buyer,
                                                                            daytime):
    WorkSession.objects.create(agent=agent, started_at=timezone.now() - timedelta(hours=6))
    first = open_ticket(buyer=buyer)
    services.transition_ticket(actor=agent, ticket_id=first.pk, name="assign")
    assert "past_shift" not in TicketEvent.objects.get(ticket=first, kind="assign").data

    _worked_a_full_shift(other_agent)
    overtime = services.request_overtime(agent=other_agent, minutes=60, reason="高峰")
    services.decide_overtime(supervisor=supervisor, request_id=overtime.pk, grant=True)
    second = open_ticket(buyer=buyer, subject="另一单")
    services.transition_ticket(actor=other_agent, ticket_id=second.pk, name="assign")
    assert Ticket.objects.get(pk=second.pk).assignee_id == other_agent.pk


@pytest.mark.django_db
def test_a_lead_assigning_someone_past_the_shift_is_not_asked(agent, supervisor, buyer, daytime):
    _worked_a_full_shift(agent)
    ticket = open_ticket(buyer=buyer)
    services.transition_ticket(actor=supervisor, ticket_id=ticket.pk, name="assign", assignee_id=agent.pk)
    assert Ticket.objects.get(pk=ticket.pk).assignee_id == agent.pk


@pytest.mark.django_db
def test_the_api_answers_409_and_takes_it_with_confirm_past_shift(api, agent, buyer, daytime):
    _worked_a_full_shift(agent)
    ticket = open_ticket(buyer=buyer)
    client = api(agent)

    refused = client.post(f"/api/v1/tickets/{ticket.pk}/transitions/assign/", {}, format="json")
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "shift_limit_reached" and body["limit_s"] == 7 * 3600 and body["worked_s"] >= 7 * 3600
    assert Ticket.objects.get(pk=ticket.pk).assignee_id is None

    bad = client.post(f"/api/v1/tickets/{ticket.pk}/transitions/assign/", {"confirm_past_shift": "maybe"}, format="json")
    assert bad.status_code == 400

    taken = client.post(f"/api/v1/tickets/{ticket.pk}/transitions/assign/", {"confirm_past_shift": True}, format="json")
    assert taken.status_code == 200 and taken.json()["assignee_id"] == agent.pk


@pytest.mark.django_db
def test_the_console_warns_offers_take_anyway_and_records_it(client, agent, buyer, daytime):
    _worked_a_full_shift(agent)
    ticket = open_ticket(buyer=buyer)
    client.force_login(agent)

    refused = client.post(f"/console/tickets/{ticket.pk}/transitions/assign/", {"note": ""}, **HTMX)
    assert refused.status_code == 409
    html = refused.content.decode()
    assert 'data-code="shift_limit_reached"' in html and "data-confirm-past-shift" in html
    assert "data-open-overtime" in html and "7:10" in html
    assert Ticket.objects.get(pk=ticket.pk).assignee_id is None

    taken = client.post(f"/console/tickets/{ticket.pk}/transitions/assign/", {"confirm_past_shift": "1"}, **HTMX)
    assert taken.status_code == 200
    assert Ticket.objects.get(pk=ticket.pk).assignee_id == agent.pk
    page = client.get(f"/console/tickets/{ticket.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "taken past the shift (7:10 h worked)" in page


# --- overtime: asked from the shift bar, decided on the dashboard ----------------------


@pytest.mark.django_db
def test_one_overtime_request_waits_at_a_time(agent, supervisor):
    first = services.request_overtime(agent=agent, minutes=60, reason="排队的会话还很多")
    with pytest.raises(OvertimePending):
        services.request_overtime(agent=agent, minutes=30, reason="再加一点")
    assert OvertimeRequest.objects.filter(agent=agent).count() == 1

    services.decide_overtime(supervisor=supervisor, request_id=first.pk, grant=False)
    again = services.request_overtime(agent=agent, minutes=30, reason="还是很忙")
    assert again.status == OvertimeRequest.Status.REQUESTED
    status = services.shift_status(agent=agent)
    assert status.latest_overtime == again and status.overtime_granted_s == 0


@pytest.mark.django_db
def test_overtime_events_reach_the_leads_and_the_agent(agent, supervisor, monkeypatch,
                                                       django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("tickets.events.publish_on_commit", lambda groups, payload: sent.append((groups, payload)))
    request = services.request_overtime(agent=agent, minutes=45, reason="高峰")
    services.decide_overtime(supervisor=supervisor, request_id=request.pk, grant=True)

    assert sent[0] == (["tier.2"], {"type": "overtime.requested", "request_id": request.pk,
                                    "agent": {"id": agent.pk, "name": agent.name}, "minutes": 45, "reason": "高峰"})
    groups, decided = sent[1]
    assert groups == [f"agent.{agent.pk}", "tier.2"]
    assert decided["type"] == "overtime.decided" and decided["status"] == "granted"
    assert decided["agent_id"] == agent.pk and decided["by"] == {"id": supervisor.pk, "name": supervisor.name}


@pytest.mark.django_db(transaction=True)
async def test_the_console_sockets_hear_the_request_and_the_decision(agent, other_agent, supervisor):
    """The team lead's console hears the request; the agent's hears the
    decision; another agent's hears neither."""
    from tickets.tests.test_consumers import _communicator

    sockets = [await database_sync_to_async(_communicator)(user) for user in (agent, supervisor, other_agent)]
    mine, lead, bystander = sockets
    for socket in sockets:
        assert (await socket.connect(timeout=10))[0]

    request = await database_sync_to_async(services.request_overtime)(agent=agent, minutes=30, reason="还有排队")
    asked = await lead.receive_json_from(timeout=5)
    assert asked["type"] == "overtime.requested" and asked["request_id"] == request.pk and asked["minutes"] == 30

    await database_sync_to_async(services.decide_overtime)(supervisor=supervisor, request_id=request.pk, grant=True)
    decided = await mine.receive_json_from(timeout=5)
    assert decided["type"] == "overtime.decided" and decided["status"] == "granted" and decided["agent_id"] == agent.pk
    assert (await lead.receive_json_from(timeout=5))["type"] == "overtime.decided"
    assert await bystander.receive_nothing(timeout=0.5)
    for socket in sockets:
        await socket.disconnect()


@pytest.mark.django_db
def test_the_shift_bar_asks_and_shows_the_request(client, agent, supervisor):
    client.force_login(agent)
    bar = client.get("/console/").content.decode()
    assert "id=\"overtime-ask\"" in bar

    asked = client.post("/console/overtime/", {"minutes": "90", "reason": "双十一排队长"}, **HTMX)
    assert asked.status_code == 200
    assert 'data-overtime-status="requested"' in asked.content.decode()
    request = OvertimeRequest.objects.get(agent=agent)
    assert (request.minutes, request.reason, request.status) == (90, "双十一排队长", "requested")

    again = client.post("/console/overtime/", {"minutes": "30", "reason": "再来"}, **HTMX)
    assert again.status_code == 409 and again["HX-Retarget"] == "#agent-bar-error"
    for bad in ({"minutes": "0", "reason": "x"}, {"minutes": "abc", "reason": "x"}, {"minutes": "999", "reason": "x"}):
        OvertimeRequest.objects.all().delete()
        response = client.post("/console/overtime/", bad, **HTMX)
        assert response.status_code == 400 and not OvertimeRequest.objects.exists()
    assert client.post("/console/overtime/", {"minutes": "30", "reason": "  "}, **HTMX).status_code == 400
    assert client.get("/console/overtime/").status_code == 405

    services.request_overtime(agent=agent, minutes=60, reason="高峰")
    services.decide_overtime(supervisor=supervisor, request_id=OvertimeRequest.objects.get(agent=agent).pk, grant=True)
    refreshed = client.get("/console/agent-bar/", **HTMX).content.decode()
    assert 'data-overtime-status="granted"' in refreshed and "8:00" in refreshed


@pytest.mark.django_db
def test_the_dashboard_lists_requests_and_the_lead_decides(client, agent, other_agent, supervisor):
    waiting = services.request_overtime(agent=agent, minutes=60, reason="会话排队")
    services.request_overtime(agent=other_agent, minutes=30, reason="收尾")
    client.force_login(supervisor)

    board = client.get("/console/dashboard/").content.decode()
    assert 'id="overtime-requests"' in board and "会话排队" in board and "收尾" in board
    assert board.count("data-overtime-grant") == 2

    granted = client.post(f"/console/overtime/{waiting.pk}/grant/", **HTMX)
    assert granted.status_code == 200
    waiting.refresh_from_db()
    assert waiting.status == "granted" and waiting.decided_by == supervisor
    assert services.shift_status(agent=agent).limit_s == 8 * 3600
    assert granted.content.decode().count("data-overtime-grant") == 1

    twice = client.post(f"/console/overtime/{waiting.pk}/deny/", **HTMX)
    assert twice.status_code == 409 and 'data-code="already_decided"' in twice.content.decode()
    assert OvertimeRequest.objects.get(pk=waiting.pk).status == "granted"
    assert client.post(f"/console/overtime/{waiting.pk}/maybe/", **HTMX).status_code == 404
    assert client.post("/console/overtime/999999/grant/", **HTMX).status_code == 404


@pytest.mark.django_db
def test_agents_cannot_see_or_decide_requests_and_a_lead_not_their_own(client, agent, other_agent, supervisor):
    request = services.request_overtime(agent=other_agent, minutes=60, reason="高峰")
    client.force_login(agent)
    assert client.get("/console/overtime/requests/", **HTMX).status_code == 403
    assert client.post(f"/console/overtime/{request.pk}/grant/", **HTMX).status_code == 403
    assert OvertimeRequest.objects.get(pk=request.pk).status == "requested"

    own = services.request_overtime(agent=supervisor, minutes=30, reason="我也加班")
    client.force_login(supervisor)
    listed = client.get("/console/overtime/requests/", **HTMX).content.decode()
    assert re.search(rf'data-overtime-request="{own.pk}"[\s\S]*?data-own-request', listed)
    refused = client.post(f"/console/overtime/{own.pk}/grant/", **HTMX)
    assert refused.status_code == 403 and OvertimeRequest.objects.get(pk=own.pk).status == "requested"


@pytest.mark.django_db
def test_the_request_list_costs_the_same_for_3_and_30_requests(client, supervisor, django_assert_max_num_queries):
    def make(n):
        OvertimeRequest.objects.all().delete()
        for i in range(n):
            services.request_overtime(agent=UserFactory(role=roles.AGENT), minutes=30, reason=f"原因{i}")

    client.force_login(supervisor)
    counts = []
    for n in (3, 30):
        make(n)
        client.get("/console/overtime/requests/", **HTMX)
        with django_assert_max_num_queries(12) as captured:
            assert client.get("/console/overtime/requests/", **HTMX).status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


# --- playbooks ---------------------------------------------------------------------


@pytest.mark.django_db
def test_only_the_author_or_a_lead_edits_a_playbook(agent, other_agent, supervisor):
    playbook = services.add_playbook(actor=agent, title="破损件处理", body="1. 请买家拍照", category="parcel_damaged")
    services.edit_playbook(actor=agent, playbook_id=playbook.pk, title="破损件处理（新）", body="1. 拍照\n2. 补发",
                           category="parcel_damaged")
    with pytest.raises(PermissionDenied):
        services.edit_playbook(actor=other_agent, playbook_id=playbook.pk, title="改掉", body="x")
    services.edit_playbook(actor=supervisor, playbook_id=playbook.pk, title="破损件处理（主管审）", body="1. 拍照",
                           category="")
    playbook.refresh_from_db()
    assert (playbook.title, playbook.body, playbook.category) == ("破损件处理（主管审）", "1. 拍照", "")
    assert playbook.created_by == agent


@pytest.mark.django_db
def test_playbook_api_edit_and_its_refusals(api, agent, other_agent, buyer):
    playbook = services.add_playbook(actor=agent, title="退款流程", body="核对订单", category="")
    mine = api(agent)

    changed = mine.patch(f"/api/v1/playbooks/{playbook.pk}/", {"body": "核对订单\n发起退款"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["body"] == "核对订单\n发起退款" and changed.json()["title"] == "退款流程"
    assert mine.get(f"/api/v1/playbooks/{playbook.pk}/").json()["body"] == "核对订单\n发起退款"

    assert mine.patch(f"/api/v1/playbooks/{playbook.pk}/", {"title": ""}, format="json").status_code == 400
    wrong = mine.patch(f"/api/v1/playbooks/{playbook.pk}/", {"category": "nonsense"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid"
    assert mine.patch("/api/v1/playbooks/999999/", {"title": "x"}, format="json").status_code == 404
    other = api(other_agent).patch(f"/api/v1/playbooks/{playbook.pk}/", {"title": "x"}, format="json")
    assert other.status_code == 403 and other.json()["code"] == "permission_denied"
    assert api(buyer).get(f"/api/v1/playbooks/{playbook.pk}/").status_code == 403
    assert api(buyer).patch(f"/api/v1/playbooks/{playbook.pk}/", {"title": "x"}, format="json").status_code == 403
    assert Playbook.objects.get(pk=playbook.pk).title == "退款流程"


@pytest.mark.django_db
def test_the_playbooks_page_searches_adds_and_edits(client, agent, other_agent, buyer):
    services.add_playbook(actor=other_agent, title="物流停滞", body="联系快递", category="logistics_delay")
    client.force_login(agent)
    ticket = open_ticket(buyer=buyer)

    ticket_page = client.get(f"/console/tickets/{ticket.pk}/").content.decode()
    assert "data-add-playbook" in ticket_page and f"ticket={ticket.pk}" in ticket_page

    page = client.get(f"/console/playbooks/?category=logistics_delay&ticket={ticket.pk}").content.decode()
    assert "物流停滞" in page and f'href="/console/tickets/{ticket.pk}/"' in page
    assert "/console/playbooks/" in page and 'class="btn btn-small" href="/console/playbooks/' not in page
    assert "物流停滞" not in client.get("/console/playbooks/?q=退款").content.decode()

    added = client.post("/console/playbooks/", {"title": "拒收退款", "body": "1. 确认拒收\n2. 退款", "category": ""})
    assert added.status_code == 200 and "data-created" in added.content.decode()
    mine = Playbook.objects.get(title="拒收退款")
    assert mine.created_by == agent and mine.body == "1. 确认拒收\n2. 退款"
    bad = client.post("/console/playbooks/", {"title": "", "body": "x"})
    assert bad.status_code == 400 and Playbook.objects.count() == 2

    edit = client.get(f"/console/playbooks/{mine.pk}/").content.decode()
    assert "data-playbook-form" in edit
    saved = client.post(f"/console/playbooks/{mine.pk}/", {"title": "拒收退款", "body": "1. 确认拒收\n2. 退款\n3. 安抚",
                                                          "category": "refund_request"})
    assert saved.status_code == 200 and "data-saved" in saved.content.decode()
    assert Playbook.objects.get(pk=mine.pk).category == "refund_request"

    theirs = Playbook.objects.get(title="物流停滞")
    read_only = client.get(f"/console/playbooks/{theirs.pk}/").content.decode()
    assert "data-playbook-form" not in read_only and "联系快递" in read_only
    refused = client.post(f"/console/playbooks/{theirs.pk}/", {"title": "改", "body": "改"})
    assert refused.status_code == 403 and Playbook.objects.get(pk=theirs.pk).title == "物流停滞"
    assert client.get("/console/playbooks/999999/").status_code == 404
    assert client.get("/console/playbooks/?ticket=99999999999999999999999").status_code == 200

    client.force_login(buyer)
    assert client.get("/console/playbooks/").status_code == 403


@pytest.mark.django_db
def test_the_playbooks_page_costs_the_same_for_10_and_100(client, agent, other_agent,
                                                           django_assert_max_num_queries):
    client.force_login(agent)
    counts = []
    for n in (10, 100):
        Playbook.objects.all().delete()
        Playbook.objects.bulk_create([
            Playbook(title=f"手册{i}", body="步骤", created_by=(agent if i % 2 else other_agent)) for i in range(n)
        ])
        client.get("/console/playbooks/")
        with django_assert_max_num_queries(20) as captured:
            assert client.get("/console/playbooks/").status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]
