"""Queues by rule; chats to the least-loaded online agent with the skill,
room and shift time left; oldest waiting chat first."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import roles
from accounts.tests.factories import UserFactory
from tickets import services
from tickets.models import Queue, RoutingRule, Ticket, TicketEvent, WorkSession
from tickets.tests.factories import make_agent_profile, open_ticket


@pytest.fixture
def queues(db):
    general = Queue.objects.create(code="general", name="综合")
    logistics = Queue.objects.create(code="logistics", name="物流")
    english = Queue.objects.create(code="english", name="English")
    escalations = Queue.objects.create(code="escalations", name="重大")
    merchant = Queue.objects.create(code="merchant", name="商家")
    RoutingRule.objects.create(priority=5, language="en", queue=english)
    RoutingRule.objects.create(priority=10, grade="1", queue=escalations)
    RoutingRule.objects.create(priority=20, party="merchant", queue=merchant)
    RoutingRule.objects.create(priority=40, category="logistics_delay", queue=logistics)
    RoutingRule.objects.create(priority=1, category="logistics_delay", queue=general, active=False)
    return {q.code: q for q in Queue.objects.all()}


@pytest.mark.django_db
def test_rules_pick_queue_by_category_language_grade_party(queues, buyer, order, agent, merchant_user):
    assert open_ticket(buyer=buyer, order=order, category="logistics_delay").queue.code == "logistics"
    assert open_ticket(buyer=buyer, order=order, category="coupon_failure").queue.code == "general"
    buyer.language = "en"
    buyer.save()
    assert open_ticket(buyer=buyer, order=order, category="logistics_delay").queue.code == "english"
    buyer.language = "zh-hans"
    buyer.save()
    assert open_ticket(buyer=buyer, order=order, actor=agent, grade="1").queue.code == "escalations"
    merchant_ticket = services.open_ticket(actor=merchant_user, category="merchant_payout", subject="提现未到账", body="昨天申请的提现还没到")
    merchant_ticket.refresh_from_db()
    assert (merchant_ticket.queue.code, merchant_ticket.party, merchant_ticket.merchant_id) == (
        "merchant", "merchant", merchant_user.merchant_staff.merchant_id)
    route_event = TicketEvent.objects.filter(ticket=merchant_ticket, kind="route").get()
    assert route_event.data["queue"] == "merchant"


@pytest.mark.django_db
def test_no_rule_falls_back_to_general_queue(buyer, order):
    assert not Queue.objects.exists()
    ticket = open_ticket(buyer=buyer, order=order)
    assert ticket.queue.code == "general"


@pytest.mark.django_db
def test_routing_is_read_from_the_cache_and_a_queue_saved_empties_it(queues, buyer, order):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    open_ticket(buyer=buyer, order=order, category="coupon_failure")  # fills the cache
    with CaptureQueriesContext(connection) as captured:
        ticket = services.open_ticket(actor=buyer, category="coupon_failure", subject="券", body="券用不了",
                                      order_id=order.pk)
    assert ticket.queue_id == queues["general"].pk
    assert not [q for q in captured.captured_queries if "tickets_queue" in q["sql"] or "routingrule" in q["sql"]]
    renamed = Queue.objects.create(code="general-2", name="综合二")
    RoutingRule.objects.create(priority=30, category="coupon_failure", queue=renamed)
    assert open_ticket(buyer=buyer, order=order, category="coupon_failure").queue.code == "general-2"


@pytest.mark.django_db(transaction=True)
def test_a_general_queue_made_by_a_rolled_back_intake_is_not_cached(buyer, order):
    from django.core.cache import cache
    from django.db import transaction

    from tickets.services.routing import RULES_CACHE_KEY

    class Undo(Exception):
        pass

    from tickets.services.tickets import open_ticket_in

    with pytest.raises(Undo), transaction.atomic():
        open_ticket_in(actor=buyer, category="logistics_delay", subject="物流", body="没动", order_id=order.pk)
        assert Queue.objects.filter(code="general").exists()
        raise Undo
    assert not Queue.objects.exists() and cache.get(RULES_CACHE_KEY) is None
    ticket = open_ticket(buyer=buyer, order=order)
    assert ticket.queue.code == "general" and Queue.objects.filter(pk=ticket.queue_id).exists()
    rules, general = cache.get(RULES_CACHE_KEY)
    assert general.pk == ticket.queue_id


def _agent(name, **profile):
    user = UserFactory(role=roles.AGENT, username=name)
    make_agent_profile(user, **profile)
    WorkSession.objects.create(agent=user, started_at=timezone.now() - timedelta(hours=1))
    return user


@pytest.mark.django_db
def test_chat_goes_to_least_loaded_online_agent_with_skill(buyer, order):
    busy = _agent("busy")
    idle = _agent("idle")
    _agent("away", presence="away")
    _agent("unskilled", skills=["refund_request"])
    first = open_ticket(buyer=buyer, order=order, channel="chat")
    assert first.status == "assigned"
    second = open_ticket(buyer=buyer, order=order, channel="chat")
    # each now has one; the third goes to whoever was assigned longest ago
    third = open_ticket(buyer=buyer, order=order, channel="chat")
    assert {first.assignee_id, second.assignee_id} == {busy.pk, idle.pk}
    assert third.assignee_id == first.assignee_id
    event = TicketEvent.objects.get(ticket=first, kind="assign")
    assert event.data["auto"] is True and event.actor_id is None


@pytest.mark.django_db
def test_web_tickets_are_not_auto_assigned(buyer, order):
    _agent("idle")
    ticket = open_ticket(buyer=buyer, order=order, channel="web")
    assert ticket.status == "open" and ticket.assignee_id is None


@pytest.mark.django_db
def test_full_agent_and_language_mismatch_get_nothing(buyer, order):
    _agent("full", capacity=1)
    open_ticket(buyer=buyer, order=order, channel="chat")
    waiting = open_ticket(buyer=buyer, order=order, channel="chat")
    assert waiting.status == "open"
    buyer.language = "en"
    buyer.save()
    english = open_ticket(buyer=buyer, order=order, channel="chat")
    assert english.status == "open"


@pytest.mark.django_db
def test_agent_at_shift_limit_gets_no_new_chats_until_overtime(buyer, order, supervisor, daytime, django_capture_on_commit_callbacks):
    tired = _agent("tired")
    WorkSession.objects.filter(agent=tired).update(started_at=timezone.now() - timedelta(hours=7, minutes=1))
    ticket = open_ticket(buyer=buyer, order=order, channel="chat")
    assert ticket.status == "open"

    overtime = services.request_overtime(agent=tired, minutes=60, reason="大促加班")
    with django_capture_on_commit_callbacks(execute=True):
        services.decide_overtime(supervisor=supervisor, request_id=overtime.pk, grant=True)
    ticket.refresh_from_db()
    # granting overtime offers the waiting chat at once
    assert (ticket.status, ticket.assignee_id) == ("assigned", tired.pk)


@pytest.mark.django_db
def test_oldest_waiting_chat_is_served_first_when_an_agent_comes_online(buyer, order, django_capture_on_commit_callbacks):
    late = _agent("late", presence="offline", capacity=1)
    WorkSession.objects.filter(agent=late).delete()
    older = open_ticket(buyer=buyer, order=order, channel="chat")
    newer = open_ticket(buyer=buyer, order=order, channel="chat")
    Ticket.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        services.set_presence(agent=late, presence="online")
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.assignee_id == late.pk
    assert newer.status == "open"


@pytest.mark.django_db
def test_resolving_frees_room_for_the_next_chat(buyer, order, django_capture_on_commit_callbacks):
    solo = _agent("solo", capacity=1)
    first = open_ticket(buyer=buyer, order=order, channel="chat")
    second = open_ticket(buyer=buyer, order=order, channel="chat")
    assert second.status == "open"
    with django_capture_on_commit_callbacks(execute=True):
        services.transition_ticket(actor=solo, ticket_id=first.pk, name="resolve")
    second.refresh_from_db()
    assert second.assignee_id == solo.pk


@pytest.mark.django_db
def test_assignment_is_fair_over_many_chats(buyer, order):
    agents = [_agent(f"a{i}", capacity=10) for i in range(3)]
    for _ in range(9):
        open_ticket(buyer=buyer, order=order, channel="chat")
    loads = [Ticket.objects.filter(assignee=a).count() for a in agents]
    assert loads == [3, 3, 3]


@pytest.mark.django_db
def test_dispatch_chats_returns_pairs(buyer, order):
    ticket = open_ticket(buyer=buyer, order=order, channel="chat")
    assert ticket.status == "open"
    agent = _agent("later")
    assert services.dispatch_chats() == [(ticket.pk, agent.pk)]
    assert services.dispatch_chats() == []
