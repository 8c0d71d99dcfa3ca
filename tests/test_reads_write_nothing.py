"""A GET writes nothing (issue #15 item 4): every page and API a role reads,
on a fresh database (no policy row, no agent profile yet, tickets unread),
runs no INSERT, UPDATE or DELETE. What used to: the console's ticket page
marked the conversation read, the policy (its API, its page, the remedy
panel, the incident page, a bulk remedy's preview) created its row, and
/api/v1/agents/me/ created the agent's profile."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compensation import services as compensation_services
from compensation.models import Policy
from compensation.tests.factories import new_key, remedy_ticket
from incidents import services as incident_services
from tickets.models import AgentProfile, ReadMark
from tickets.tests.factories import ticket_in_state

WRITES = ("INSERT", "UPDATE", "DELETE")


def _writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().split(" ", 1)[0].upper() in WRITES]


def _gets_that_write(client, user, urls: list[str]) -> dict[str, list[str]]:
    client.force_login(user)
    found = {}
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        if writes := _writes(queries):
            found[url] = writes
    return found


@pytest.mark.django_db
def test_the_pages_and_apis_each_role_reads_write_nothing(client, supervisor, agent, buyer, merchant, merchant_user,
                                                          order):
    # given: a chat with unread messages, an incident with a bulk remedy waiting, and no policy row yet
    chat = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order, channel="chat")
    incident = incident_services.open_incident(actor=supervisor, title="浙江丢件潮", grade="2", region="浙江")
    incident_services.link_tickets(actor=supervisor, incident_id=incident.pk, ticket_ids=[chat.pk])
    job = incident_services.create_bulk_job(actor=supervisor, kind="remedy", incident_id=incident.pk,
                                            params={"remedy": "coupon", "reason": "丢件"}, idempotency_key=new_key())
    assert not Policy.objects.exists() and not AgentProfile.objects.filter(user=supervisor).exists()
    t, m = chat.pk, merchant.pk

    # when / then
    assert _gets_that_write(client, supervisor, [
        "/console/", "/console/chats/tabs/", f"/console/tickets/{t}/", f"/console/tickets/{t}/state/",
        f"/console/tickets/{t}/messages/?after_seq=0", f"/console/remedies/panel/{t}/", "/console/remedies/approvals/",
        "/console/remedies/policy/", "/console/risk/", f"/console/risk/accounts/{buyer.pk}/", "/console/incidents/",
        f"/console/incidents/{incident.pk}/", f"/console/jobs/{job.pk}/", "/console/dashboard/",
        "/console/dashboard/figures/", "/console/reports/?group_by=agent", "/api/v1/reports/summary/?group_by=queue",
        "/api/v1/reports/carriers/",
        "/api/v1/tickets/", f"/api/v1/tickets/{t}/", f"/api/v1/tickets/{t}/events/", f"/api/v1/tickets/{t}/messages/",
        f"/api/v1/tickets/{t}/quick-replies/", "/api/v1/playbooks/", "/api/v1/queues/", "/api/v1/agents/me/",
        "/api/v1/overtime/", "/api/v1/orders/", f"/api/v1/orders/{order.pk}/", f"/api/v1/merchants/{m}/balance/",
        f"/api/v1/merchants/{m}/holds/", f"/api/v1/merchants/{m}/payouts/", f"/api/v1/merchants/{m}/tasks/",
        f"/api/v1/merchants/{m}/credit/", "/api/v1/remedies/", "/api/v1/agents/me/quota/",
        "/api/v1/compensation/budget/", "/api/v1/compensation/policy/", "/api/v1/compensation/blacklist/",
        "/api/v1/risk/hits/", "/api/v1/incidents/", f"/api/v1/incidents/{incident.pk}/",
        f"/api/v1/bulk-jobs/{job.pk}/", f"/api/v1/bulk-jobs/{job.pk}/preview/",
    ]) == {}
    assert _gets_that_write(client, agent, [
        "/console/", f"/console/tickets/{t}/", f"/console/remedies/panel/{t}/", "/api/v1/agents/me/",
        "/api/v1/agents/me/quota/", "/api/v1/compensation/policy/",
    ]) == {}
    assert _gets_that_write(client, merchant_user, [
        "/merchant/", "/merchant/tasks/", "/merchant/payouts/", "/merchant/credit/", "/merchant/tickets/",
        "/merchant/tickets/summary/", f"/api/v1/merchants/{m}/balance/",
    ]) == {}
    assert _gets_that_write(client, buyer, [
        "/chat/", f"/chat/{t}/", "/api/v1/tickets/", f"/api/v1/tickets/{t}/messages/", "/api/v1/orders/",
    ]) == {}
    assert not Policy.objects.exists() and not AgentProfile.objects.filter(user=supervisor).exists()
    assert not ReadMark.objects.filter(ticket=chat).exclude(user=buyer).exists()


@pytest.mark.django_db
def test_the_policy_reads_as_its_defaults_until_a_supervisor_changes_it(api, supervisor, agent, buyer, merchant):
    # read: the defaults, no row
    read = api(agent).get("/api/v1/compensation/policy/").json()
    assert read["coupon_fen"] == Policy().coupon_fen and read["value_cap_fen"] == Policy().value_cap_fen
    assert read["updated_at"]  # never null: the defaults are in force as of now
    assert not Policy.objects.exists()
    # a remedy reads the caps from the defaults too, and writes no policy row either
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=2_990)
    caps = compensation_services.policy_caps(actor=agent, ticket=ticket)
    assert (caps.value_cap_fen, caps.quota_used, caps.spent_fen) == (Policy().value_cap_fen, 0, 0)
    result = compensation_services.apply_remedy(actor=agent, ticket_id=ticket.pk, kind="coupon", reason="丢件",
                                                idempotency_key=new_key())
    assert result.status_code == 201
    assert compensation_services.policy_caps(actor=agent, ticket=ticket).quota_used == 1
    assert not Policy.objects.exists()
    # write: the first change makes the row
    changed = api(supervisor).patch("/api/v1/compensation/policy/", {"coupon_fen": 800, "reason": "活动"}, format="json")
    assert changed.status_code == 200 and changed.json()["coupon_fen"] == 800
    assert Policy.objects.get().coupon_fen == 800
    assert compensation_services.get_policy().coupon_fen == 800
