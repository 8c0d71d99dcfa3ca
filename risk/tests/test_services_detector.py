"""The dormant-burst rule on crafted histories: dormant + orders at ≥3 hours → a hit."""

from datetime import timedelta

import pytest
from django.utils.dateparse import parse_datetime

from risk import services
from risk.models import RiskHit
from risk.tests.factories import NOW, buyer_account, login, order_at, stolen_history


def detect(**kwargs):
    return services.detect_stolen_accounts(now=NOW, **kwargs)


@pytest.mark.django_db
def test_dormant_account_ordering_at_three_hours_is_caught_with_its_evidence():
    user, orders = stolen_history(dormant_days=120, hours_ago=(1, 5, 10))

    result = detect()

    hit = RiskHit.objects.get()
    assert result.created == [hit] and hit.user == user and hit.status == "open"
    assert hit.rule == "dormant_burst"
    evidence = hit.evidence
    assert evidence["order_count"] == 3
    assert evidence["slots"] == [10, 15, 19]  # 20:30 − 10 h, − 5 h, − 1 h, Shanghai time
    assert [o["order_no"] for o in evidence["orders"]] == [o.order_no for o in reversed(orders)]
    assert evidence["dormant_days"] == 120 and evidence["last_seen_kind"] == "login"
    assert parse_datetime(evidence["reactivated_at"]) == NOW - timedelta(hours=12)  # the thief's sign-in
    assert evidence["thresholds"] == {"dormant_days": 90, "window_hours": 24, "min_orders": 3, "min_slots": 3}
    assert (hit.first_order_at, hit.last_order_at) == (orders[-1].placed_at, orders[0].placed_at)


@pytest.mark.django_db
def test_an_active_account_ordering_a_lot_is_not_caught():
    user = buyer_account()
    login(user, NOW - timedelta(days=30))
    for hours in (1, 5, 10, 14):
        order_at(user, NOW - timedelta(hours=hours))
    assert detect().created == [] and not RiskHit.objects.exists()


@pytest.mark.django_db
def test_a_burst_in_one_or_two_hours_is_not_caught():
    one_slot, _ = stolen_history(hours_ago=(1, 1, 1))
    two_slots, _ = stolen_history(hours_ago=(1, 1, 6))
    assert detect().created == []
    assert not RiskHit.objects.filter(user__in=[one_slot, two_slots]).exists()


@pytest.mark.django_db
def test_exactly_at_the_thresholds_is_caught_and_just_below_is_not():
    at_threshold, _ = stolen_history(dormant_days=90, hours_ago=(1, 2, 3))
    too_recent = buyer_account()
    stolen_history(user=too_recent, dormant_days=90, hours_ago=(1, 2, 3))
    # one more login a minute inside the 90 days
    first = NOW - timedelta(hours=3)
    login(too_recent, first - timedelta(hours=2) - timedelta(days=90) + timedelta(minutes=1))
    two_orders, _ = stolen_history(dormant_days=200, hours_ago=(1, 2))

    detect()

    assert list(RiskHit.objects.values_list("user_id", flat=True)) == [at_threshold.pk]
    assert RiskHit.objects.get().evidence["dormant_days"] == 90


@pytest.mark.django_db
def test_the_window_is_the_last_24_hours_exactly():
    inside, _ = stolen_history(hours_ago=(1, 5))
    order_at(inside, NOW - timedelta(hours=24) + timedelta(seconds=1))
    outside, _ = stolen_history(hours_ago=(1, 5))
    order_at(outside, NOW - timedelta(hours=24))  # on the edge: outside (now − 24 h, now]
    detect()
    assert list(RiskHit.objects.values_list("user_id", flat=True)) == [inside.pk]


@pytest.mark.django_db
def test_the_detector_is_idempotent_and_keeps_one_open_hit_up_to_date():
    user, _ = stolen_history(hours_ago=(2, 6, 11))
    assert len(detect().created) == 1
    again = detect()
    assert again.created == [] and again.updated == []
    order_at(user, NOW - timedelta(minutes=10))
    later = detect()
    assert later.created == [] and len(later.updated) == 1
    hit = RiskHit.objects.get()
    assert hit.evidence["order_count"] == 4 and hit.evidence["slots"] == [9, 14, 18, 20]


@pytest.mark.django_db
def test_a_reviewed_burst_is_not_raised_again(supervisor):
    stolen_history()
    hit = detect().created[0]
    services.dismiss_hit(actor=supervisor, hit_id=hit.pk, reason="本人确认是自己下单")
    assert detect().created == []
    assert RiskHit.objects.get().status == "dismissed"


@pytest.mark.django_db
def test_an_account_never_active_since_joining_long_ago_is_dormant_but_a_new_one_is_not():
    old = buyer_account(joined=NOW - timedelta(days=300))
    new = buyer_account(joined=NOW - timedelta(days=10))
    for user in (old, new):
        for hours in (1, 4, 8):
            order_at(user, NOW - timedelta(hours=hours))
    detect()
    hit = RiskHit.objects.get()
    assert hit.user == old and hit.evidence["last_seen_kind"] == "joined"
    assert hit.evidence["dormant_days"] == 299  # joined 300 days before now, back with the first order 8 h ago


@pytest.mark.django_db
def test_an_old_order_counts_as_activity_like_a_login():
    ordered_recently = buyer_account()
    order_at(ordered_recently, NOW - timedelta(days=20))
    ordered_long_ago = buyer_account()
    order_at(ordered_long_ago, NOW - timedelta(days=100))
    for user in (ordered_recently, ordered_long_ago):
        for hours in (1, 4, 8):
            order_at(user, NOW - timedelta(hours=hours))
    detect()
    hit = RiskHit.objects.get()
    assert hit.user == ordered_long_ago and hit.evidence["last_seen_kind"] == "order"


@pytest.mark.django_db
def test_thresholds_come_from_the_settings(settings):
    stolen_history(dormant_days=120, hours_ago=(1, 5, 10))
    settings.RISK_BURST_MIN_ORDERS = 4
    assert detect().created == []
    settings.RISK_BURST_MIN_ORDERS = 3
    settings.RISK_DORMANT_DAYS = 150
    assert detect().created == []
    settings.RISK_DORMANT_DAYS = 90
    settings.RISK_BURST_MIN_SLOTS = 2
    assert len(detect().created) == 1


@pytest.mark.django_db
def test_the_periodic_job_runs_the_detector(settings):
    from celery import current_app as app
    from risk.tasks import detect_stolen_accounts

    app.loader.import_default_modules()
    entry = settings.CELERY_BEAT_SCHEDULE["stolen-account-detector"]
    assert entry["task"] == "risk.tasks.detect_stolen_accounts" and entry["task"] in app.tasks
    stolen_history(now=NOW.__class__.now(NOW.tzinfo))
    assert detect_stolen_accounts.delay().get() == 1
    assert detect_stolen_accounts.delay().get() == 0


@pytest.mark.django_db
def test_a_sign_in_from_before_the_login_history_still_counts():
    from accounts.models import User

    user = buyer_account()
    User.objects.filter(pk=user.pk).update(last_login=NOW - timedelta(days=3))
    for hours in (1, 4, 8):
        order_at(user, NOW - timedelta(hours=hours))
    assert detect().created == []
