"""Duplicates merged (issue #13 item 2): the service, the API's refusals, the
order's hold, and the buyer's chat following the target."""

import pytest

from merchants.models import FundHold, Order
from merchants.tests.factories import fund, paid_order
from tickets import services
from tickets.errors import IllegalTransition, MergeBuyerMismatch
from tickets.models import Message, Ticket, TicketEvent
from tickets.tests.factories import open_ticket, ticket_in_state


def merge_path(ticket_id: int) -> str:
    return f"/api/v1/tickets/{ticket_id}/merge/"


def seqs(ticket) -> list[int]:
    return list(Message.objects.filter(ticket=ticket).order_by("seq").values_list("seq", flat=True))


@pytest.mark.django_db
def test_merge_copies_messages_in_order_with_gap_free_seq(api, buyer, agent, order, django_capture_on_commit_callbacks):
    # given: the first ticket, assigned and talked on; a duplicate with a buyer's message and an internal note
    target = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order, subject="包裹没到")
    services.post_message(actor=agent, ticket_id=target.pk, body="正在查询")
    source = open_ticket(buyer=buyer, order=order, subject="包裹还没到", body="第二次问")
    services.post_message(actor=buyer, ticket_id=source.pk, body="请尽快处理")
    services.post_message(actor=agent, ticket_id=source.pk, body="重复工单", internal=True)
    before_target = Ticket.objects.get(pk=target.pk).last_seq
    source_bodies = list(Message.objects.filter(ticket=source).order_by("seq").values_list("body", flat=True))

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = api(agent).post(merge_path(source.pk), {"into_ticket_id": target.pk}, format="json")

    # then: the source ends merged, pointing at the target
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "merged" and response.json()["merged_into_id"] == target.pk
    source, target = Ticket.objects.get(pk=source.pk), Ticket.objects.get(pk=target.pk)
    assert source.status == "merged" and source.merged_into_id == target.pk and source.due_at is None
    # the target's conversation: a notice, then the source's messages in order, seq gap-free
    assert seqs(target) == list(range(1, target.last_seq + 1))
    appended = list(Message.objects.filter(ticket=target, seq__gt=before_target).order_by("seq"))
    assert appended[0].notice == "merged_in" and f"#{source.pk}" in appended[0].body
    assert [m.body for m in appended[1:]] == source_bodies
    assert Message.objects.get(ticket=source, seq=source.last_seq).notice == "merged_away"
    assert [m.internal for m in appended[1:]].count(True) == 1  # the note stays internal
    assert target.last_public_seq == max(m.seq for m in appended if not m.internal)
    # the source keeps its own conversation, gap-free
    assert seqs(source) == list(range(1, source.last_seq + 1)) and len(source_bodies) + 1 == source.last_seq
    # both timelines
    merged = TicketEvent.objects.get(ticket=source, kind="merge")
    assert merged.actor_id == agent.pk and merged.data["into_ticket_id"] == target.pk
    assert merged.data["from"] == "open" and merged.data["to"] == "merged"
    merged_in = TicketEvent.objects.get(ticket=target, kind="merged_in")
    assert merged_in.data["from_ticket_id"] == source.pk and merged_in.data["seq_to"] == target.last_seq
    # writing on the merged ticket is refused; the target goes on
    refused = api(buyer).post(f"/api/v1/tickets/{source.pk}/messages/", {"body": "还在吗"}, format="json")
    assert refused.status_code == 422 and refused.json()["code"] == "ticket_closed"
    assert api(buyer).post(f"/api/v1/tickets/{target.pk}/messages/", {"body": "好的"}, format="json").status_code == 201


@pytest.mark.django_db
def test_merge_refusals(api, buyer, other_buyer, agent, order, other_order, merchant_user):
    a = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    b = open_ticket(buyer=buyer, order=order)
    theirs = open_ticket(buyer=other_buyer, order=other_order)
    closed = ticket_in_state("closed", buyer=buyer, agent=agent, order=order)
    resolved = ticket_in_state("resolved", buyer=buyer, agent=agent, order=order)
    client = api(agent)

    def code(source, into, who=client):
        response = who.post(merge_path(source), {"into_ticket_id": into}, format="json")
        return response.status_code, response.json().get("code")

    assert code(b.pk, b.pk) == (409, "merge_into_self")
    assert code(b.pk, theirs.pk) == (409, "merge_buyer_mismatch")
    assert code(b.pk, closed.pk) == (409, "merge_target_closed")
    assert code(b.pk, resolved.pk) == (409, "merge_target_closed")
    assert code(closed.pk, a.pk) == (409, "illegal_transition")
    assert code(b.pk, 999_999) == (404, "not_found")
    assert code(999_999, b.pk) == (404, "not_found")
    # a buyer sees both tickets but may not merge; a merchant sees neither of these buyer-only tickets
    assert code(b.pk, a.pk, api(buyer)) == (403, "permission_denied")
    assert code(b.pk, a.pk, api(merchant_user))[0] in (403, 404)
    assert api(agent).post(merge_path(b.pk), {"into_ticket_id": "x"}, format="json").status_code == 400
    assert api(agent).post(merge_path(b.pk), {}, format="json").status_code == 400
    assert Ticket.objects.filter(status="merged").count() == 0
    # merged once, a merged target is closed to merges too
    assert code(b.pk, a.pk) == (200, None)
    c = open_ticket(buyer=buyer, order=order)
    assert code(c.pk, b.pk) == (409, "merge_target_closed")
    assert code(b.pk, c.pk) == (409, "illegal_transition")
    # the transitions endpoint does not run a merge by name
    assert client.post(f"/api/v1/tickets/{c.pk}/transitions/merge/", {}, format="json").status_code == 404


@pytest.mark.django_db
def test_the_order_keeps_one_hold_which_answers_to_the_target(buyer, agent, merchant):
    # given: a released order disputed twice: one hold, linked
    fund(merchant, available_fen=50_000, deposit_fen=0)
    order = paid_order(merchant=merchant, buyer=buyer, amount_fen=19_900, released=True)
    first = open_ticket(buyer=buyer, order=order, category="parcel_damaged")
    second = open_ticket(buyer=buyer, order=order, category="parcel_damaged")
    assert FundHold.objects.filter(order=order, status="held").count() == 1
    hold = FundHold.objects.get(order=order, status="held")
    assert hold.ticket_id == first.pk and Order.objects.get(pk=order.pk).open_disputes == 2

    # when: the first is merged into the second
    services.merge_tickets(actor=agent, ticket_id=first.pk, into_ticket_id=second.pk)

    # then: still one hold, now answering to the target; one open dispute left
    holds = FundHold.objects.filter(order=order)
    assert holds.count() == 1 and holds[0].status == "held" and holds[0].ticket_id == second.pk
    assert f"#{second.pk}" in holds[0].release_condition
    assert Order.objects.get(pk=order.pk).open_disputes == 1
    settled = TicketEvent.objects.get(ticket=first, kind="dispute_settled")
    assert settled.data["hold_kept_for_ticket_id"] == second.pk


@pytest.mark.django_db
def test_merge_in_the_service_refuses_different_buyers(buyer, other_buyer, agent, order, other_order):
    mine, theirs = open_ticket(buyer=buyer, order=order), open_ticket(buyer=other_buyer, order=other_order)
    with pytest.raises(MergeBuyerMismatch):
        services.merge_tickets(actor=agent, ticket_id=mine.pk, into_ticket_id=theirs.pk)
    with pytest.raises(IllegalTransition):
        done = ticket_in_state("closed", buyer=buyer, agent=agent, order=order)
        services.merge_tickets(actor=agent, ticket_id=done.pk, into_ticket_id=mine.pk)


@pytest.mark.django_db
def test_console_lists_duplicates_and_merges_with_the_button(client, buyer, other_buyer, agent, order, other_order):
    first = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order, subject="第一单")
    dup = open_ticket(buyer=buyer, order=order, subject="重复的")
    elsewhere = open_ticket(buyer=buyer, subject="别的订单")  # no order: never a duplicate
    theirs = open_ticket(buyer=other_buyer, order=other_order)
    done = ticket_in_state("closed", buyer=buyer, agent=agent, order=order)
    client.force_login(agent)

    page = client.get(f"/console/tickets/{dup.pk}/").content.decode()
    assert "data-duplicates" in page and f'data-merge-into="{first.pk}"' in page
    for other in (elsewhere, theirs, done):
        assert f'data-duplicate="{other.pk}"' not in page
    assert "data-duplicates" not in client.get(f"/console/tickets/{elsewhere.pk}/").content.decode()

    refused = client.post(f"/console/tickets/{dup.pk}/merge/", {"into": done.pk}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 409 and refused["HX-Retarget"] == "#merge-error"
    assert client.post(f"/console/tickets/{dup.pk}/merge/", {"into": "x"}).status_code == 400
    merged = client.post(f"/console/tickets/{dup.pk}/merge/", {"into": first.pk}, HTTP_HX_REQUEST="true")
    assert merged.status_code == 204 and merged["HX-Redirect"] == f"/console/tickets/{first.pk}/"
    assert Ticket.objects.get(pk=dup.pk).status == "merged"
    after = client.get(f"/console/tickets/{dup.pk}/").content.decode()
    assert "data-merged-banner" in after and f'data-merged-into="{first.pk}"' in after and "data-duplicates" not in after
    client.force_login(buyer)
    assert client.post(f"/console/tickets/{first.pk}/merge/", {"into": dup.pk}).status_code == 403


@pytest.mark.django_db
def test_merged_messages_keep_their_pictures(api, buyer, agent, order, settings, tmp_path,
                                             django_capture_on_commit_callbacks):
    """The target's copies carry the source's attachments (the same stored
    files), so the buyer and the agent see the photos in the conversation
    that goes on; the source keeps its own."""
    from tickets.models import Attachment
    from tickets.tests.test_attachments import image_bytes

    settings.MEDIA_ROOT = str(tmp_path / "media")
    target = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    source = open_ticket(buyer=buyer, order=order, subject="外箱压坏", body="快递破损")
    photo = services.upload_attachment(actor=buyer, ticket_id=source.pk, data=image_bytes("PNG"))
    posted = services.post_message(actor=buyer, ticket_id=source.pk, body="照片", attachment_ids=[photo.pk])

    with django_capture_on_commit_callbacks(execute=True):
        services.merge_tickets(actor=agent, ticket_id=source.pk, into_ticket_id=target.pk)

    copy = Message.objects.get(ticket=target, body="照片")
    moved = Attachment.objects.get(message=copy)
    assert moved.ticket_id == target.pk and moved.file.name == photo.file.name and moved.pk != photo.pk
    assert Attachment.objects.get(pk=photo.pk).message_id == posted.pk  # the source keeps its own
    listed = api(buyer).get(f"/api/v1/tickets/{target.pk}/messages/?page_size=200").json()["results"]
    shown = [m for m in listed if m["body"] == "照片"][0]["attachments"]
    assert [a["id"] for a in shown] == [moved.pk]
    assert api(buyer).get(shown[0]["url"]).status_code == 200
