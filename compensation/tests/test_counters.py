"""``caps_snapshot``: the policy in force and what is used of it, read in one
statement, on either database."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import LoginEvent
from compensation import counters
from compensation.models import AgentQuota, BlacklistEntry, BudgetDay, BuyerCounter, Policy

PERIOD = "2026-11"


def snapshot(agent, buyer, *, now=None):
    now = now or timezone.now()
    with CaptureQueriesContext(connection) as queries:
        caps = counters.caps_snapshot(agent_id=agent.pk, buyer_id=buyer.pk if buyer else None,
                                      buyer_username=buyer.username if buyer else "", day=timezone.localdate(now),
                                      period=PERIOD, now=now)
    assert len(queries) == 1
    return caps


def listed(kind, value, *, expires_in=timedelta(days=1)):
    return BlacklistEntry.objects.create(kind=kind, value=value, reason="test", expires_at=timezone.now() + expires_in)


@pytest.mark.django_db
def test_before_anyone_changed_the_policy_its_defaults_and_nothing_used(agent, buyer):
    caps = snapshot(agent, buyer)
    defaults = Policy()
    assert not Policy.objects.exists()
    assert (caps.value_cap_fen, caps.coupon_fen, caps.coupon_max_fen, caps.coupon_days, caps.agent_monthly_quota,
            caps.buyer_daily_cap, caps.daily_budget_fen) == (
        defaults.value_cap_fen, defaults.coupon_fen, defaults.coupon_max_fen, defaults.coupon_days,
        defaults.agent_monthly_quota, defaults.buyer_daily_cap, defaults.daily_budget_fen)
    assert (caps.quota_used, caps.buyer_count, caps.spent_fen, caps.budget_fen, caps.breaker_open, caps.blacklisted) == (
        0, 0, 0, defaults.daily_budget_fen, False, False)


@pytest.mark.django_db
def test_the_policy_and_the_counters_of_this_agent_buyer_and_day(agent, buyer, other_buyer):
    Policy.objects.create(pk=1, value_cap_fen=7_000, coupon_fen=800, agent_monthly_quota=9, buyer_daily_cap=4,
                          daily_budget_fen=50_000)
    today = timezone.localdate()
    AgentQuota.objects.create(agent=agent, period=PERIOD, used=5)
    AgentQuota.objects.create(agent=agent, period="2026-10", used=60)
    BuyerCounter.objects.create(buyer=buyer, date=today, count=2)
    BuyerCounter.objects.create(buyer=other_buyer, date=today, count=3)
    BuyerCounter.objects.create(buyer=buyer, date=today - timedelta(days=1), count=1)
    BudgetDay.objects.create(date=today, budget_fen=40_000, spent_fen=12_345, breaker_open=True)
    BudgetDay.objects.create(date=today - timedelta(days=1), budget_fen=1, spent_fen=1)
    caps = snapshot(agent, buyer)
    assert (caps.value_cap_fen, caps.coupon_fen, caps.agent_monthly_quota, caps.buyer_daily_cap,
            caps.daily_budget_fen) == (7_000, 800, 9, 4, 50_000)
    assert (caps.quota_used, caps.buyer_count, caps.spent_fen, caps.budget_fen, caps.breaker_open) == (
        5, 2, 12_345, 40_000, True)


@pytest.mark.django_db
def test_blacklisted_by_account_only_while_the_entry_lasts(agent, buyer):
    entry = listed("account", buyer.username)
    assert snapshot(agent, buyer).blacklisted
    BlacklistEntry.objects.filter(pk=entry.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not snapshot(agent, buyer).blacklisted
    listed("ip", buyer.username)  # a value of another kind is not the account
    assert not snapshot(agent, buyer).blacklisted


@pytest.mark.django_db
def test_blacklisted_by_the_address_or_device_of_the_latest_login_only(agent, buyer, other_buyer):
    now = timezone.now()
    LoginEvent.objects.create(user=buyer, at=now - timedelta(hours=2), ip="203.0.113.7", device="farm-9", source="token")
    LoginEvent.objects.create(user=buyer, at=now - timedelta(hours=1), ip="198.51.100.4", device="", source="token")
    LoginEvent.objects.create(user=other_buyer, at=now, ip="192.0.2.1", device="phone-1", source="token")
    listed("ip", "203.0.113.7")  # an older address of the buyer
    listed("device", "phone-1")  # someone else's device
    assert not snapshot(agent, buyer).blacklisted
    listed("device", "farm-9")  # the latest login had no device: the latest that had one counts
    assert snapshot(agent, buyer).blacklisted
    BlacklistEntry.objects.filter(kind="device").delete()
    listed("ip", "198.51.100.4")  # the latest address, as written without a netmask
    assert snapshot(agent, buyer).blacklisted
    assert not snapshot(agent, other_buyer).blacklisted


@pytest.mark.django_db
def test_a_ticket_without_a_buyer_counts_no_buyer(agent, buyer):
    BuyerCounter.objects.create(buyer=buyer, date=timezone.localdate(), count=2)
    LoginEvent.objects.create(user=buyer, ip="203.0.113.7", device="farm-9", source="token")
    listed("ip", "203.0.113.7")
    caps = snapshot(agent, None)
    assert caps.buyer_count == 0 and not caps.blacklisted


@pytest.mark.django_db
def test_reading_the_caps_writes_nothing(agent, buyer):
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        snapshot(agent, buyer)
    assert [q["sql"].lstrip()[:6].upper() for q in queries.captured_queries] == ["SELECT"]
    assert not Policy.objects.exists() and not BudgetDay.objects.exists()
