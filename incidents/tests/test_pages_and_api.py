"""Incident pages, the dashboard and the API: supervisors only (merchants,
buyers and agents refused), the carrier-events endpoint for the feed's token,
bulk jobs previewed then run, dashboard figures equal to what the database says."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from compensation.models import BudgetDay
from incidents import services
from incidents.models import BulkJob, Incident, LogisticsEvent
from incidents.tests.factories import event, integration_user, shipment_in
from tickets.models import AgentProfile, Message, SlaBreach, Ticket
from tickets.tests.factories import open_ticket

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def boss(client, supervisor):
    client.force_login(supervisor)
    return client


# --- access -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/console/incidents/", "/console/dashboard/", "/console/dashboard/figures/"])
def test_pages_are_for_supervisors(client, path, agent, buyer, merchant_user):
    assert client.get(path).status_code == 302
    for who in (agent, buyer, merchant_user):
        client.force_login(who)
        assert client.get(path).status_code == 403


@pytest.mark.django_db
def test_api_scoping(api, supervisor, agent, buyer, merchant_user):
    incident = services.open_incident(actor=supervisor, title="x", grade="2")
    for who in (agent, buyer, merchant_user):
        assert api(who).get("/api/v1/incidents/").status_code == 403
        assert api(who).get(f"/api/v1/incidents/{incident.pk}/").status_code == 403
        assert api(who).post("/api/v1/incidents/", {"title": "y", "grade": "2"}, format="json").status_code == 403
    assert api(supervisor).get("/api/v1/incidents/").json()["results"][0]["id"] == incident.pk
    assert api(supervisor).get("/api/v1/incidents/999999/").status_code == 404


@pytest.mark.django_db
def test_carrier_events_endpoint(api, buyer, merchant_user):
    feed = integration_user()
    shipment = shipment_in("浙江")
    payload = event(shipment, "lost", event_id="EP-1")
    first = api(feed).post("/api/v1/logistics/events/", payload, format="json")
    assert first.status_code == 201 and first.json()["created"] is True and first.json()["ticket_id"]
    again = api(feed).post("/api/v1/logistics/events/", payload, format="json")
    assert again.status_code == 200 and again.json()["ticket_id"] == first.json()["ticket_id"]
    assert api(feed).post("/api/v1/logistics/events/", {**payload, "event_id": "EP-2", "tracking_no": "X"},
                          format="json").json()["code"] == "unknown_shipment"
    bad = api(feed).post("/api/v1/logistics/events/", {"event_id": "EP-3"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    for outsider in (buyer, merchant_user):
        assert api(outsider).post("/api/v1/logistics/events/", {**payload, "event_id": "EP-4"},
                                  format="json").status_code == 403
    assert LogisticsEvent.objects.count() == 1 and Ticket.objects.count() == 1


@pytest.mark.django_db
def test_incident_api_open_link_close(api, supervisor, buyer, order):
    opened = api(supervisor).post("/api/v1/incidents/", {"title": "华东积压", "grade": "1", "region": "浙江"}, format="json")
    assert opened.status_code == 201 and opened.json()["owner_tier"] == 3
    incident_id = opened.json()["id"]
    tickets = [open_ticket(buyer=buyer, order=order) for _ in range(2)]
    linked = api(supervisor).post(f"/api/v1/incidents/{incident_id}/tickets/", {"ticket_ids": [t.pk for t in tickets]},
                                  format="json")
    assert linked.json() == {"linked": 2, "ticket_count": 2}
    by_query = api(supervisor).post(f"/api/v1/incidents/{incident_id}/tickets/", {"category": "logistics_delay"},
                                    format="json")
    assert by_query.json()["linked"] == 0  # already linked
    assert api(supervisor).post(f"/api/v1/incidents/{incident_id}/tickets/", {"since": "nope"},
                                format="json").status_code == 400
    half = api(supervisor).post(f"/api/v1/incidents/{incident_id}/close/",
                                {"cause": "暴雨", "actions_taken": "", "prevention": "备用仓"}, format="json")
    assert half.status_code == 400 and half.json()["code"] == "review_incomplete"
    closed = api(supervisor).post(f"/api/v1/incidents/{incident_id}/close/",
                                  {"cause": "暴雨", "actions_taken": "补发", "prevention": "备用仓"}, format="json")
    assert closed.json()["status"] == "closed"
    assert api(supervisor).post(f"/api/v1/incidents/{incident_id}/close/",
                                {"cause": "a", "actions_taken": "b", "prevention": "c"}, format="json").status_code == 409


@pytest.mark.django_db
def test_bulk_job_api_preview_changes_nothing_then_runs(api, supervisor, buyer, order, django_capture_on_commit_callbacks):
    incident = services.open_incident(actor=supervisor, title="x", grade="2")
    tickets = [open_ticket(buyer=buyer, order=order) for _ in range(2)]
    services.link_tickets(actor=supervisor, incident_id=incident.pk, ticket_ids=[t.pk for t in tickets])
    created = api(supervisor).post("/api/v1/bulk-jobs/", {"kind": "macro_reply", "incident_id": incident.pk,
                                                          "params": {"body": "统一说明"}}, format="json")
    assert created.status_code == 201
    job_id = created.json()["id"]
    messages = Message.objects.count()
    preview = api(supervisor).get(f"/api/v1/bulk-jobs/{job_id}/preview/").json()
    assert preview["counts"] == {"ok": 2, "refused": 0} and Message.objects.count() == messages
    with django_capture_on_commit_callbacks(execute=True):
        run = api(supervisor).post(f"/api/v1/bulk-jobs/{job_id}/run/")
    assert run.status_code == 202
    assert api(supervisor).get(f"/api/v1/bulk-jobs/{job_id}/").json()["status"] == "done"
    assert Message.objects.filter(body="统一说明").count() == 2
    assert api(supervisor).post(f"/api/v1/bulk-jobs/{job_id}/undo/").json()["code"] == "job_state"


# --- pages --------------------------------------------------------------------------


@pytest.mark.django_db
def test_incident_page_previews_and_runs_a_macro(boss, supervisor, buyer, order, django_capture_on_commit_callbacks):
    response = boss.post("/console/incidents/", {"title": "浙江丢件潮", "grade": "2", "region": "浙江"})
    incident = Incident.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/console/incidents/{incident.pk}/"
    tickets = [open_ticket(buyer=buyer, order=order) for _ in range(3)]
    linked = boss.post(f"/console/incidents/{incident.pk}/link/", {"category": "logistics_delay"}, **HTMX)
    assert "3" in linked.content.decode()
    preview = boss.post(f"/console/incidents/{incident.pk}/jobs/", {"kind": "macro_reply", "body": "{buyer_name}您好"},
                        **HTMX).content.decode()
    assert f"{buyer.name}您好" in preview and "data-run-job" in preview
    job = BulkJob.objects.get()
    assert not Message.objects.filter(body=f"{buyer.name}您好").exists()
    with django_capture_on_commit_callbacks(execute=True):
        progress = boss.post(f"/console/jobs/{job.pk}/run/", **HTMX)
    assert progress.status_code == 200
    html = boss.get(f"/console/jobs/{job.pk}/", **HTMX).content.decode()
    assert 'data-status="done"' in html and 'aria-valuenow="100"' in html
    assert Message.objects.filter(body=f"{buyer.name}您好").count() == len(tickets)
    page = boss.get(f"/console/incidents/{incident.pk}/").content.decode()
    assert "job_done" in page and "浙江丢件潮" in page


@pytest.mark.django_db
def test_incident_page_refusals_are_inline(boss, supervisor):
    incident = services.open_incident(actor=supervisor, title="x", grade="2")
    bad = boss.post(f"/console/incidents/{incident.pk}/jobs/", {"kind": "macro_reply", "body": "hi"}, **HTMX)
    assert bad.status_code == 400 and bad["HX-Retarget"] == "#job-slot"  # no tickets linked
    close = boss.post(f"/console/incidents/{incident.pk}/close/", {"cause": "x"}, **HTMX)
    assert close.status_code == 400 and 'data-code="review_incomplete"' in close.content.decode()
    assert boss.post("/console/incidents/", {"title": "", "grade": "9"}).status_code == 400


@pytest.mark.django_db
def test_dashboard_figures_equal_the_database(boss, supervisor, agent, buyer, order, django_assert_max_num_queries):
    for _ in range(3):
        open_ticket(buyer=buyer, order=order, channel="chat")  # nobody online: they wait
    open_ticket(buyer=buyer, order=order)
    ticket = Ticket.objects.first()
    SlaBreach.objects.create(ticket=ticket, grade="3", due_at=timezone.now(),
                             tier_before=1, tier_after=2)
    BudgetDay.objects.update_or_create(date=timezone.localdate(), defaults={"budget_fen": 1_000_000, "spent_fen": 12_300,
                                                                             "breaker_open": True})
    AgentProfile.objects.update_or_create(user=agent, defaults={"presence": "online", "capacity": 5})
    services.open_incident(actor=supervisor, title="华东积压", grade="2")
    html = boss.get("/console/dashboard/").content.decode()
    figure = lambda name: re.search(rf'data-figure="{name}">([^<]*)<', html).group(1).strip()  # noqa: E731
    assert figure("inflow-total") == str(Ticket.objects.count())
    assert figure("waiting-chats") == str(Ticket.objects.filter(channel="chat", status="open").count()) == "3"
    assert figure("budget-spent") == "¥123.00"
    assert 'class="breaker is-open"' in html
    assert [int(x) for x in re.findall(r'data-figure="breaches">(\d+)<', html)] == [1, 0, 0, 0]
    assert agent.name in html and "华东积压" in html
    with django_assert_max_num_queries(14) as few:
        boss.get("/console/dashboard/figures/", **HTMX)
    for _ in range(20):
        open_ticket(buyer=buyer, order=order, channel="chat")
    with django_assert_max_num_queries(14) as many:
        boss.get("/console/dashboard/figures/", **HTMX)
    assert len(few.captured_queries) == len(many.captured_queries)


@pytest.mark.django_db
def test_spend_trend_adds_up_to_what_remedies_cost_today(agent, buyer, other_buyer, merchant):
    from compensation import services as compensation
    from compensation.models import Remedy
    from compensation.tests.factories import new_key, remedy_ticket
    from incidents import selectors

    for who, kind in ((buyer, "refund"), (other_buyer, "coupon")):
        ticket = remedy_ticket(buyer=who, agent=agent, merchant=merchant)
        outcome = compensation.apply_remedy(actor=agent, ticket_id=ticket.pk, kind=kind, reason="丢件赔付", idempotency_key=new_key())
        assert outcome.status_code == 201, outcome.body
    spent = sum(r.cost_fen for r in Remedy.objects.filter(status="executed"))
    assert spent > 0
    board = selectors.dashboard()
    assert board.spend[-1][1] == spent == BudgetDay.objects.get(date=timezone.localdate()).spent_fen
    assert [v for _, v in board.spend] == sorted(v for _, v in board.spend)  # cumulative
