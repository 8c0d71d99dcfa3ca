"""apply_remedy, approvals, the breaker, policy and blacklist through the services."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.tests.factories import UserFactory
from compensation import ledger, services
from compensation.errors import (
    AmountInvalid,
    BudgetStillExhausted,
    BuyerBlacklisted,
    IdempotencyConflict,
    InvalidInput,
    OrderNotEligible,
    OwnRequest,
    PermissionDenied,
    RemedyDecided,
    TicketClosed,
)
from compensation.models import (
    AgentQuota,
    BlacklistEntry,
    BudgetDay,
    Coupon,
    LedgerEntry,
    LedgerHead,
    Policy,
    PolicyChange,
    Remedy,
)
from compensation.tests.factories import new_key, remedy_ticket
from merchants.models import MerchantAccount, Order, ResendTask
from tickets.models import Message, TicketEvent


def _apply(agent, ticket, kind="refund", **kwargs):
    kwargs.setdefault("idempotency_key", new_key())
    return services.apply_remedy(actor=agent, ticket_id=ticket.pk, kind=kind, reason=kwargs.pop("reason", "丢件赔付"), **kwargs)


@pytest.mark.django_db
def test_refund_inside_every_cap_executes_from_escrow(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=2_990)
    result = _apply(agent, ticket)
    assert result.status_code == 201 and result.body["status"] == "executed" and result.body["amount_fen"] == 2_990
    remedy = Remedy.objects.get()
    assert remedy.self_service and remedy.executed_at
    order = Order.objects.get(pk=ticket.order_id)
    assert (order.refunded_fen, order.escrow_status) == (2_990, "refunded")
    assert MerchantAccount.objects.get(merchant=merchant).pending_fen == 0
    assert AgentQuota.objects.get(agent=agent).used == 1
    assert BudgetDay.objects.get().spent_fen == 2_990
    entries = list(LedgerEntry.objects.values_list("account", "amount_fen"))
    assert entries == [(f"escrow:order:{order.pk}", -2_990), (f"buyer:{buyer.pk}", 2_990)]
    assert TicketEvent.objects.filter(ticket=ticket, kind="remedy_executed").exists()
    assert Message.objects.filter(ticket=ticket, author_role="system", body__contains="¥29.90").exists()


@pytest.mark.django_db
def test_resend_plus_coupon_combo(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    result = _apply(agent, ticket, kind="resend", with_coupon=True)
    assert result.status_code == 201
    task = ResendTask.objects.get()
    assert task.ticket_id == ticket.pk and task.status == "open"
    coupon = Coupon.objects.get()
    assert (coupon.value_fen, coupon.threshold_fen, coupon.buyer_id) == (500, 0, buyer.pk)
    assert coupon.expires_at > timezone.now() + timedelta(days=29)
    assert BudgetDay.objects.get().spent_fen == 500
    assert LedgerEntry.objects.aggregate(total=Sum("amount_fen"))["total"] == 0
    assert Message.objects.filter(ticket=ticket, body__contains=coupon.code).exists()


@pytest.mark.django_db
def test_partial_refund_plus_coupon_from_merchant_balance(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=4_000, released=True,
                           category="logistics_delay")
    result = _apply(agent, ticket, amount_fen=1_000, with_coupon=True)
    assert result.status_code == 201
    assert MerchantAccount.objects.get(merchant=merchant).available_fen == 3_000
    assert Order.objects.get(pk=ticket.order_id).refundable_fen == 3_000
    assert BudgetDay.objects.get().spent_fen == 1_500
    # a second refund never goes past what is left
    with pytest.raises(AmountInvalid):
        _apply(agent, ticket, amount_fen=3_001)


@pytest.mark.django_db
def test_refund_on_disputed_order_converts_the_hold(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=3_000, released=True)
    assert MerchantAccount.objects.get(merchant=merchant).held_fen == 3_000
    _apply(agent, ticket)
    account = MerchantAccount.objects.get(merchant=merchant)
    assert (account.held_fen, account.available_fen) == (0, 0)
    assert ticket.order.holds.get().status == "converted"


@pytest.mark.django_db
def test_caps_route_to_approval_with_reasons(buyer, agent, merchant):
    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 1_000, "buyer_daily_cap": 0})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=2_000)
    result = _apply(agent, ticket)
    assert result.status_code == 202
    assert result.body["status"] == "pending_approval"
    assert set(result.body["reasons"]) == {"over_value_cap", "buyer_daily_cap"}
    assert not AgentQuota.objects.filter(agent=agent, used__gt=0).exists()  # nothing consumed
    assert not BudgetDay.objects.filter(spent_fen__gt=0).exists() and not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_quota_and_flagged_buyer_route_to_approval(buyer, agent, merchant):
    Policy.objects.update_or_create(pk=1, defaults={"agent_monthly_quota": 1, "buyer_daily_cap": 10})
    first = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    assert _apply(agent, first, kind="coupon").status_code == 201
    second = _apply(agent, first, kind="coupon")
    assert second.status_code == 202 and second.body["reasons"] == ["quota_exhausted"]
    buyer.account_status = "flagged"
    buyer.save()
    other = UserFactory(role="agent")
    third = _apply(other, first, kind="coupon")
    assert third.body["reasons"] == ["buyer_flagged"]


@pytest.mark.django_db
def test_breaker_opens_when_spend_reaches_budget_and_resets(buyer, agent, merchant, supervisor):
    Policy.objects.update_or_create(pk=1, defaults={"daily_budget_fen": 1_000, "buyer_daily_cap": 10})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    assert _apply(agent, ticket, kind="coupon").status_code == 201   # 500
    assert _apply(agent, ticket, kind="coupon").status_code == 201   # 1,000: reaches the budget
    assert BudgetDay.objects.get().breaker_open
    blocked = _apply(agent, ticket, kind="coupon")
    assert blocked.status_code == 202 and blocked.body["reasons"] == ["breaker_open"]
    with pytest.raises(BudgetStillExhausted):
        services.reset_breaker(actor=supervisor, reason="大促加预算")
    with pytest.raises(PermissionDenied):
        services.reset_breaker(actor=agent, reason="x", budget_fen=5_000)
    day = services.reset_breaker(actor=supervisor, reason="大促加预算", budget_fen=5_000)
    assert not day.breaker_open and day.resets.get().reset_by_id == supervisor.pk
    assert _apply(agent, ticket, kind="coupon").status_code == 201


@pytest.mark.django_db
def test_breaker_closes_at_day_rollover(buyer, agent, merchant):
    BudgetDay.objects.create(date=timezone.localdate() - timedelta(days=1), budget_fen=100, spent_fen=100, breaker_open=True)
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    assert _apply(agent, ticket, kind="coupon").status_code == 201


@pytest.mark.django_db
def test_refusals_are_422_and_leave_nothing(buyer, other_buyer, agent, merchant, supervisor):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    with pytest.raises(AmountInvalid):
        _apply(agent, ticket, amount_fen=0)
    with pytest.raises(AmountInvalid):
        _apply(agent, ticket, amount_fen=10**9)
    with pytest.raises(AmountInvalid):
        _apply(agent, ticket, kind="resend", amount_fen=100)
    with pytest.raises(InvalidInput):
        _apply(agent, ticket, kind="gold")
    with pytest.raises(InvalidInput):
        _apply(agent, ticket, reason="  ")
    services.add_to_blacklist(actor=supervisor, kind="account", value=buyer.username, reason="恶意索赔", window_days=3)
    with pytest.raises(BuyerBlacklisted):
        _apply(agent, ticket)
    unshipped = remedy_ticket(buyer=other_buyer, agent=agent, merchant=merchant)
    Order.objects.filter(pk=unshipped.order_id).update(status="paid")
    with pytest.raises(OrderNotEligible):
        _apply(agent, unshipped, kind="resend")
    closed = remedy_ticket(buyer=other_buyer, agent=agent, merchant=merchant, state="closed")
    with pytest.raises(TicketClosed):
        _apply(agent, closed, kind="coupon")
    with pytest.raises(PermissionDenied):
        _apply(buyer, ticket, kind="coupon")
    assert not Remedy.objects.exists() and not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_idempotency_replays_and_conflicts(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    first = _apply(agent, ticket, kind="coupon", idempotency_key="k-1")
    again = _apply(agent, ticket, kind="coupon", idempotency_key="k-1")
    assert again.replayed and again.body == first.body and again.status_code == 201
    with pytest.raises(IdempotencyConflict):
        _apply(agent, ticket, kind="coupon", amount_fen=300, idempotency_key="k-1")
    assert Remedy.objects.count() == 1 and Coupon.objects.count() == 1


@pytest.mark.django_db
def test_approval_executes_once_and_never_by_the_requester(buyer, agent, merchant, supervisor):
    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 1_000})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=5_000)
    pending = _apply(agent, ticket)
    with pytest.raises(PermissionDenied):
        services.approve_remedy(actor=agent, remedy_id=pending.remedy_id, idempotency_key=new_key())
    own = UserFactory(role="supervisor")
    own_request = _apply(own, ticket, kind="coupon")
    with pytest.raises(OwnRequest):
        services.approve_remedy(actor=own, remedy_id=own_request.remedy_id, idempotency_key=new_key())
    remedy = services.approve_remedy(actor=supervisor, remedy_id=pending.remedy_id, reason="核实丢件", idempotency_key=new_key())
    assert remedy.status == "executed" and remedy.decided_by_id == supervisor.pk and not remedy.self_service
    assert Order.objects.get(pk=ticket.order_id).refunded_fen == 5_000
    with pytest.raises(RemedyDecided):
        services.approve_remedy(actor=supervisor, remedy_id=pending.remedy_id, idempotency_key=new_key())
    with pytest.raises(RemedyDecided):
        services.reject_remedy(actor=supervisor, remedy_id=pending.remedy_id, idempotency_key=new_key())
    rejected = services.reject_remedy(actor=supervisor, remedy_id=own_request.remedy_id, reason="不符合", idempotency_key=new_key())
    assert rejected.status == "rejected" and not Coupon.objects.filter(remedy=rejected).exists()


@pytest.mark.django_db
def test_policy_changes_are_recorded(supervisor, agent):
    policy = services.update_policy(actor=supervisor, changes={"coupon_fen": 800, "value_cap_fen": 5_000}, reason="大促")
    assert policy.coupon_fen == 800
    change = PolicyChange.objects.get()
    assert change.changed_by_id == supervisor.pk and change.changes == {"coupon_fen": [500, 800]}
    with pytest.raises(PermissionDenied):
        services.update_policy(actor=agent, changes={"coupon_fen": 1})
    with pytest.raises(InvalidInput):
        services.update_policy(actor=supervisor, changes={"nonsense": 1})
    with pytest.raises(InvalidInput):
        services.update_policy(actor=supervisor, changes={"coupon_fen": -1})


@pytest.mark.django_db
def test_blacklist_from_recent_counts(buyer, other_buyer, agent, merchant):
    from compensation.models import BuyerCounter

    BuyerCounter.objects.create(buyer=buyer, date=timezone.localdate(), count=4)
    BuyerCounter.objects.create(buyer=other_buyer, date=timezone.localdate(), count=3)
    added = services.blacklist_from_recent_counts()
    assert [e.value for e in added] == [buyer.username]
    assert services.blacklist_from_recent_counts() == []
    entry = BlacklistEntry.objects.get()
    assert entry.source == "rolling_counts" and entry.window_days == 7


@pytest.mark.django_db
def test_ledger_verifies_and_detects_tampering(buyer, agent, merchant, capsys):
    Policy.objects.update_or_create(pk=1, defaults={"buyer_daily_cap": 10})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    _apply(agent, ticket, amount_fen=1_000, with_coupon=True)
    _apply(agent, ticket, kind="coupon")
    assert ledger.verify().ok and ledger.verify().entries == 6
    call_command("verify_ledger")
    assert "Ledger OK: 6 entries" in capsys.readouterr().out
    entry = LedgerEntry.objects.order_by("id")[1]
    LedgerEntry.objects.filter(pk=entry.pk).update(amount_fen=999)
    result = ledger.verify()
    assert result.bad_hashes == [entry.pk] and result.unbalanced_remedies == [entry.remedy_id]
    with pytest.raises(CommandError):
        call_command("verify_ledger")


@pytest.mark.django_db
def test_unbalanced_lines_are_refused(buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    result = _apply(agent, ticket, kind="coupon")
    with pytest.raises(ValueError):
        ledger.post(remedy=Remedy.objects.get(pk=result.remedy_id), lines=[("a", 1, "")], now=timezone.now())


@pytest.mark.django_db
def test_a_policy_change_applies_at_once_to_quotas_in_use(buyer, agent, merchant, supervisor, api):
    """A supervisor lowers the monthly quota mid-month: agents who already used
    some are held to the new limit from the next request on; a raise applies too."""
    Policy.objects.update_or_create(pk=1, defaults={"agent_monthly_quota": 60, "buyer_daily_cap": 100,
                                                    "daily_budget_fen": 10**9})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    for _ in range(3):
        assert _apply(agent, ticket, kind="coupon").status_code == 201
    response = api(supervisor).patch("/api/v1/compensation/policy/", {"agent_monthly_quota": 5}, format="json")
    assert response.status_code == 200
    assert api(agent).get("/api/v1/agents/me/quota/").json() | {"period": None} == {
        "period": None, "limit": 5, "used": 3, "remaining": 2}
    outcomes = [_apply(agent, ticket, kind="coupon").status_code for _ in range(20)]
    assert outcomes == [201, 201] + [202] * 18
    assert Remedy.objects.filter(status="executed").count() == 5
    services.update_policy(actor=supervisor, changes={"agent_monthly_quota": 7})
    assert [_apply(agent, ticket, kind="coupon").status_code for _ in range(3)] == [201, 201, 202]


@pytest.mark.django_db
def test_only_the_policy_s_coupon_is_self_service(buyer, agent, merchant, supervisor):
    Policy.objects.update_or_create(pk=1, defaults={"buyer_daily_cap": 10, "coupon_max_fen": 20_000})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    big = _apply(agent, ticket, kind="coupon", amount_fen=10_000)
    assert big.status_code == 202 and big.body["reasons"] == ["coupon_amount"]
    small = _apply(agent, ticket, kind="coupon", amount_fen=300)
    assert small.status_code == 202 and small.body["reasons"] == ["coupon_amount"]
    assert _apply(agent, ticket, kind="coupon", amount_fen=500).status_code == 201
    with pytest.raises(AmountInvalid):  # past the policy's absolute maximum: refused outright
        _apply(agent, ticket, kind="coupon", amount_fen=20_001)
    assert not Coupon.objects.filter(value_fen=10_000).exists()
    remedy = services.approve_remedy(actor=supervisor, remedy_id=big.remedy_id, idempotency_key=new_key())
    assert remedy.status == "executed" and Coupon.objects.get(remedy=remedy).value_fen == 10_000
    with pytest.raises(InvalidInput):  # the coupon value never above the maximum
        services.update_policy(actor=supervisor, changes={"coupon_fen": 30_000})


@pytest.mark.django_db
def test_money_writes_require_an_idempotency_key(buyer, agent, merchant, supervisor):
    from core.errors import IdempotencyKeyRequired

    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 1_000})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=5_000)
    for key in (None, "", "   "):
        with pytest.raises(IdempotencyKeyRequired):
            _apply(agent, ticket, idempotency_key=key)
    pending = _apply(agent, ticket)
    with pytest.raises(IdempotencyKeyRequired):
        services.approve_remedy(actor=supervisor, remedy_id=pending.remedy_id, idempotency_key=None)
    with pytest.raises(IdempotencyKeyRequired):
        services.reject_remedy(actor=supervisor, remedy_id=pending.remedy_id, idempotency_key="")
    # a decision retried with its key answers as the first time, not "already decided"
    first = services.approve_remedy(actor=supervisor, remedy_id=pending.remedy_id, idempotency_key="d-1")
    again = services.approve_remedy(actor=supervisor, remedy_id=pending.remedy_id, idempotency_key="d-1")
    assert first.pk == again.pk and again.status == "executed"
    assert Order.objects.get(pk=ticket.order_id).refunded_fen == 5_000
    with pytest.raises(IdempotencyConflict):
        services.reject_remedy(actor=supervisor, remedy_id=pending.remedy_id, idempotency_key="d-1")


@pytest.mark.django_db
def test_the_ledger_is_chains_each_verifiable(buyer, agent, merchant, settings):
    settings.LEDGER_CHAINS = 4
    Policy.objects.update_or_create(pk=1, defaults={"buyer_daily_cap": 100})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    for _ in range(8):
        _apply(agent, ticket, kind="coupon")
    chains = set(LedgerEntry.objects.values_list("chain", flat=True))
    assert chains == {0, 1, 2, 3}
    result = ledger.verify()
    assert result.ok and result.entries == 16
    # each chain links only its own entries
    for chain in chains:
        entries = list(LedgerEntry.objects.filter(chain=chain).order_by("id"))
        assert entries[0].prev_hash == ledger.GENESIS
        assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    victim = LedgerEntry.objects.filter(chain=2).order_by("id").first()
    LedgerEntry.objects.filter(pk=victim.pk).update(memo="tampered")
    assert ledger.verify().bad_hashes == [victim.pk]


@pytest.mark.django_db
def test_posting_locks_the_head_then_writes_entries_and_head_in_one_statement_on_postgresql(
        buyer, agent, merchant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    Policy.objects.update_or_create(pk=1, defaults={"buyer_daily_cap": 100})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    remedy = Remedy.objects.get(pk=_apply(agent, ticket, kind="coupon").remedy_id)
    chain = ledger.chain_of(remedy.pk)
    head_before = LedgerHead.objects.get(chain=chain)
    lines = [("platform:compensation", -300, "test"), (f"buyer:{buyer.pk}", 200, "test"), ("x", 100, "test")]
    # when
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        ledger.post(remedy=remedy, lines=lines, now=timezone.now())
    # then: the head locked, then one statement (PostgreSQL) or two for the entries and the head's move
    statements = [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert "compensation_ledgerhead" in statements[0]
    if connection.vendor == "postgresql":
        assert "FOR UPDATE" in statements[0] and len(statements) == 2
    else:
        assert len(statements) == 3
    entries = list(LedgerEntry.objects.filter(remedy=remedy, memo="test").order_by("id"))
    assert [(e.account, e.amount_fen) for e in entries] == [(a, n) for a, n, _ in lines]
    assert entries[0].prev_hash == head_before.last_hash
    head = LedgerHead.objects.get(chain=chain)
    assert head.last_hash == entries[-1].hash and head.entries == head_before.entries + 3
    assert ledger.verify().ok


@pytest.mark.django_db
def test_a_chain_without_its_head_row_gets_one_on_its_first_entry(buyer, agent, merchant):
    # a chain beyond those the migration made (LEDGER_CHAINS raised) has no head row yet
    LedgerHead.objects.all().delete()
    Policy.objects.update_or_create(pk=1, defaults={"buyer_daily_cap": 100})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    remedy_ids = [_apply(agent, ticket, kind="coupon").remedy_id for _ in range(3)]
    heads = {head.chain: head for head in LedgerHead.objects.all()}
    assert set(heads) == {ledger.chain_of(pk) for pk in remedy_ids}
    assert sum(head.entries for head in heads.values()) == 6
    for chain, head in heads.items():
        assert head.pk == chain + 1
        assert head.last_hash == LedgerEntry.objects.filter(chain=chain).order_by("id").last().hash
    assert ledger.verify().ok


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "extra", "most", "trips"), [  # in the transaction, BEGIN and COMMIT aside
    # a resend reads the merchant's credit and the credit policy (one statement) for its deadline (issue #16 item 5)
    ("coupon", {}, 15, 4), ("resend", {"with_coupon": True}, 17, 6), ("refund", {}, 19, 6),
])
def test_a_remedy_is_about_fifteen_statements_with_no_platform_wide_lock_held(
        buyer, agent, merchant, kind, extra, most, trips):
    """Issue #11: no row every remedy locks while it runs its other statements
    (the budget is the last statement before the commit, a refund's merchant
    account the last before the idempotency record and the budget), and about
    15 statements (a refund also locks and moves the order's money: 19). On
    PostgreSQL the writes nothing reads go with the next statement
    (``rows.sent_together``), the remedy's own among them (its key came with
    the ticket's lock): 4 round trips for a coupon, 6 for the others."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    Policy.objects.update_or_create(pk=1, defaults={"buyer_daily_cap": 10})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    _apply(agent, ticket, kind="coupon")  # the day's budget row and the quota row exist
    with CaptureQueriesContext(connection) as captured:
        result = _apply(agent, ticket, kind=kind, **extra)
    assert result.status_code == 201
    messages = [q["sql"] for q in captured.captured_queries]  # what went to the server, one entry a round trip
    sql = [statement for message in messages for statement in message.split(";\n")]
    assert len(sql) <= most + 2  # the savepoint (or BEGIN) and its release (or COMMIT)
    if connection.vendor == "postgresql":
        assert len(messages) == trips + 2
    else:
        assert messages == sql
    budget = [i for i, s in enumerate(sql) if s.startswith("INSERT") and "compensation_budgetday" in s]
    assert len(budget) == 1  # spent once, by one statement
    # after the budget's update only the commit; the idempotency record just before it
    assert [s.split()[0] for s in sql[budget[0] + 1:]] in (["COMMIT"], ["RELEASE"])
    assert "compensation_idempotencyrecord" in sql[budget[0] - 1]
    assert not any("FOR UPDATE" in s and "budgetday" in s for s in sql)
    account = [i for i, s in enumerate(sql) if "merchants_merchantaccount" in s]
    if kind == "refund":  # from escrow: one update by difference, unread, after the ledger
        assert len(account) == 1 and sql[account[0]].startswith("UPDATE") and account[0] == budget[0] - 2
        assert max(i for i, s in enumerate(sql) if "compensation_ledgerhead" in s) < account[0]
    else:
        assert account == []
