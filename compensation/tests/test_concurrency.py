"""Real parallel transactions on PostgreSQL: quotas grant exactly min(N, K),
the budget is never overspent, one key makes one remedy, approvals race once."""

import pytest

from accounts import roles
from accounts.tests.factories import UserFactory
from compensation import ledger, services
from compensation.models import AgentQuota, BudgetDay, Coupon, Policy, Remedy
from compensation.tests.factories import new_key, remedy_ticket
from tests.concurrency import race, requires_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _coupon(agent, ticket, key=None):
    return services.apply_remedy(actor=agent, ticket_id=ticket.pk, kind="coupon", reason="安抚",
                                 idempotency_key=key or new_key())


def test_quota_grants_exactly_min_n_k(buyer, agent, merchant):
    requires_postgres()
    Policy.objects.update_or_create(pk=1, defaults={"agent_monthly_quota": 3, "buyer_daily_cap": 100})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)

    results, errors = race(lambda i: _coupon(agent, ticket).status_code, 8)

    assert errors == []
    assert sorted(results) == [201] * 3 + [202] * 5
    assert AgentQuota.objects.get(agent=agent).used == 3
    assert Coupon.objects.count() == 3
    assert ledger.verify().ok


def test_budget_is_never_overspent(buyer, merchant):
    requires_postgres()
    Policy.objects.update_or_create(pk=1, defaults={"daily_budget_fen": 2_000, "buyer_daily_cap": 100})
    agents = [UserFactory(role=roles.AGENT) for _ in range(8)]
    ticket = remedy_ticket(buyer=buyer, agent=agents[0], merchant=merchant)

    results, errors = race(lambda i: _coupon(agents[i], ticket).status_code, 8)

    assert errors == []
    assert results.count(201) == 4  # 4 × ¥5 = the ¥20 budget
    day = BudgetDay.objects.get()
    assert day.spent_fen == 2_000 and day.breaker_open
    assert sum(Coupon.objects.values_list("value_fen", flat=True)) == 2_000


def test_same_key_from_eight_threads_makes_one_remedy(buyer, agent, merchant):
    requires_postgres()
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)

    results, errors = race(lambda i: _coupon(agent, ticket, key="same-key"), 8)

    assert errors == []
    assert len({r.remedy_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert Remedy.objects.count() == 1 and Coupon.objects.count() == 1


def test_two_supervisors_approve_at_once_executes_once(buyer, agent, merchant):
    requires_postgres()
    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 100})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=3_000)
    pending = services.apply_remedy(actor=agent, ticket_id=ticket.pk, kind="refund", reason="丢件", idempotency_key=new_key())
    leads = [UserFactory(role=roles.SUPERVISOR) for _ in range(2)]

    results, errors = race(lambda i: services.approve_remedy(actor=leads[i], remedy_id=pending.remedy_id, idempotency_key=new_key()), 2)

    assert len(results) == 1 and len(errors) == 1 and errors[0].code == "already_decided"
    ticket.order.refresh_from_db()
    assert ticket.order.refunded_fen == 3_000
    assert BudgetDay.objects.get().spent_fen == 3_000
    assert ledger.verify().ok


def test_caps_hold_across_tickets_where_no_ticket_lock_lines_requests_up(buyer, other_buyer, merchant):
    """Each request on its own ticket, so only the conditional counters keep
    the caps: one agent's quota of 3, one buyer's daily cap of 2, a budget of
    five coupons, 8 requests each — exactly the caps are granted."""
    requires_postgres()
    Policy.objects.update_or_create(pk=1, defaults={"agent_monthly_quota": 3, "buyer_daily_cap": 100,
                                                    "daily_budget_fen": 10**9})
    agent = UserFactory(role=roles.AGENT)
    tickets = [remedy_ticket(buyer=UserFactory(role=roles.BUYER), agent=agent, merchant=merchant) for _ in range(8)]
    results, errors = race(lambda i: _coupon(agent, tickets[i]).status_code, 8)
    assert errors == [] and sorted(results) == [201] * 3 + [202] * 5
    assert AgentQuota.objects.get(agent=agent).used == 3

    Policy.objects.filter(pk=1).update(agent_monthly_quota=100, buyer_daily_cap=2)
    agents = [UserFactory(role=roles.AGENT) for _ in range(8)]
    same_buyer = [remedy_ticket(buyer=other_buyer, agent=agents[i], merchant=merchant) for i in range(8)]
    results, errors = race(lambda i: _coupon(agents[i], same_buyer[i]).status_code, 8)
    assert errors == [] and sorted(results) == [201] * 2 + [202] * 6
    assert Coupon.objects.filter(buyer=other_buyer).count() == 2

    Policy.objects.filter(pk=1).update(buyer_daily_cap=100)
    BudgetDay.objects.all().delete()
    Policy.objects.filter(pk=1).update(daily_budget_fen=2_500)
    spenders = [UserFactory(role=roles.AGENT) for _ in range(8)]
    own = [remedy_ticket(buyer=UserFactory(role=roles.BUYER), agent=spenders[i], merchant=merchant) for i in range(8)]
    results, errors = race(lambda i: _coupon(spenders[i], own[i]).status_code, 8)
    assert errors == [] and results.count(201) == 5
    day = BudgetDay.objects.get()
    assert day.spent_fen == 2_500 and day.breaker_open
    assert ledger.verify().ok


def test_refunds_and_payments_racing_on_one_merchants_escrow_lose_nothing(merchant):
    """The merchant's account is added to by difference at the end of each
    transaction, unread: 8 refunds from escrow on 8 orders and 8 orders paid,
    all at once, leave the pending bucket equal to its movements."""
    requires_postgres()
    from django.db.models import Sum

    from merchants import services as merchant_services
    from merchants.models import MerchantAccount, Movement
    from merchants.tests.factories import OrderFactory

    Policy.objects.update_or_create(pk=1, defaults={"buyer_daily_cap": 100, "value_cap_fen": 10_000})
    agents = [UserFactory(role=roles.AGENT) for _ in range(8)]
    tickets = [remedy_ticket(buyer=UserFactory(role=roles.BUYER), agent=agents[i], merchant=merchant, amount_fen=3_000)
               for i in range(8)]
    unpaid = [OrderFactory(merchant=merchant, amount_fen=1_000) for _ in range(8)]
    before = MerchantAccount.objects.get(merchant=merchant).pending_fen
    assert before == 8 * 3_000

    def one(i):
        if i % 2:
            return services.apply_remedy(actor=agents[i // 2], ticket_id=tickets[i // 2].pk, kind="refund",
                                         amount_fen=1_200, reason="破损", idempotency_key=new_key()).status_code
        return merchant_services.record_order_paid(order=unpaid[i // 2]).amount_fen

    results, errors = race(one, 16)

    assert errors == [] and sorted(results) == [201] * 8 + [1_000] * 8
    pending = MerchantAccount.objects.get(merchant=merchant).pending_fen
    assert pending == before - 8 * 1_200 + 8 * 1_000
    assert pending == Movement.objects.filter(merchant=merchant, bucket="pending").aggregate(s=Sum("amount_fen"))["s"]
    assert ledger.verify().ok
