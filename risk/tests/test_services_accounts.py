"""A supervisor's actions on an account, the owner's verification, the bulk
cancel with its undo, and the order system's check."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from accounts import roles
from accounts.models import User
from accounts.tests.factories import UserFactory
from compensation import services as compensation
from compensation.models import BlacklistEntry, Remedy
from compensation.tests.factories import new_key, remedy_ticket
from core.errors import InvalidInput, PermissionDenied
from merchants.models import MerchantAccount, Movement, Order
from merchants.tests.factories import MerchantFactory
from risk import services
from risk.errors import (
    AccountNotEligible,
    AccountNotFound,
    AlreadyFlagged,
    AlreadyFrozen,
    HitClosed,
    HitNotFound,
    NotRestricted,
    VerificationFailed,
    VerificationRequired,
)
from risk.models import AccountAction, OwnerVerification
from risk.tests.factories import buyer_account, integration_user, open_hit, order_at

# a denial carries the words the order system shows (issue #16 item 2), Chinese by default
BUSY = "系统繁忙，请稍后再试"


@pytest.fixture
def victim(db):
    return buyer_account(username="victim", phone="13900000001", email="owner@example.com")


# --- flag, freeze, dismiss ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_supervisor_flags_then_freezes_and_the_open_hit_is_actioned(victim, supervisor):
    hit = open_hit(victim)

    services.flag_account(actor=supervisor, user_id=victim.pk, reason="疑似盗号")

    victim.refresh_from_db()
    hit.refresh_from_db()
    assert victim.account_status == "flagged"
    assert (hit.status, hit.reviewed_by, hit.review_note) == ("actioned", supervisor, "疑似盗号")
    flag = AccountAction.objects.get(kind="flag")
    assert (flag.user, flag.actor, flag.hit, flag.data) == (victim, supervisor, hit, {"status": ["active", "flagged"]})
    with pytest.raises(AlreadyFlagged) as again:
        services.flag_account(actor=supervisor, user_id=victim.pk, reason="x")
    assert (again.value.code, again.value.status) == ("already_flagged", 409)

    services.freeze_account(actor=supervisor, user_id=victim.pk, reason="确认盗号")
    assert User.objects.get(pk=victim.pk).account_status == "frozen"
    assert AccountAction.objects.get(kind="freeze").data == {"status": ["flagged", "frozen"]}
    for act in (services.flag_account, services.freeze_account):
        with pytest.raises(AlreadyFrozen):
            act(actor=supervisor, user_id=victim.pk, reason="x")


@pytest.mark.django_db
def test_only_supervisors_restrict_and_only_buyer_accounts(victim, agent, buyer, merchant_user, supervisor):
    for outsider in (agent, buyer, merchant_user):
        for act in (services.flag_account, services.freeze_account):
            with pytest.raises(PermissionDenied):
                act(actor=outsider, user_id=victim.pk, reason="x")
    for staff in (agent, integration_user()):
        with pytest.raises(AccountNotEligible):
            services.freeze_account(actor=supervisor, user_id=staff.pk, reason="x")
    with pytest.raises(AccountNotFound):
        services.freeze_account(actor=supervisor, user_id=999_999, reason="x")
    with pytest.raises(InvalidInput):
        services.freeze_account(actor=supervisor, user_id=victim.pk, reason="  ")
    assert User.objects.get(pk=victim.pk).account_status == "active"
    assert not AccountAction.objects.exists()


@pytest.mark.django_db
def test_dismissing_a_hit(victim, supervisor, agent):
    hit = open_hit(victim)
    with pytest.raises(PermissionDenied):
        services.dismiss_hit(actor=agent, hit_id=hit.pk, reason="x")
    with pytest.raises(InvalidInput):
        services.dismiss_hit(actor=supervisor, hit_id=hit.pk, reason="")
    services.dismiss_hit(actor=supervisor, hit_id=hit.pk, reason="本人出差，确认是自己下单")
    hit.refresh_from_db()
    assert (hit.status, hit.reviewed_by) == ("dismissed", supervisor)
    assert AccountAction.objects.get().kind == "dismiss_hit"
    with pytest.raises(HitClosed):
        services.dismiss_hit(actor=supervisor, hit_id=hit.pk, reason="x")
    with pytest.raises(HitNotFound):
        services.dismiss_hit(actor=supervisor, hit_id=999_999, reason="x")
    assert User.objects.get(pk=victim.pk).account_status == "active"


@pytest.mark.django_db
def test_a_flagged_buyers_remedy_still_goes_to_approval(agent, merchant, supervisor):
    victim = UserFactory(role=roles.BUYER)
    ticket = remedy_ticket(buyer=victim, agent=agent, merchant=merchant)
    services.flag_account(actor=supervisor, user_id=victim.pk, reason="疑似盗号")
    result = compensation.apply_remedy(actor=agent, ticket_id=ticket.pk, kind="coupon", reason="安抚", idempotency_key=new_key())
    assert result.status_code == 202 and "buyer_flagged" in result.body["reasons"]
    assert Remedy.objects.get().status == "pending_approval"


# --- verification and unfreeze ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("phone", "email", "id_last4", "passed"), [
    ("13900000001", "owner@example.com", False, True),
    ("+86 139-0000-0001", "OWNER@example.com ", False, True),
    ("13900000001", "", True, True),
    ("13900000001", "", False, False),           # the phone alone is not enough
    ("13900000001", "thief@example.com", False, False),
    ("13900000002", "owner@example.com", True, False),  # the phone must match
])
def test_the_owners_details_are_compared_with_the_registered_ones(victim, agent, phone, email, id_last4, passed):
    check = services.verify_owner(actor=agent, user_id=victim.pk, phone=phone, email=email,
                                  id_last4_confirmed=id_last4, note="来电核验")
    assert check.outcome == ("passed" if passed else "failed")
    assert (check.user, check.checked_by, check.note) == (victim, agent, "来电核验")


@pytest.mark.django_db
def test_verification_refuses_bad_input_and_non_staff(victim, agent, buyer, merchant_user):
    for phone in ("", "no digits", "1" * 33):
        with pytest.raises(InvalidInput):
            services.verify_owner(actor=agent, user_id=victim.pk, phone=phone)
    for outsider in (buyer, merchant_user, integration_user()):
        with pytest.raises(PermissionDenied):
            services.verify_owner(actor=outsider, user_id=victim.pk, phone="13900000001")
    with pytest.raises(AccountNotFound):
        services.verify_owner(actor=agent, user_id=999_999, phone="13900000001")
    assert not OwnerVerification.objects.exists()


@pytest.mark.django_db
def test_unfreeze_is_refused_without_a_passed_verification(victim, agent, supervisor, other_buyer):
    services.freeze_account(actor=supervisor, user_id=victim.pk, reason="盗号")
    with pytest.raises(VerificationRequired) as missing:
        services.unfreeze_account(actor=agent, user_id=victim.pk, verification_id=None)
    assert (missing.value.code, missing.value.status) == ("verification_required", 422)
    failed = services.verify_owner(actor=agent, user_id=victim.pk, phone="13900000009")
    with pytest.raises(VerificationFailed) as refused:
        services.unfreeze_account(actor=agent, user_id=victim.pk, verification_id=failed.pk)
    assert refused.value.code == "verification_failed"
    # a passed check of another account does not unfreeze this one
    other_buyer.phone = "13700000000"
    other_buyer.save()
    elsewhere = services.verify_owner(actor=agent, user_id=other_buyer.pk, phone="13700000000", id_last4_confirmed=True)
    with pytest.raises(VerificationRequired):
        services.unfreeze_account(actor=agent, user_id=victim.pk, verification_id=elsewhere.pk)
    # a passed check older than 30 minutes is stale
    stale = services.verify_owner(actor=agent, user_id=victim.pk, phone="13900000001", id_last4_confirmed=True,
                                  now=timezone.now() - timedelta(minutes=31))
    with pytest.raises(VerificationRequired):
        services.unfreeze_account(actor=agent, user_id=victim.pk, verification_id=stale.pk)
    assert User.objects.get(pk=victim.pk).account_status == "frozen"
    assert not AccountAction.objects.filter(kind="unfreeze").exists()


@pytest.mark.django_db
def test_an_agent_unfreezes_after_a_passed_check_which_is_then_used_up(victim, agent, supervisor, buyer):
    services.freeze_account(actor=supervisor, user_id=victim.pk, reason="盗号")
    check = services.verify_owner(actor=agent, user_id=victim.pk, phone="13900000001", email="owner@example.com")
    with pytest.raises(PermissionDenied):
        services.unfreeze_account(actor=buyer, user_id=victim.pk, verification_id=check.pk)

    services.unfreeze_account(actor=agent, user_id=victim.pk, verification_id=check.pk, note="本人来电")

    assert User.objects.get(pk=victim.pk).account_status == "active"
    check.refresh_from_db()
    assert check.used_at is not None
    action = AccountAction.objects.get(kind="unfreeze")
    assert (action.actor, action.reason, action.data) == (
        agent, "本人来电", {"status": ["frozen", "active"], "verification_id": check.pk})
    with pytest.raises(NotRestricted):
        services.unfreeze_account(actor=agent, user_id=victim.pk, verification_id=check.pk)
    services.flag_account(actor=supervisor, user_id=victim.pk, reason="再次可疑")
    with pytest.raises(VerificationRequired):  # used up
        services.unfreeze_account(actor=agent, user_id=victim.pk, verification_id=check.pk)


# --- cancel pending orders in bulk, and the undo ------------------------------------------------


def _pending_fen(merchant) -> int:
    account = MerchantAccount.objects.get(merchant=merchant)
    moved = Movement.objects.filter(merchant=merchant, bucket="pending").aggregate(t=Sum("amount_fen"))["t"]
    assert account.pending_fen == moved
    return account.pending_fen


@pytest.mark.django_db
def test_cancel_pending_orders_cancels_the_paid_ones_and_can_be_undone(victim, supervisor, other_buyer):
    merchant = MerchantFactory()
    now = timezone.now()
    pending = [order_at(victim, now - timedelta(hours=h), merchant=merchant, escrow=True, amount_fen=10_000)
               for h in (1, 2, 3)]
    shipped = order_at(victim, now - timedelta(hours=4), merchant=merchant, escrow=True, status="shipped")
    others = order_at(other_buyer, now, merchant=merchant, escrow=True, amount_fen=5_000)
    hit = open_hit(victim)
    before = _pending_fen(merchant)

    result = services.cancel_pending_orders(actor=supervisor, user_id=victim.pk, reason="盗号下单")

    assert sorted(o.pk for o in result.done) == sorted(o.pk for o in pending) and result.skipped == []
    assert _pending_fen(merchant) == before - 30_000
    assert Order.objects.get(pk=shipped.pk).status == "shipped"
    assert Order.objects.get(pk=others.pk).status == "paid"
    assert result.undo_until > now
    hit.refresh_from_db()
    assert hit.status == "actioned"
    action = AccountAction.objects.get(kind="cancel_orders")
    assert sorted(action.data["order_ids"]) == sorted(o.pk for o in pending) and action.actor == supervisor

    again = services.cancel_pending_orders(actor=supervisor, user_id=victim.pk, reason="盗号下单")
    assert again.done == [] and again.skipped == []  # nothing pending is left

    undone = services.restore_cancelled_orders(actor=supervisor, user_id=victim.pk,
                                               order_ids=[o.pk for o in pending] + [others.pk])
    assert sorted(o.pk for o in undone.done) == sorted(o.pk for o in pending)
    assert undone.skipped == [(others.pk, "not_found")]
    assert _pending_fen(merchant) == before
    assert AccountAction.objects.filter(kind="restore_orders").count() == 1


@pytest.mark.django_db
def test_cancel_exactly_the_confirmed_orders_and_report_the_rest(victim, supervisor, other_buyer):
    merchant = MerchantFactory()
    now = timezone.now()
    a, b, c = (order_at(victim, now - timedelta(hours=h), merchant=merchant, escrow=True) for h in (1, 2, 3))
    shipped = order_at(victim, now, merchant=merchant, escrow=True, status="shipped")
    foreign = order_at(other_buyer, now, merchant=merchant, escrow=True)

    result = services.cancel_pending_orders(actor=supervisor, user_id=victim.pk, reason="盗号",
                                            order_ids=[a.pk, b.pk, shipped.pk, foreign.pk, a.pk])

    assert [o.pk for o in result.done] == [a.pk, b.pk]
    assert result.skipped == [(shipped.pk, "already_shipped"), (foreign.pk, "not_found")]
    assert Order.objects.get(pk=c.pk).status == "paid"
    assert Order.objects.get(pk=foreign.pk).status == "paid"
    repeat = services.cancel_pending_orders(actor=supervisor, user_id=victim.pk, reason="盗号", order_ids=[a.pk])
    assert repeat.skipped == [(a.pk, "already_cancelled")]


@pytest.mark.django_db
def test_the_undo_is_refused_after_the_window(victim, supervisor, settings):
    order = order_at(victim, timezone.now(), escrow=True)
    services.cancel_pending_orders(actor=supervisor, user_id=victim.pk, reason="盗号")
    late = services.restore_cancelled_orders(actor=supervisor, user_id=victim.pk, order_ids=[order.pk],
                                             now=timezone.now() + timedelta(seconds=settings.CANCEL_UNDO_WINDOW_S + 1))
    assert late.done == [] and late.skipped == [(order.pk, "undo_expired")]
    assert Order.objects.get(pk=order.pk).status == "cancelled"


@pytest.mark.django_db
def test_bulk_cancel_refuses_agents_and_bad_input(victim, agent, supervisor):
    order = order_at(victim, timezone.now(), escrow=True)
    with pytest.raises(PermissionDenied):
        services.cancel_pending_orders(actor=agent, user_id=victim.pk, reason="x")
    with pytest.raises(PermissionDenied):
        services.restore_cancelled_orders(actor=agent, user_id=victim.pk, order_ids=[order.pk])
    for ids in ([], ["1"], [True], "1,2", list(range(1, 502))):
        with pytest.raises(InvalidInput):
            services.cancel_pending_orders(actor=supervisor, user_id=victim.pk, reason="x", order_ids=ids)
    with pytest.raises(InvalidInput):
        services.cancel_pending_orders(actor=supervisor, user_id=victim.pk, reason="")
    with pytest.raises(AccountNotFound):
        services.cancel_pending_orders(actor=supervisor, user_id=999_999, reason="x")
    assert Order.objects.get(pk=order.pk).status == "paid"


# --- the order system's check -------------------------------------------------------------------


def _blacklist(supervisor, kind, value, days=3):
    return compensation.add_to_blacklist(actor=supervisor, kind=kind, value=value, reason="风控", window_days=days)


@pytest.mark.django_db
def test_risk_check_allows_a_clean_booking_and_denies_restricted_accounts(victim, supervisor):
    system = integration_user()
    assert services.risk_check(actor=system, account="victim", ip="203.0.113.1", device="d1") == \
        services.RiskDecision("allow", [])
    services.flag_account(actor=supervisor, user_id=victim.pk, reason="疑似盗号")
    assert services.risk_check(actor=system, account="victim") == services.RiskDecision("deny", ["account_flagged"], BUSY)
    services.freeze_account(actor=supervisor, user_id=victim.pk, reason="盗号")
    assert services.risk_check(actor=system, account="victim") == services.RiskDecision("deny", ["account_frozen"], BUSY)


@pytest.mark.django_db
def test_risk_check_denies_blacklisted_accounts_ips_and_devices(victim, supervisor, agent):
    _blacklist(supervisor, "ip", "192.0.2.66")
    _blacklist(supervisor, "device", "thief-laptop")
    _blacklist(supervisor, "account", "victim")
    _blacklist(supervisor, "ip", "2001:db8::1")
    check = services.risk_check
    assert check(actor=agent, ip="192.0.2.66") == services.RiskDecision("deny", ["ip_blacklisted"], BUSY)
    assert check(actor=agent, device="thief-laptop") == services.RiskDecision("deny", ["device_blacklisted"], BUSY)
    assert check(actor=agent, account="victim", ip="192.0.2.66", device="thief-laptop") == \
        services.RiskDecision("deny", ["account_blacklisted", "ip_blacklisted", "device_blacklisted"], BUSY)
    assert check(actor=agent, ip="2001:DB8:0::1").reasons == ["ip_blacklisted"]  # the same address, written otherwise
    assert check(actor=agent, ip="192.0.2.67", device="other").decision == "allow"
    BlacklistEntry.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert check(actor=agent, account="victim", ip="192.0.2.66", device="thief-laptop").decision == "allow"


@pytest.mark.django_db
def test_an_unknown_account_is_judged_by_the_blacklist_alone(supervisor, agent):
    assert services.risk_check(actor=agent, account="nobody-here") == services.RiskDecision("allow", [])
    _blacklist(supervisor, "account", "nobody-here")
    assert services.risk_check(actor=agent, account="nobody-here").reasons == ["account_blacklisted"]


@pytest.mark.django_db
def test_risk_check_scoping_and_bad_input(victim, buyer, merchant_user, agent):
    for outsider in (buyer, merchant_user, victim):
        with pytest.raises(PermissionDenied):
            services.risk_check(actor=outsider, account="victim")
    for bad in ({}, {"account": " "}, {"ip": "300.1.1.1"}, {"ip": "not-an-ip"}, {"device": "d" * 129},
                {"account": "a" * 151}):
        with pytest.raises(InvalidInput):
            services.risk_check(actor=agent, **bad)


@pytest.mark.django_db
def test_risk_check_costs_two_queries(victim, supervisor, django_assert_num_queries):
    system = integration_user()
    roles.is_integration(system)  # the permission cache, as one request warms it
    _blacklist(supervisor, "ip", "192.0.2.66")
    with django_assert_num_queries(2):
        services.risk_check(actor=system, account="victim", ip="192.0.2.66", device="d1")
