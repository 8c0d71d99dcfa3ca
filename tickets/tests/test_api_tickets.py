"""The Tickets API: the permission matrix, bad input, and bounded query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import roles
from accounts.tests.factories import UserFactory
from merchants.tests.factories import OrderFactory
from tickets import selectors, services
from tickets.models import Message, Ticket
from tickets.tests.factories import open_ticket, ticket_in_state


def _new(api, user, **data):
    payload = {"category": "logistics_delay", "subject": "快递没动", "body": "三天没更新", **data}
    return api(user).post("/api/v1/tickets/", payload, format="json")


# --- opening -------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_gets_401_everywhere(api, buyer, order):
    ticket = open_ticket(buyer=buyer, order=order)
    client = api(None)
    for method, path in [
        ("get", "/api/v1/tickets/"), ("post", "/api/v1/tickets/"), ("get", f"/api/v1/tickets/{ticket.pk}/"),
        ("post", f"/api/v1/tickets/{ticket.pk}/transitions/assign/"), ("get", f"/api/v1/tickets/{ticket.pk}/events/"),
        ("get", f"/api/v1/tickets/{ticket.pk}/messages/"), ("post", f"/api/v1/tickets/{ticket.pk}/messages/"),
        ("post", f"/api/v1/tickets/{ticket.pk}/rating/"), ("get", "/api/v1/orders/"),
        ("get", f"/api/v1/orders/{order.pk}/"), ("get", "/api/v1/playbooks/"), ("get", "/api/v1/agents/me/"),
        ("get", f"/api/v1/tickets/{ticket.pk}/quick-replies/"),
    ]:
        response = getattr(client, method)(path, {}, format="json")
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == "not_authenticated"


@pytest.mark.django_db
def test_buyer_opens_own_ticket(api, buyer, order):
    response = _new(api, buyer, order_id=order.pk)
    assert response.status_code == 201
    body = response.json()
    ticket = Ticket.objects.get(pk=body["id"])
    assert (ticket.buyer_id, ticket.merchant_id, ticket.order_id) == (buyer.pk, order.merchant_id, order.pk)
    assert body["buyer_id"] == buyer.pk and body["order_id"] == order.pk and body["merchant_id"] == order.merchant_id
    assert body["available_transitions"] == []
    assert Message.objects.get(ticket=ticket).body == "三天没更新"


@pytest.mark.django_db
def test_buyer_cannot_use_someone_elses_order_or_open_for_another(api, buyer, other_buyer, other_order):
    response = _new(api, buyer, order_id=other_order.pk)
    assert response.status_code == 400 and response.json()["code"] == "unknown_order"
    response = _new(api, buyer, buyer_id=other_buyer.pk)
    assert response.status_code == 403
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_agent_opens_on_a_buyers_behalf(api, agent, buyer, order, other_buyer):
    response = _new(api, agent, buyer_id=buyer.pk, channel="phone", grade="2")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["buyer_id"], body["channel"], body["grade"], body["tier"]) == (buyer.pk, "phone", "2", 2)
    assert _new(api, agent, order_id=order.pk).json()["buyer_id"] == buyer.pk
    mismatch = _new(api, agent, order_id=order.pk, buyer_id=other_buyer.pk)
    assert mismatch.status_code == 400
    nobody = _new(api, agent)
    assert nobody.status_code == 400 and nobody.json()["code"] == "invalid"
    not_a_buyer = _new(api, agent, buyer_id=agent.pk)
    assert not_a_buyer.status_code == 400


@pytest.mark.django_db
def test_merchant_opens_a_merchant_ticket(api, merchant_user, merchant):
    response = _new(api, merchant_user, category="merchant_payout", subject="提现", body="提现没到账")
    assert response.status_code == 201
    assert (response.json()["party"], response.json()["merchant_id"]) == ("merchant", merchant.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"category": "teleport"}, "unknown_category"),
        ({"subject": "x" * 201}, "invalid"),
        ({"body": "x" * 5001}, "invalid"),
        ({"body": "   "}, "invalid"),
        ({"order_id": 987654321}, "unknown_order"),
        ({"order_id": "abc"}, "invalid"),
        ({"order_id": 10**30}, "invalid"),
        ({"channel": "pigeon"}, "invalid"),
        ({"language": "fr"}, "invalid"),
        ({"category": "x" * 100000}, "invalid"),
    ],
)
def test_bad_ticket_input_is_a_4xx_with_a_code(api, buyer, payload, code):
    response = _new(api, buyer, **payload)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert "detail" in response.json()
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_malformed_json_and_wrong_shapes(api, buyer):
    client = api(buyer)
    response = client.post("/api/v1/tickets/", data="{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "malformed_json"
    response = client.post("/api/v1/tickets/", data="[1, 2]", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    response = client.post("/api/v1/tickets/", data="category=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"
    assert not Ticket.objects.exists()


# --- reading ---------------------------------------------------------------------


@pytest.mark.django_db
def test_list_is_scoped_to_the_viewer(api, buyer, other_buyer, order, other_order, agent, merchant_user,
                                      other_merchant_user, supervisor):
    mine = open_ticket(buyer=buyer, order=order)
    brought_in = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    theirs = open_ticket(buyer=other_buyer, order=other_order)

    def ids(user, query=""):
        response = api(user).get(f"/api/v1/tickets/{query}")
        assert response.status_code == 200
        return {row["id"] for row in response.json()["results"]}

    assert ids(buyer) == {mine.pk, brought_in.pk}
    assert ids(other_buyer) == {theirs.pk}
    assert ids(merchant_user) == {brought_in.pk}
    assert ids(other_merchant_user) == set()
    assert ids(agent) == ids(supervisor) == {mine.pk, brought_in.pk, theirs.pk}
    # a filter never widens the scope
    assert ids(other_buyer, f"?merchant={order.merchant_id}") == set()


@pytest.mark.django_db
def test_list_filters(api, buyer, order, agent, other_agent):
    open_one = open_ticket(buyer=buyer, order=order, category="coupon_failure")
    mine = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    serious = open_ticket(buyer=buyer, order=order, actor=agent, grade="2")
    Ticket.objects.filter(pk=open_one.pk).update(due_at=open_one.created_at)  # overdue

    def ids(query):
        response = api(agent).get(f"/api/v1/tickets/?{query}")
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids("status=open") == {open_one.pk, serious.pk}
    assert ids("status=open,assigned") == {open_one.pk, serious.pk, mine.pk}
    assert ids("assignee=me") == {mine.pk}
    assert ids(f"assignee={other_agent.pk}") == set()
    assert ids("assignee=none") == {open_one.pk, serious.pk}
    assert ids("grade=2") == {serious.pk}
    assert ids("overdue=true") == {open_one.pk}
    assert ids(f"merchant={order.merchant_id}") == {open_one.pk, mine.pk, serious.pk}
    assert ids(f"q={order.order_no}") == {open_one.pk, mine.pk, serious.pk}
    assert ids(f"q={mine.pk}") == {mine.pk}
    assert ids("queue=general") == {open_one.pk, mine.pk, serious.pk}
    body = api(agent).get("/api/v1/tickets/?overdue=true").json()
    assert body["count"] == 1 and body["results"][0]["overdue"] is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    ["status=flying", "grade=7", "assignee=abc", "merchant=x", "queue=nope", "page=abc", "page=0", "page_size=-1"],
)
def test_bad_filters_are_400(api, agent, query):
    response = api(agent).get(f"/api/v1/tickets/?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


@pytest.mark.django_db
def test_page_size_is_capped_and_past_the_end_is_404(api, agent, buyer, order):
    for _ in range(3):
        open_ticket(buyer=buyer, order=order)
    body = api(agent).get("/api/v1/tickets/?page_size=1000").json()
    assert body["count"] == 3 and len(body["results"]) == 3 and body["next"] is None
    page = api(agent).get("/api/v1/tickets/?page_size=2").json()
    assert len(page["results"]) == 2 and page["next"]
    assert api(agent).get("/api/v1/tickets/?page=99").status_code == 404


@pytest.mark.django_db
def test_detail_scoping_and_available_transitions(api, buyer, other_buyer, order, agent, merchant_user,
                                                  other_merchant_user, supervisor):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    path = f"/api/v1/tickets/{ticket.pk}/"
    assert api(buyer).get(path).status_code == 200
    for outsider in (other_buyer, merchant_user, other_merchant_user):
        response = api(outsider).get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert set(api(agent).get(path).json()["available_transitions"]) == {
        "release", "wait_merchant", "wait_buyer", "escalate", "resolve"}
    assert "reassign" in api(supervisor).get(path).json()["available_transitions"]
    assert api(agent).get("/api/v1/tickets/99999999/").status_code == 404


# --- transitions ---------------------------------------------------------------------


@pytest.mark.django_db
def test_transition_endpoint_codes(api, buyer, other_buyer, order, agent, other_agent):
    ticket = open_ticket(buyer=buyer, order=order)
    base = f"/api/v1/tickets/{ticket.pk}/transitions"
    assert api(buyer).post(f"{base}/assign/", {}, format="json").status_code == 403
    assert api(other_buyer).post(f"{base}/assign/", {}, format="json").status_code == 404
    unknown = api(agent).post(f"{base}/teleport/", {}, format="json")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_transition"
    taken = api(agent).post(f"{base}/assign/", format="json")
    assert taken.status_code == 200
    assert taken.json()["assignee_id"] == agent.pk and taken.json()["status"] == "assigned"
    second = api(other_agent).post(f"{base}/assign/", {}, format="json")
    assert second.status_code == 409 and second.json()["code"] == "illegal_transition"
    wrong = api(agent).post(f"{base}/reopen/", {}, format="json")
    assert wrong.status_code == 409
    bad = api(agent).post(f"{base}/resolve/", {"note": "x" * 1001}, format="json")
    assert bad.status_code == 400
    with_note = api(agent).post(f"{base}/resolve/", {"note": "已补发"}, format="json")
    assert with_note.status_code == 200 and with_note.json()["status"] == "resolved"
    events = api(agent).get(f"/api/v1/tickets/{ticket.pk}/events/").json()["results"]
    assert [e["kind"] for e in events] == ["created", "route", "assign", "resolve"]
    assert events[-1]["data"]["note"] == "已补发" and events[-1]["actor_id"] == agent.pk


@pytest.mark.django_db
def test_supervisor_assigns_to_an_agent(api, supervisor, agent, buyer, order):
    ticket = open_ticket(buyer=buyer, order=order)
    response = api(supervisor).post(
        f"/api/v1/tickets/{ticket.pk}/transitions/assign/", {"assignee_id": agent.pk}, format="json")
    assert response.status_code == 200 and response.json()["assignee_id"] == agent.pk


@pytest.mark.django_db
def test_events_are_staff_only(api, buyer, order, merchant_user, agent):
    ticket = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    assert api(buyer).get(f"/api/v1/tickets/{ticket.pk}/events/").status_code == 403
    assert api(merchant_user).get(f"/api/v1/tickets/{ticket.pk}/events/").status_code == 403
    assert api(agent).get(f"/api/v1/tickets/{ticket.pk}/events/").status_code == 200


# --- messages and rating ---------------------------------------------------------------


@pytest.mark.django_db
def test_messages_endpoint(api, buyer, other_buyer, order, agent):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    path = f"/api/v1/tickets/{ticket.pk}/messages/"
    # seq 1 is the request, 2 the "assigned" notice
    note = api(agent).post(path, {"body": "内部", "internal": True}, format="json")
    assert note.status_code == 201 and note.json()["seq"] == 3 and note.json()["internal"] is True
    reply = api(buyer).post(path, {"body": "在吗"}, format="json")
    assert reply.status_code == 201 and reply.json()["seq"] == 4 and reply.json()["author_id"] == buyer.pk
    assert api(buyer).post(path, {"body": "x", "internal": True}, format="json").status_code == 403
    assert [m["seq"] for m in api(buyer).get(path).json()["results"]] == [1, 2, 4]
    assert [m["seq"] for m in api(agent).get(path).json()["results"]] == [1, 2, 3, 4]
    assert [m["seq"] for m in api(agent).get(f"{path}?after_seq=2").json()["results"]] == [3, 4]
    assert api(agent).get(f"{path}?after_seq=x").status_code == 400
    assert api(other_buyer).get(path).status_code == 404
    assert api(other_buyer).post(path, {"body": "hi"}, format="json").status_code == 404
    assert api(buyer).post(path, {"body": ""}, format="json").status_code == 400
    assert api(buyer).post(path, {"body": "x" * 6000}, format="json").status_code == 400
    assert Message.objects.filter(ticket=ticket).count() == 4


@pytest.mark.django_db
def test_rating_endpoint(api, buyer, order, agent):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    path = f"/api/v1/tickets/{ticket.pk}/rating/"
    early = api(buyer).post(path, {"score": 9}, format="json")
    assert early.status_code == 409 and early.json()["code"] == "not_resolved"
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resolve")
    assert api(buyer).post(path, {"score": 11}, format="json").status_code == 400
    assert api(buyer).post(path, {"score": "ten"}, format="json").status_code == 400
    assert api(agent).post(path, {"score": 5}, format="json").status_code == 403
    ok = api(buyer).post(path, {"score": 10, "comment": "很快"}, format="json")
    assert ok.status_code == 201 and ok.json()["score"] == 10
    again = api(buyer).post(path, {"score": 3}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "already_rated"


# --- knowledge and agents -----------------------------------------------------------------


@pytest.mark.django_db
def test_quick_replies_playbooks_and_agent_endpoints_are_staff_only(api, buyer, merchant_user, agent, order):
    ticket = open_ticket(buyer=buyer, order=order)
    for user in (buyer, merchant_user):
        assert api(user).get(f"/api/v1/tickets/{ticket.pk}/quick-replies/").status_code in (403, 404)
        assert api(user).get("/api/v1/playbooks/").status_code == 403
        assert api(user).post("/api/v1/playbooks/", {"title": "x", "body": "y"}, format="json").status_code == 403
        assert api(user).get("/api/v1/agents/me/").status_code == 403
        assert api(user).post("/api/v1/agents/me/presence/", {"presence": "online"}, format="json").status_code == 403
        assert api(user).get("/api/v1/queues/").status_code == 403
    assert api(agent).get(f"/api/v1/tickets/{ticket.pk}/quick-replies/").status_code == 200
    created = api(agent).post("/api/v1/playbooks/", {"title": "丢件", "body": "1. 核查", "category": "not_received"}, format="json")
    assert created.status_code == 201
    assert [p["title"] for p in api(agent).get("/api/v1/playbooks/?category=not_received").json()["results"]] == ["丢件"]


@pytest.mark.django_db
def test_agent_presence_and_overtime_endpoints(api, agent, supervisor):
    online = api(agent).post("/api/v1/agents/me/presence/", {"presence": "online"}, format="json")
    assert online.status_code == 200 and online.json()["presence"] == "online"
    assert api(agent).post("/api/v1/agents/me/presence/", {"presence": "asleep"}, format="json").status_code == 400
    me = api(agent).get("/api/v1/agents/me/").json()
    assert me["shift_limit_s"] == 7 * 3600 and me["shift_reached"] is False and me["role"] == "agent"
    request = api(agent).post("/api/v1/agents/me/overtime/", {"minutes": 60, "reason": "高峰"}, format="json")
    assert request.status_code == 201
    request_id = request.json()["id"]
    assert api(agent).post(f"/api/v1/overtime/{request_id}/grant/").status_code == 403
    granted = api(supervisor).post(f"/api/v1/overtime/{request_id}/grant/")
    assert granted.status_code == 200 and granted.json()["status"] == "granted"
    assert api(supervisor).post(f"/api/v1/overtime/{request_id}/deny/").status_code == 409
    assert api(supervisor).post("/api/v1/overtime/999999/grant/").status_code == 404
    assert api(agent).get("/api/v1/agents/me/").json()["shift_limit_s"] == 8 * 3600
    assert [r["id"] for r in api(supervisor).get("/api/v1/overtime/?status=granted").json()["results"]] == [request_id]


# --- query counts -----------------------------------------------------------------------------


def _queries(client, path) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_ticket_list_query_count_does_not_grow_with_rows(api, agent, django_assert_max_num_queries):
    def make(n):
        for _ in range(n):
            order = OrderFactory()
            open_ticket(buyer=order.buyer, order=order)

    client = api(agent)
    make(10)
    at_10 = _queries(client, "/api/v1/tickets/?page_size=200")
    make(90)
    with django_assert_max_num_queries(at_10):
        response = client.get("/api/v1/tickets/?page_size=200")
    assert response.json()["count"] == 100


@pytest.mark.django_db
def test_messages_and_events_query_count_does_not_grow(api, agent, buyer, order, django_assert_max_num_queries):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    client = api(agent)
    for i in range(9):
        services.post_message(actor=agent, ticket_id=ticket.pk, body=f"m{i}")
    at_10 = _queries(client, f"/api/v1/tickets/{ticket.pk}/messages/?page_size=200")
    events_small = _queries(client, f"/api/v1/tickets/{ticket.pk}/events/?page_size=200")
    other = UserFactory(role=roles.AGENT)
    for i in range(90):
        services.post_message(actor=other if i % 2 else agent, ticket_id=ticket.pk, body=f"n{i}")
        if i in (10, 20, 30):
            services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="escalate")
    with django_assert_max_num_queries(at_10):
        client.get(f"/api/v1/tickets/{ticket.pk}/messages/?page_size=200")
    with django_assert_max_num_queries(events_small):
        client.get(f"/api/v1/tickets/{ticket.pk}/events/?page_size=200")


@pytest.mark.django_db
def test_the_fast_ticket_body_equals_the_serializers(buyer, agent, supervisor, order):
    """ticket_body skips DRF's per-instance field building; the serializers
    stay for the schema, and what clients get must not drift from them."""
    from django.utils import timezone

    from tickets.api import TicketDetailOutput, TicketOutput, ticket_body
    from tickets.tests.factories import ticket_in_state

    tickets = [ticket_in_state(state, buyer=buyer, agent=agent, order=order)
               for state in ("open", "assigned", "waiting_buyer", "resolved", "closed")]
    tickets.append(ticket_in_state("open", buyer=buyer, agent=agent))  # no order
    Ticket.objects.filter(pk=tickets[1].pk).update(breached_at=timezone.now(), due_at=timezone.now())
    now = timezone.now()
    for ticket in Ticket.objects.filter(pk__in=[t.pk for t in tickets]).select_related("queue", "order"):
        assert ticket_body(ticket, now=now) == TicketOutput(ticket, context={"now": now}).data
        for user in (buyer, agent, supervisor):
            assert ticket_body(ticket, user=user, detail=True) == TicketDetailOutput(ticket, context={"user": user}).data


@pytest.mark.django_db
def test_a_ticket_s_answer_joins_its_queue_and_order_instead_of_asking_twice_more(api, agent, buyer, order):
    ticket = open_ticket(buyer=buyer, order=order)
    client = api(agent)
    client.get(f"/api/v1/tickets/{ticket.pk}/")  # the role cache warm, as any later request finds it
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/api/v1/tickets/{ticket.pk}/")
    body = response.json()
    assert response.status_code == 200
    assert (body["queue"], body["order_no"], body["order_id"]) == (ticket.queue.code, order.order_no, order.pk)
    tables = [q["sql"].split(" FROM ")[1].split()[0].strip('"') for q in ctx.captured_queries
              if q["sql"].lstrip().upper().startswith("SELECT")]
    # the token and its user, the ticket with its queue and order, its tags
    assert len(ctx.captured_queries) == 3 and "tickets_queue" not in tables and "merchants_order" not in tables
    with pytest.raises(ValueError):
        selectors.get_ticket_for(user=agent, ticket_id=ticket.pk, lock=True, related=("order",))
