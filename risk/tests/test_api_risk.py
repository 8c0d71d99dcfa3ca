"""The risk API: the order system's check (its token or staff only), the
review list and the account actions."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from compensation import services as compensation
from merchants.models import Order
from risk.models import OwnerVerification, RiskHit
from risk.tests.factories import buyer_account, integration_user, open_hit, order_at

CHECK = "/api/v1/risk/check/"


@pytest.fixture
def victim(db):
    return buyer_account(username="victim", phone="13900000001", email="owner@example.com")


@pytest.mark.django_db
def test_only_the_order_systems_token_and_staff_may_ask(api, victim, buyer, merchant_user, agent, supervisor):
    query = {"account": "victim", "ip": "203.0.113.5", "device": "app-1"}
    assert api(None).get(CHECK, query).status_code == 401
    for outsider in (buyer, merchant_user, victim):
        response = api(outsider).get(CHECK, query)
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    for caller in (integration_user(), agent, supervisor):
        response = api(caller).get(CHECK, query)
        assert response.status_code == 200
        assert response.json() == {"decision": "allow", "reasons": [], "message": ""}


@pytest.mark.django_db
def test_the_order_system_gets_a_deny_for_a_frozen_account_and_blacklisted_ip(api, victim, supervisor):
    from risk import services

    system = api(integration_user())
    services.freeze_account(actor=supervisor, user_id=victim.pk, reason="盗号")
    compensation.add_to_blacklist(actor=supervisor, kind="ip", value="192.0.2.66", reason="撞库", window_days=7)
    response = system.get(CHECK, {"account": "victim", "ip": "192.0.2.66"})
    assert response.status_code == 200
    assert response.json() == {"decision": "deny", "reasons": ["account_frozen", "ip_blacklisted"],
                               "message": "系统繁忙，请稍后再试"}


@pytest.mark.django_db
@pytest.mark.parametrize("query", [{}, {"ip": "999.1.1.1"}, {"account": "a" * 151}, {"device": "d" * 129}])
def test_bad_check_input_is_a_400_with_a_code(api, agent, query):
    response = api(integration_user()).get(CHECK, query)
    assert response.status_code == 400 and response.json()["code"] == "invalid"


@pytest.mark.django_db
def test_the_integration_token_reaches_only_the_integration_endpoints(api, victim):
    system = api(integration_user())
    assert system.get("/api/v1/risk/hits/").status_code == 403
    assert system.post(f"/api/v1/risk/accounts/{victim.pk}/freeze/", {"reason": "x"}, format="json").status_code == 403
    assert User.objects.get(pk=victim.pk).account_status == "active"


@pytest.mark.django_db
def test_review_list_for_staff_with_filters(api, victim, agent, buyer, other_buyer, supervisor):
    hit = open_hit(victim)
    other = buyer_account()
    closed = open_hit(other)
    RiskHit.objects.filter(pk=closed.pk).update(status="dismissed")
    assert api(buyer).get("/api/v1/risk/hits/").status_code == 403

    body = api(agent).get("/api/v1/risk/hits/").json()
    assert body["count"] == 2
    response = api(agent).get("/api/v1/risk/hits/", {"status": "open"}).json()
    assert [row["id"] for row in response["results"]] == [hit.pk]
    row = response["results"][0]
    assert (row["account_id"], row["username"], row["account_status"], row["rule"]) == (
        victim.pk, "victim", "active", "dormant_burst")
    assert row["evidence"]["dormant_days"] == 150 and len(row["evidence"]["orders"]) == 3
    assert api(agent).get("/api/v1/risk/hits/", {"account": other.pk}).json()["count"] == 1
    for bad in ({"status": "lost"}, {"account": "x"}):
        wrong = api(agent).get("/api/v1/risk/hits/", bad)
        assert wrong.status_code == 400 and wrong.json()["code"] == "invalid"


@pytest.mark.django_db
def test_review_list_query_count_is_flat(api, agent, django_assert_max_num_queries):
    client = api(agent)
    for _ in range(10):
        open_hit(buyer_account())
    with CaptureQueriesContext(connection) as ten:
        client.get("/api/v1/risk/hits/", {"page_size": 200})
    for _ in range(90):
        open_hit(buyer_account())
    with django_assert_max_num_queries(len(ten.captured_queries)):
        body = client.get("/api/v1/risk/hits/", {"page_size": 200}).json()
    assert body["count"] == 100 and len(body["results"]) == 100


@pytest.mark.django_db
def test_flag_freeze_and_dismiss_through_the_api(api, victim, agent, supervisor):
    hit = open_hit(victim)
    assert api(agent).post(f"/api/v1/risk/accounts/{victim.pk}/flag/", {"reason": "x"}, format="json").status_code == 403
    lead = api(supervisor)
    missing = lead.post(f"/api/v1/risk/accounts/{victim.pk}/flag/", {}, format="json")
    assert missing.status_code == 400 and missing.json()["code"] == "invalid"
    flagged = lead.post(f"/api/v1/risk/accounts/{victim.pk}/flag/", {"reason": "疑似盗号"}, format="json")
    assert flagged.status_code == 200
    assert flagged.json() == {"id": victim.pk, "username": "victim", "account_status": "flagged"}
    again = lead.post(f"/api/v1/risk/accounts/{victim.pk}/flag/", {"reason": "x"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "already_flagged"
    frozen = lead.post(f"/api/v1/risk/accounts/{victim.pk}/freeze/", {"reason": "盗号"}, format="json")
    assert frozen.json()["account_status"] == "frozen"
    assert lead.post("/api/v1/risk/accounts/999999/freeze/", {"reason": "x"}, format="json").status_code == 404
    closed = lead.post(f"/api/v1/risk/hits/{hit.pk}/dismiss/", {"reason": "x"}, format="json")
    assert closed.status_code == 409 and closed.json()["code"] == "hit_closed"  # the freeze actioned it
    fresh = open_hit(buyer_account())
    dismissed = lead.post(f"/api/v1/risk/hits/{fresh.pk}/dismiss/", {"reason": "本人"}, format="json")
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"


@pytest.mark.django_db
def test_unfreeze_through_the_api_records_every_check(api, victim, agent, supervisor):
    from risk import services

    services.freeze_account(actor=supervisor, user_id=victim.pk, reason="盗号")
    url = f"/api/v1/risk/accounts/{victim.pk}/unfreeze/"
    failed = api(agent).post(url, {"phone": "13900000001", "email": "thief@example.com"}, format="json")
    assert failed.status_code == 422
    assert failed.json()["code"] == "verification_failed" and failed.json()["verification_id"]
    assert User.objects.get(pk=victim.pk).account_status == "frozen"
    bad = api(agent).post(url, {"email": "owner@example.com"}, format="json")
    assert bad.status_code == 400
    passed = api(agent).post(url, {"phone": "139 0000 0001", "email": "owner@example.com", "note": "本人来电"},
                             format="json")
    assert passed.status_code == 200 and passed.json()["account_status"] == "active"
    assert list(OwnerVerification.objects.order_by("pk").values_list("outcome", flat=True)) == ["failed", "passed"]
    not_frozen = api(agent).post(url, {"phone": "13900000001", "email": "owner@example.com"}, format="json")
    assert not_frozen.status_code == 409 and not_frozen.json()["code"] == "not_restricted"


@pytest.mark.django_db
def test_cancel_and_restore_orders_through_the_api(api, victim, agent, supervisor):
    now = timezone.now()
    orders = [order_at(victim, now - timedelta(hours=h), escrow=True, amount_fen=12_300) for h in (1, 2)]
    shipped = order_at(victim, now, escrow=True, status="shipped")
    url = f"/api/v1/risk/accounts/{victim.pk}/cancel-orders/"
    assert api(agent).post(url, {"reason": "盗号"}, format="json").status_code == 403
    response = api(supervisor).post(url, {"reason": "盗号", "order_ids": [o.pk for o in orders] + [shipped.pk]},
                                    format="json")
    assert response.status_code == 200
    body = response.json()
    assert [line["order_id"] for line in body["orders"]] == [o.pk for o in orders]
    assert all(line["status"] == "cancelled" and line["amount_fen"] == 12_300 for line in body["orders"])
    assert body["skipped"] == [{"order_id": shipped.pk, "code": "already_shipped"}]
    assert body["undo_until"]
    bad = api(supervisor).post(url, {"reason": "盗号", "order_ids": "all"}, format="json")
    assert bad.status_code == 400

    restore = api(supervisor).post(f"/api/v1/risk/accounts/{victim.pk}/restore-orders/",
                                   {"order_ids": [orders[0].pk]}, format="json")
    assert restore.status_code == 200 and restore.json()["orders"][0]["status"] == "paid"
    assert Order.objects.get(pk=orders[1].pk).status == "cancelled"
