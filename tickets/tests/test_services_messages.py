"""Messages (gap-free seq, internal notes, idempotent send), CSAT, quick replies, playbooks."""

import pytest

from tickets import services
from tickets.errors import (
    AlreadyRated,
    Conflict,
    InvalidInput,
    NotResolved,
    PermissionDenied,
    TicketClosed,
    TicketNotFound,
)
from tickets.models import Message, Playbook, QuickReply, Rating, ReadMark, TicketEvent
from tickets.selectors import messages_visible_to
from tickets.tests.factories import open_ticket, ticket_in_state


@pytest.mark.django_db
def test_seq_increases_by_one_per_ticket(buyer, order, agent):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    other = open_ticket(buyer=buyer, order=order)
    services.post_message(actor=agent, ticket_id=ticket.pk, body="您好")
    services.post_message(actor=buyer, ticket_id=ticket.pk, body="在吗")
    services.post_message(actor=buyer, ticket_id=other.pk, body="另一个")
    services.post_message(actor=agent, ticket_id=ticket.pk, body="备注", internal=True)
    # 1 the request, 2 the "assigned" notice, then the three posted here
    assert list(Message.objects.filter(ticket=ticket).values_list("seq", flat=True)) == [1, 2, 3, 4, 5]
    assert list(Message.objects.filter(ticket=other).values_list("seq", flat=True)) == [1, 2]
    ticket.refresh_from_db()
    assert ticket.last_seq == 5


@pytest.mark.django_db
def test_refused_message_leaves_no_number_behind(buyer, order, agent):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    with pytest.raises(PermissionDenied):
        services.post_message(actor=buyer, ticket_id=ticket.pk, body="x", internal=True)
    message = services.post_message(actor=buyer, ticket_id=ticket.pk, body="ok")
    assert message.seq == ticket.last_seq + 1


@pytest.mark.django_db
def test_internal_notes_are_hidden_from_buyer_and_merchant(buyer, order, agent, merchant_user):
    ticket = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    services.post_message(actor=agent, ticket_id=ticket.pk, body="买家情绪激动", internal=True)
    services.post_message(actor=agent, ticket_id=ticket.pk, body="已联系商家")
    people = [m.body for m in messages_visible_to(user=buyer, ticket=ticket) if m.author_id]
    assert people == ["请帮我查一下物流", "已联系商家"]
    assert "买家情绪激动" not in [m.body for m in messages_visible_to(user=merchant_user, ticket=ticket)]
    assert "买家情绪激动" in [m.body for m in messages_visible_to(user=agent, ticket=ticket)]
    with pytest.raises(PermissionDenied):
        services.post_message(actor=merchant_user, ticket_id=ticket.pk, body="x", internal=True)


@pytest.mark.django_db
def test_merchant_reply_resumes_waiting_on_merchant(buyer, order, agent, merchant_user):
    ticket = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    message = services.post_message(actor=merchant_user, ticket_id=ticket.pk, body="已补发")
    assert message.author_role == "merchant"
    ticket.refresh_from_db()
    assert ticket.status == "assigned"


@pytest.mark.django_db
def test_scoping_of_messages(buyer, other_buyer, order, agent, other_merchant_user, merchant_user):
    ticket = open_ticket(buyer=buyer, order=order)
    with pytest.raises(TicketNotFound):
        services.post_message(actor=other_buyer, ticket_id=ticket.pk, body="hi")
    with pytest.raises(TicketNotFound):
        services.post_message(actor=other_merchant_user, ticket_id=ticket.pk, body="hi")
    # a buyer-only ticket is not the merchant's until it is brought in
    with pytest.raises(TicketNotFound):
        services.post_message(actor=merchant_user, ticket_id=ticket.pk, body="hi")
    assert Message.objects.filter(ticket=ticket).count() == 1


@pytest.mark.django_db
def test_bad_bodies_are_refused(buyer, order):
    ticket = open_ticket(buyer=buyer, order=order)
    for body in ("", "   ", "x" * 5001):
        with pytest.raises(InvalidInput):
            services.post_message(actor=buyer, ticket_id=ticket.pk, body=body)
    assert Message.objects.filter(ticket=ticket).count() == 1


@pytest.mark.django_db
def test_closed_ticket_takes_no_messages(buyer, order, agent):
    ticket = ticket_in_state("closed", buyer=buyer, agent=agent, order=order)
    with pytest.raises(TicketClosed) as refused:
        services.post_message(actor=buyer, ticket_id=ticket.pk, body="还在吗")
    assert refused.value.status == 422


@pytest.mark.django_db
def test_same_client_message_id_is_sent_once(buyer, order, agent):
    ticket = open_ticket(buyer=buyer, order=order)
    first = services.post_message(actor=buyer, ticket_id=ticket.pk, body="hello", client_msg_id="c-1")
    again = services.post_message(actor=buyer, ticket_id=ticket.pk, body="hello", client_msg_id="c-1")
    assert first.pk == again.pk
    assert Message.objects.filter(ticket=ticket).count() == 2
    with pytest.raises(Conflict):
        services.post_message(actor=agent, ticket_id=ticket.pk, body="hello", client_msg_id="c-1")


@pytest.mark.django_db
def test_first_response_is_the_first_public_agent_reply(buyer, order, agent):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    services.post_message(actor=agent, ticket_id=ticket.pk, body="note", internal=True)
    ticket.refresh_from_db()
    assert ticket.first_response_at is None
    reply = services.post_message(actor=agent, ticket_id=ticket.pk, body="您好")
    ticket.refresh_from_db()
    assert ticket.first_response_at == reply.created_at


@pytest.mark.django_db
def test_agent_opened_ticket_first_message_is_not_a_response(buyer, order, agent):
    ticket = open_ticket(buyer=buyer, order=order, actor=agent)
    assert ticket.first_response_at is None
    assert Message.objects.get(ticket=ticket).author_role == "agent"


@pytest.mark.django_db
def test_rating_once_after_resolution_by_the_buyer(buyer, other_buyer, order, agent):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    with pytest.raises(NotResolved):
        services.rate_ticket(actor=buyer, ticket_id=ticket.pk, score=9)
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resolve")
    with pytest.raises(PermissionDenied):
        services.rate_ticket(actor=agent, ticket_id=ticket.pk, score=9)
    with pytest.raises(TicketNotFound):
        services.rate_ticket(actor=other_buyer, ticket_id=ticket.pk, score=9)
    for bad in (-1, 11, "9", 9.5, True):
        with pytest.raises(InvalidInput):
            services.rate_ticket(actor=buyer, ticket_id=ticket.pk, score=bad)
    rating = services.rate_ticket(actor=buyer, ticket_id=ticket.pk, score=0, comment="太慢了")
    assert (rating.score, rating.comment) == (0, "太慢了")
    with pytest.raises(AlreadyRated):
        services.rate_ticket(actor=buyer, ticket_id=ticket.pk, score=10)
    assert Rating.objects.get(ticket=ticket).score == 0
    assert TicketEvent.objects.filter(ticket=ticket, kind="rated", data__score=0).exists()


@pytest.mark.django_db
def test_quick_reply_fills_placeholders_and_keeps_missing_ones(buyer, order, agent):
    reply = QuickReply.objects.create(
        shortcut="delay", title="延迟", body="{buyer_name}您好，订单 {order_no} 由{carrier}配送（{tracking_no}），预计 {eta} 到。—{agent_name}")
    ticket = open_ticket(buyer=buyer, order=order)
    text, missing = services.render_quick_reply(reply=reply, ticket=ticket, agent=agent)
    shipment = order.shipment
    assert text == (f"林晓雨您好，订单 {order.order_no} 由顺丰速运配送（{shipment.tracking_no}），"
                    f"预计 {shipment.eta:%m月%d日} 到。—王芳")
    assert missing == []
    no_order = open_ticket(buyer=buyer, category="coupon_failure")
    text, missing = services.render_quick_reply(reply=reply, ticket=no_order, agent=agent)
    assert "{order_no}" in text and missing == ["order_no", "carrier", "tracking_no", "eta"]


@pytest.mark.django_db
def test_agents_add_playbooks_buyers_cannot(agent, buyer):
    playbook = services.add_playbook(actor=agent, title="破损处理", body="1. 取证\n2. 补发", category="parcel_damaged")
    assert Playbook.objects.get(pk=playbook.pk).created_by_id == agent.pk
    with pytest.raises(PermissionDenied):
        services.add_playbook(actor=buyer, title="x", body="y")
    with pytest.raises(InvalidInput):
        services.add_playbook(actor=agent, title="x", body="y", category="nonsense")
    with pytest.raises(InvalidInput):
        services.add_playbook(actor=agent, title="", body="y")


@pytest.mark.django_db
def test_the_conversation_is_told_of_assignment_invitation_resolution_and_reopening(buyer, order, agent, merchant):
    ticket = open_ticket(buyer=buyer, order=order)
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="wait_merchant")
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resume")
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resolve")
    services.transition_ticket(actor=buyer, ticket_id=ticket.pk, name="reopen")
    notices = list(Message.objects.filter(ticket=ticket, author__isnull=True).values_list("notice", "author_role", "body"))
    assert [n[0] for n in notices] == ["assigned", "merchant_invited", "resolved", "reopened"]
    assert {n[1] for n in notices} == {"system"}
    # in the ticket's language (Chinese by default), naming who
    assert agent.name in notices[0][2] and "正在" in notices[0][2]
    assert merchant.name in notices[1][2]
    # resuming is not news to the buyer
    assert Message.objects.filter(ticket=ticket).count() == 1 + 4


@pytest.mark.django_db
def test_notices_speak_the_tickets_language(buyer, order, agent):
    ticket = open_ticket(buyer=buyer, order=order, language="en")
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    notice = Message.objects.get(ticket=ticket, notice="assigned")
    assert notice.body == f"{agent.name} is now handling your request."


@pytest.mark.django_db
def test_read_marks_move_forward_only_and_stop_at_the_last_message(buyer, order, agent, django_capture_on_commit_callbacks):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)  # seq 1 request, 2 notice
    assert services.mark_read(actor=buyer, ticket_id=ticket.pk, seq=2) == 2
    assert services.mark_read(actor=buyer, ticket_id=ticket.pk, seq=1) == 2  # never backwards
    assert services.mark_read(actor=buyer, ticket_id=ticket.pk, seq=99) == 2  # nothing past the last message
    services.post_message(actor=agent, ticket_id=ticket.pk, body="您好")
    assert services.mark_read(actor=agent, ticket_id=ticket.pk, seq=3) == 3
    assert services.mark_read(actor=buyer, ticket_id=ticket.pk, seq=3) == 3
    assert dict(ReadMark.objects.filter(ticket=ticket).values_list("user_id", "seq")) == {buyer.pk: 3, agent.pk: 3}


@pytest.mark.django_db
def test_read_marks_refuse_bad_seq_and_other_peoples_tickets(buyer, other_buyer, order, agent):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    for bad in (-1, "3", None, True):
        with pytest.raises(InvalidInput):
            services.mark_read(actor=buyer, ticket_id=ticket.pk, seq=bad)
    with pytest.raises(TicketNotFound):
        services.mark_read(actor=other_buyer, ticket_id=ticket.pk, seq=1)
    assert not ReadMark.objects.exists()


@pytest.mark.django_db
def test_a_reply_on_another_agents_ticket_needs_confirmation_when_asked(buyer, order, agent, other_agent):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    with pytest.raises(Conflict) as held:
        services.post_message(actor=other_agent, ticket_id=ticket.pk, body="我来", confirm_held=False)
    assert held.value.code == "held_by_other" and held.value.extra["holder"] == agent.name
    # notes, the holder, the buyer and callers that do not ask (the API) are not held up
    services.post_message(actor=other_agent, ticket_id=ticket.pk, body="备注", internal=True, confirm_held=False)
    services.post_message(actor=agent, ticket_id=ticket.pk, body="我在", confirm_held=False)
    services.post_message(actor=buyer, ticket_id=ticket.pk, body="好的", confirm_held=False)
    services.post_message(actor=other_agent, ticket_id=ticket.pk, body="我来")
    assert list(Message.objects.filter(ticket=ticket, author__isnull=False).values_list("body", flat=True))[-4:] == [
        "备注", "我在", "好的", "我来"]
