"""Disputes hold the merchant's money in the ticket's own transaction;
resolving releases it; a hold can turn into a refund."""

import pytest
from django.db import transaction
from django.utils import timezone

from merchants import services as merchant_services
from merchants.errors import AmountInvalid, HoldNotActive
from merchants.models import FundHold, MerchantAccount, Movement, Order
from merchants.tests.factories import fund, paid_order
from tickets import services
from tickets.errors import InvalidInput
from tickets.models import Ticket, TicketEvent
from tickets.tests.factories import open_ticket


@pytest.fixture
def released_order(merchant, buyer):
    return paid_order(merchant=merchant, buyer=buyer, amount_fen=30_000, released=True)


@pytest.mark.django_db
def test_dispute_on_released_order_places_a_hold_with_the_ticket(buyer, released_order, merchant):
    ticket = open_ticket(buyer=buyer, order=released_order, category="not_received")
    hold = FundHold.objects.get()
    assert (hold.ticket_id, hold.order_id, hold.amount_fen, hold.status) == (ticket.pk, released_order.pk, 30_000, "held")
    assert f"#{ticket.pk}" in hold.release_condition
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 30_000
    event = TicketEvent.objects.get(ticket=ticket, kind="dispute_opened")
    assert event.data["hold_id"] == hold.pk and event.data["amount_fen"] == 30_000


@pytest.mark.django_db
def test_non_dispute_category_places_no_hold(buyer, released_order):
    open_ticket(buyer=buyer, order=released_order, category="logistics_delay")
    assert not FundHold.objects.exists()


@pytest.mark.django_db
def test_dispute_on_order_in_escrow_keeps_it_there(buyer, merchant, agent):
    order = paid_order(merchant=merchant, buyer=buyer, amount_fen=8_000)
    ticket = open_ticket(buyer=buyer, order=order, category="wrong_item")
    assert not FundHold.objects.exists()
    order.refresh_from_db()
    assert order.open_disputes == 1
    assert TicketEvent.objects.get(ticket=ticket, kind="dispute_opened").data["escrow"] == "kept_in_escrow"
    assert merchant_services.auto_confirm_orders(days=-1) == []  # not released while disputed
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resolve")
    order.refresh_from_db()
    assert order.open_disputes == 0


@pytest.mark.django_db
def test_resolving_releases_the_hold_and_reopening_places_it_again(buyer, released_order, merchant, agent):
    ticket = open_ticket(buyer=buyer, order=released_order, category="parcel_damaged")
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resolve")
    assert FundHold.objects.get().status == "released"
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 0
    assert TicketEvent.objects.get(ticket=ticket, kind="dispute_settled").data["released"] is True
    services.transition_ticket(actor=buyer, ticket_id=ticket.pk, name="reopen")
    assert FundHold.objects.filter(status="held", ticket_id=ticket.pk).count() == 1
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 30_000


@pytest.mark.django_db
def test_refused_ticket_leaves_no_hold(buyer, released_order):
    with pytest.raises(InvalidInput):
        open_ticket(buyer=buyer, order=released_order, category="not_received", body="x" * 6000)
    assert not FundHold.objects.exists() and not Ticket.objects.exists()
    assert MerchantAccount.objects.get(merchant=released_order.merchant).held_fen == 0


@pytest.mark.django_db
def test_convert_hold_to_refund_takes_available_then_deposit(buyer, released_order, merchant):
    fund(merchant, deposit_fen=50_000)
    ticket = open_ticket(buyer=buyer, order=released_order, category="refund_request")
    account = MerchantAccount.objects.get(merchant=merchant)
    Movement.objects.create(merchant=merchant, bucket="available", kind="payout", amount_fen=-25_000)
    MerchantAccount.objects.filter(pk=account.pk).update(available_fen=5_000)  # most of it paid out already
    with transaction.atomic():
        with pytest.raises(AmountInvalid):
            merchant_services.convert_hold_to_refund(order_id=ticket.order_id, amount_fen=30_001, now=timezone.now())
    with transaction.atomic():
        merchant_services.convert_hold_to_refund(order_id=ticket.order_id, amount_fen=20_000, now=timezone.now())
    account.refresh_from_db()
    assert (account.available_fen, account.deposit_fen, account.held_fen) == (0, 35_000, 0)
    hold = FundHold.objects.get()
    assert hold.status == "converted"
    assert sorted(hold.movements.values_list("bucket", "amount_fen")) == [("available", -5_000), ("deposit", -15_000)]
    with transaction.atomic():
        with pytest.raises(HoldNotActive):
            merchant_services.convert_hold_to_refund(order_id=ticket.order_id, amount_fen=1, now=timezone.now())


@pytest.mark.django_db
def test_balance_api_explains_every_held_yuan(api, buyer, merchant, merchant_user, other_merchant_user, agent, other_buyer):
    fund(merchant, available_fen=500_000, deposit_fen=100_000)
    orders = [paid_order(merchant=merchant, buyer=buyer, amount_fen=a, released=True) for a in (80_000, 50_000)]
    tickets = [open_ticket(buyer=buyer, order=o, category="not_received") for o in orders]
    in_escrow = paid_order(merchant=merchant, buyer=buyer, amount_fen=7_000)
    open_ticket(buyer=buyer, order=in_escrow, category="wrong_item")

    body = api(merchant_user).get(f"/api/v1/merchants/{merchant.pk}/balance/").json()
    # 500,000 + the two disputed orders (released) = 630,000 available
    assert body["available_fen"] == 630_000 and body["pending_fen"] == 7_000
    assert body["deposit_fen"] == 100_000 and body["holds_total_fen"] == 130_000
    assert body["frozen_from_available_fen"] == 30_000 and body["withdrawable_fen"] == 600_000
    assert [h["ticket_id"] for h in body["holds"]] == [tickets[1].pk, tickets[0].pk]  # newest first
    assert body["holds"][0]["withdrawable_if_released_fen"] == 630_000
    assert body["holds"][1]["withdrawable_if_released_fen"] == 630_000  # 50,000 left < deposit
    assert body["holds_truncated"] is False
    assert [o["order_id"] for o in body["disputed_in_escrow"]] == [in_escrow.pk]
    assert body["explanation"][0] == "holds ¥1,300.00 − deposit ¥1,000.00 = ¥300.00 not covered by the deposit"
    assert body["explanation"][-1] == "you can withdraw ¥6,000.00"
    assert api(agent).get(f"/api/v1/merchants/{merchant.pk}/balance/").status_code == 200
    for outsider in (other_merchant_user, buyer, other_buyer):
        response = api(outsider).get(f"/api/v1/merchants/{merchant.pk}/balance/")
        assert response.status_code == 404
    assert api(agent).get("/api/v1/merchants/999999/balance/").status_code == 404
    holds = api(merchant_user).get(f"/api/v1/merchants/{merchant.pk}/holds/?status=held").json()
    assert holds["count"] == 2
    assert api(merchant_user).get(f"/api/v1/merchants/{merchant.pk}/holds/?status=x").status_code == 400
    assert api(other_merchant_user).get(f"/api/v1/merchants/{merchant.pk}/holds/").status_code == 404


@pytest.mark.django_db
def test_balance_query_count_is_flat(api, buyer, merchant, merchant_user, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def disputes(n):
        for _ in range(n):
            order = paid_order(merchant=merchant, buyer=buyer, amount_fen=1_000, released=True)
            open_ticket(buyer=buyer, order=order, category="not_received")

    disputes(3)
    client = api(merchant_user)
    with CaptureQueriesContext(connection) as ctx:
        client.get(f"/api/v1/merchants/{merchant.pk}/balance/")
    disputes(30)
    with django_assert_max_num_queries(len(ctx.captured_queries)):
        body = client.get(f"/api/v1/merchants/{merchant.pk}/balance/").json()
    assert len(body["holds"]) == 33


@pytest.mark.django_db
def test_payout_api(api, merchant, merchant_user, other_merchant_user, agent, buyer):
    fund(merchant, available_fen=10_000)
    path = f"/api/v1/merchants/{merchant.pk}/payouts/"
    first = api(merchant_user).post(path, {"amount_fen": 4_000}, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    assert first.status_code == 201 and first.json()["status"] == "requested"
    replay = api(merchant_user).post(path, {"amount_fen": 4_000}, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    conflict = api(merchant_user).post(path, {"amount_fen": 10}, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
    too_much = api(merchant_user).post(path, {"amount_fen": 6_001}, format="json", HTTP_IDEMPOTENCY_KEY="p-2")
    assert too_much.status_code == 422 and too_much.json()["code"] == "exceeds_withdrawable"
    assert api(merchant_user).post(path, {"amount_fen": "lots"}, format="json").status_code == 400
    assert api(merchant_user).post(path, {"amount_fen": -1}, format="json").json()["code"] == "amount_invalid"
    assert api(other_merchant_user).post(path, {"amount_fen": 1}, format="json").status_code == 404
    assert api(agent).post(path, {"amount_fen": 1}, format="json").status_code == 403
    assert api(buyer).post(path, {"amount_fen": 1}, format="json").status_code == 403
    assert [p["amount_fen"] for p in api(merchant_user).get(path).json()["results"]] == [4_000]
    assert api(other_merchant_user).get(path).status_code == 404


@pytest.mark.django_db
def test_order_confirm_api(api, buyer, other_buyer, merchant):
    order = paid_order(merchant=merchant, buyer=buyer)
    assert api(other_buyer).post(f"/api/v1/orders/{order.pk}/confirm/").status_code == 404
    response = api(buyer).post(f"/api/v1/orders/{order.pk}/confirm/")
    assert response.status_code == 200 and response.json()["escrow_status"] == "released"
    again = api(buyer).post(f"/api/v1/orders/{order.pk}/confirm/")
    assert again.status_code == 409 and again.json()["code"] == "order_not_releasable"
    assert Order.objects.get(pk=order.pk).escrow_status == "released"


@pytest.mark.django_db
def test_merchant_sees_and_answers_a_dispute_that_holds_its_money(buyer, released_order, merchant_user, other_merchant_user):
    from tickets.selectors import tickets_visible_to

    ticket = open_ticket(buyer=buyer, order=released_order, category="not_received")
    assert ticket.party == "both"
    assert list(tickets_visible_to(user=merchant_user).values_list("pk", flat=True)) == [ticket.pk]
    assert not tickets_visible_to(user=other_merchant_user).exists()
    services.respond_as_merchant(actor=merchant_user, ticket_id=ticket.pk, action="accept_refund")
    assert TicketEvent.objects.filter(ticket=ticket, kind="merchant_accept_refund").exists()


@pytest.mark.django_db
def test_payout_without_a_usable_key_is_a_400_on_the_key(merchant, merchant_user):
    from core.errors import IdempotencyKeyRequired, InvalidInput as KeyInvalid
    from merchants.models import Payout

    fund(merchant, available_fen=1_000)
    for blank in (None, " "):
        with pytest.raises(IdempotencyKeyRequired) as refused:
            merchant_services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=100,
                                             idempotency_key=blank)
        assert refused.value.code == "idempotency_key_required" and refused.value.status == 400
    with pytest.raises(KeyInvalid) as too_long:
        merchant_services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=100,
                                         idempotency_key="k" * 129)
    assert too_long.value.extra["field"] == "Idempotency-Key"
    assert not Payout.objects.exists()


@pytest.mark.django_db
def test_one_order_carries_one_hold_however_many_tickets_dispute_it(buyer, released_order, merchant, agent):
    """18 refund requests on one order: the merchant's money is held once, each
    later ticket links to the first, and the hold is released exactly once,
    when the last dispute ends."""
    tickets = [open_ticket(buyer=buyer, order=released_order, category="refund_request") for _ in range(18)]
    hold = FundHold.objects.get()
    assert (hold.ticket_id, hold.amount_fen, hold.status) == (tickets[0].pk, 30_000, "held")
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 30_000
    for later in tickets[1:]:
        data = TicketEvent.objects.get(ticket=later, kind="dispute_opened").data
        assert data["hold_id"] == hold.pk and data["linked_to_ticket_id"] == tickets[0].pk
    assert Order.objects.get(pk=released_order.pk).open_disputes == 18

    for ticket in tickets[:-1]:  # the first one too: the hold now answers to the next
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resolve")
        hold.refresh_from_db()
        assert hold.status == "held"
    assert hold.ticket_id == tickets[-1].pk and f"#{tickets[-1].pk}" in hold.release_condition
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 30_000

    services.transition_ticket(actor=agent, ticket_id=tickets[-1].pk, name="assign")
    services.transition_ticket(actor=agent, ticket_id=tickets[-1].pk, name="resolve")
    hold.refresh_from_db()
    assert hold.status == "released"
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 0
    assert Order.objects.get(pk=released_order.pk).open_disputes == 0
    released = TicketEvent.objects.filter(kind="dispute_settled", data__released=True)
    assert [e.ticket_id for e in released] == [tickets[-1].pk]


@pytest.mark.django_db
def test_a_refund_on_a_linked_dispute_converts_the_order_s_one_hold(buyer, released_order, merchant, agent):
    first = open_ticket(buyer=buyer, order=released_order, category="refund_request")
    open_ticket(buyer=buyer, order=released_order, category="wrong_item")  # links to the order's one hold
    fund(merchant, available_fen=50_000)
    with transaction.atomic():
        order, source = merchant_services.lock_refundable(order_id=released_order.pk, amount_fen=30_000)
        merchant_services.refund_order(order=order, source=source, amount_fen=30_000, now=timezone.now())
    assert source == "hold"
    assert FundHold.objects.get().status == "converted"
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 0
    # the first dispute ending later releases nothing twice
    services.transition_ticket(actor=agent, ticket_id=first.pk, name="assign")
    services.transition_ticket(actor=agent, ticket_id=first.pk, name="resolve")
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 0
