"""Issue #16 item 5 where tickets meet merchant credit: below the credit
policy's thresholds a new dispute holds the full order amount at once (even in
escrow), a compelled resend is due sooner, and agents see the score on the
ticket's order panel."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from merchants import services
from merchants.errors import ExceedsWithdrawable
from merchants.models import FundHold, Merchant, MerchantAccount
from merchants.tests.factories import fund, paid_order
from tickets import services as ticket_services
from tickets.models import TicketEvent
from tickets.tests.factories import open_ticket, ticket_in_state


def low_credit(merchant, score=45):
    Merchant.objects.filter(pk=merchant.pk).update(credit_score=score)
    merchant.refresh_from_db()


# --- disputes hold at once -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_low_credit_merchants_dispute_holds_the_full_amount_even_in_escrow(buyer, merchant, agent):
    low_credit(merchant)
    order = paid_order(merchant=merchant, buyer=buyer, amount_fen=8_000)
    assert order.escrow_status == "pending"
    ticket = open_ticket(buyer=buyer, order=order, category="wrong_item")
    hold = FundHold.objects.get()
    assert (hold.amount_fen, hold.status, hold.ticket_id, hold.order_id) == (8_000, "held", ticket.pk, order.pk)
    assert "45 < 60" in hold.reason
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 8_000
    assert TicketEvent.objects.filter(ticket=ticket, kind="dispute_opened").exists()
    # resolving releases it, exactly once
    ticket_services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    ticket_services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resolve")
    assert FundHold.objects.get().status == "released"
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 0


@pytest.mark.django_db
def test_a_good_merchants_dispute_in_escrow_still_keeps_it_there(buyer, merchant):
    order = paid_order(merchant=merchant, buyer=buyer, amount_fen=8_000)
    open_ticket(buyer=buyer, order=order, category="wrong_item")
    assert not FundHold.objects.exists()


@pytest.mark.django_db
def test_the_hold_freezes_withdrawable_but_never_below_zero(api, buyer, merchant, merchant_user):
    low_credit(merchant)
    fund(merchant, available_fen=5_000)
    order = paid_order(merchant=merchant, buyer=buyer, amount_fen=20_000)
    open_ticket(buyer=buyer, order=order, category="not_received")
    balance = api(merchant_user).get(f"/api/v1/merchants/{merchant.pk}/balance/").json()
    assert balance["holds_total_fen"] == 20_000 and balance["withdrawable_fen"] == 0
    with pytest.raises(ExceedsWithdrawable):
        services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=1, idempotency_key="x")


@pytest.mark.django_db
def test_threshold_zero_turns_the_rule_off(buyer, merchant, supervisor):
    low_credit(merchant, score=10)
    services.update_credit_policy(actor=supervisor, changes={"dispute_hold_below": 0}, reason="off for the test")
    order = paid_order(merchant=merchant, buyer=buyer, amount_fen=8_000)
    open_ticket(buyer=buyer, order=order, category="wrong_item")
    assert not FundHold.objects.exists()


# --- resend deadlines ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_resend_deadline_shortens_below_the_threshold(buyer, order, agent, merchant):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    now = timezone.now()
    with transaction.atomic():
        normal = services.create_resend_task(order=order, ticket_id=ticket.pk, reason="补发", now=now)
    low_credit(merchant)
    with transaction.atomic():
        short = services.create_resend_task(order=order, ticket_id=ticket.pk, reason="补发", now=now)
    assert normal.deadline_at - now == timedelta(hours=48)
    assert short.deadline_at - now == timedelta(hours=24)


# --- where agents see it ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_agents_see_the_merchants_credit_on_the_ticket_order_panel(client, buyer, order, agent, merchant):
    low_credit(merchant, score=52)
    ticket = open_ticket(buyer=buyer, order=order)
    client.force_login(agent)
    page = client.get(f"/console/tickets/{ticket.pk}/").content.decode()
    assert 'data-merchant-credit="52"' in page and 'data-credit-rule="payout_review"' in page
