"""Issue #16 item 1: the blacklist at every door (login by API and form,
ticket intake by API and chat page, chat messages, remedies by the buyer's
address or device, merchant payouts), and the automatic rule over a rolling
window of accounts, IPs and devices, with the counts that tripped it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken, LoginEvent
from accounts.tests.factories import PASSWORD
from compensation import services
from compensation.models import BlacklistEntry, BuyerCounter, Policy, PolicyChange, Remedy
from core.errors import Blacklisted, InvalidInput
from merchants import services as merchant_services
from merchants.models import Payout
from merchants.tests.factories import fund
from tickets.models import Message, Ticket
from tickets.rules import viewer_of
from tickets.services.chat import ChatPost, store_chat_batch
from tickets.tests.factories import open_ticket

BUSY_ZH = "系统繁忙，请稍后再试"
BUSY_EN = "System busy, please try later"


def listed(kind, value, days=3):
    now = timezone.now()
    return BlacklistEntry.objects.create(kind=kind, value=value, reason="test", window_days=days,
                                         expires_at=now + timedelta(days=days), created_at=now)


# --- login ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_login_of_a_blacklisted_buyer_is_refused_with_system_busy(api, buyer):
    listed("account", buyer.username)
    response = api(None).post("/api/v1/auth/token/", {"username": buyer.username, "password": PASSWORD},
                              format="json", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert response.status_code == 403
    assert response.json() == {"code": "blacklisted", "detail": BUSY_ZH}
    assert not ApiToken.objects.filter(user=buyer).exists()
    english = api(None).post("/api/v1/auth/token/", {"username": buyer.username, "password": PASSWORD},
                             format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert english.json()["detail"] == BUSY_EN


@pytest.mark.django_db
def test_api_login_from_a_blacklisted_ip_or_device_is_refused(api, buyer, other_buyer):
    listed("ip", "198.51.100.9")
    listed("device", "phone-77")
    by_ip = api(None).post("/api/v1/auth/token/", {"username": buyer.username, "password": PASSWORD}, format="json",
                           REMOTE_ADDR="198.51.100.9")
    by_device = api(None).post("/api/v1/auth/token/", {"username": other_buyer.username, "password": PASSWORD},
                               format="json", HTTP_X_DEVICE_ID="phone-77")
    assert by_ip.status_code == by_device.status_code == 403
    assert not ApiToken.objects.exists()
    # an expired entry refuses nobody
    BlacklistEntry.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    ok = api(None).post("/api/v1/auth/token/", {"username": buyer.username, "password": PASSWORD}, format="json",
                        REMOTE_ADDR="198.51.100.9")
    assert ok.status_code == 200


@pytest.mark.django_db
def test_staff_are_told_what_is_listed(api, merchant_user):
    listed("account", merchant_user.username)
    response = api(None).post("/api/v1/auth/token/", {"username": merchant_user.username, "password": PASSWORD},
                              format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "blacklisted" and body["listed"] == ["account"] and "blacklist" in body["detail"]


@pytest.mark.django_db
def test_form_login_of_a_blacklisted_buyer_shows_system_busy(client, buyer):
    listed("account", buyer.username)
    response = client.post("/accounts/login/", {"username": buyer.username, "password": PASSWORD},
                           HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200  # the form again, not a redirect
    assert BUSY_ZH in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not LoginEvent.objects.filter(user=buyer).exists()


# --- ticket intake and chat ------------------------------------------------------------------------


@pytest.mark.django_db
def test_ticket_intake_by_api_refuses_a_blacklisted_buyer(api, buyer):
    listed("account", buyer.username)
    response = api(buyer).post("/api/v1/tickets/", {"category": "logistics_delay", "subject": "s", "body": "b"},
                               format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 403 and response.json() == {"code": "blacklisted", "detail": BUSY_EN}
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_ticket_intake_by_api_refuses_a_blacklisted_device(api, buyer):
    listed("device", "dev-x")
    response = api(buyer).post("/api/v1/tickets/", {"category": "logistics_delay", "subject": "s", "body": "b"},
                               format="json", HTTP_X_DEVICE_ID="dev-x")
    assert response.status_code == 403
    assert not Ticket.objects.exists()
    ok = api(buyer).post("/api/v1/tickets/", {"category": "logistics_delay", "subject": "s", "body": "b"},
                         format="json", HTTP_X_DEVICE_ID="dev-y")
    assert ok.status_code == 201


@pytest.mark.django_db
def test_an_agent_opening_for_a_blacklisted_buyer_is_refused_and_told_why(api, buyer, agent):
    listed("account", buyer.username)
    response = api(agent).post("/api/v1/tickets/", {"category": "logistics_delay", "subject": "s", "body": "b",
                                                    "buyer_id": buyer.pk, "channel": "phone"}, format="json")
    assert response.status_code == 403 and response.json()["listed"] == ["account"]
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_the_chat_page_refuses_to_start_a_chat_for_a_blacklisted_buyer(client, buyer):
    listed("account", buyer.username)
    client.force_login(buyer)
    response = client.post("/chat/start/", {"category": "other", "body": "在吗"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 403
    assert BUSY_ZH in response.content.decode()
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_messages_from_a_blacklisted_buyer_are_refused_by_api_and_socket_batch(api, buyer, agent):
    ticket = open_ticket(buyer=buyer)
    before = Message.objects.filter(ticket=ticket).count()
    listed("account", buyer.username)
    response = api(buyer).post(f"/api/v1/tickets/{ticket.pk}/messages/", {"body": "还在吗"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "blacklisted"
    outcome = store_chat_batch(posts=[ChatPost(viewer_of(buyer), ticket.pk, "还在吗", "c1")], reads=[])
    assert isinstance(outcome.results[0], Blacklisted)
    # the agent still answers on the ticket
    staff = store_chat_batch(posts=[ChatPost(viewer_of(agent), ticket.pk, "您好", "c2")], reads=[])
    assert staff.results[0].seq
    assert Message.objects.filter(ticket=ticket).count() == before + 1


@pytest.mark.django_db
def test_the_socket_batch_refuses_a_blacklisted_ip(buyer):
    ticket = open_ticket(buyer=buyer)
    listed("ip", "203.0.113.50")
    outcome = store_chat_batch(posts=[ChatPost(viewer_of(buyer), ticket.pk, "x", None, "203.0.113.50", "")],
                               reads=[])
    assert isinstance(outcome.results[0], Blacklisted)
    clean = store_chat_batch(posts=[ChatPost(viewer_of(buyer), ticket.pk, "x", None, "203.0.113.51", "")], reads=[])
    assert clean.results[0].seq


# --- remedies and payouts ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_remedy_is_refused_when_the_buyers_last_address_is_listed(api, buyer, agent, order):
    LoginEvent.objects.create(user=buyer, ip="192.0.2.33", device="dev-r", source="token")
    ticket = open_ticket(buyer=buyer, order=order)
    listed("ip", "192.0.2.33")
    response = api(agent).post(f"/api/v1/tickets/{ticket.pk}/remedies/", {"kind": "coupon", "reason": "延误"},
                               format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert response.status_code == 422 and response.json()["code"] == "buyer_blacklisted"
    BlacklistEntry.objects.all().delete()
    listed("device", "dev-r")
    again = api(agent).post(f"/api/v1/tickets/{ticket.pk}/remedies/", {"kind": "coupon", "reason": "延误"},
                            format="json", HTTP_IDEMPOTENCY_KEY="r2")
    assert again.status_code == 422
    assert not Remedy.objects.exists()


@pytest.mark.django_db
def test_a_payout_by_blacklisted_merchant_staff_is_refused_and_takes_nothing(api, merchant, merchant_user):
    fund(merchant, available_fen=10_000)
    listed("account", merchant_user.username)
    response = api(merchant_user).post(f"/api/v1/merchants/{merchant.pk}/payouts/", {"amount_fen": 1_000},
                                       format="json", HTTP_IDEMPOTENCY_KEY="p1")
    assert response.status_code == 403 and response.json()["code"] == "blacklisted"
    assert not Payout.objects.exists()
    with pytest.raises(Blacklisted):
        merchant_services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=1, idempotency_key="k")
    BlacklistEntry.objects.all().delete()
    listed("ip", "192.0.2.80")
    by_ip = api(merchant_user).post(f"/api/v1/merchants/{merchant.pk}/payouts/", {"amount_fen": 1_000},
                                    format="json", HTTP_IDEMPOTENCY_KEY="p2", REMOTE_ADDR="192.0.2.80")
    assert by_ip.status_code == 403 and not Payout.objects.exists()


# --- the automatic rule over a rolling window ------------------------------------------------------


@pytest.mark.django_db
def test_counts_over_the_window_blacklist_an_account_and_record_what_tripped(buyer, other_buyer):
    today = timezone.localdate()
    # 2 a day over 2 days: 4 > 3 in the 3-day window, though never more than 3 on one day
    BuyerCounter.objects.create(buyer=buyer, date=today, count=2)
    BuyerCounter.objects.create(buyer=buyer, date=today - timedelta(days=1), count=2)
    # outside the window: not counted
    BuyerCounter.objects.create(buyer=other_buyer, date=today - timedelta(days=3), count=9)
    BuyerCounter.objects.create(buyer=other_buyer, date=today, count=1)

    added = services.blacklist_from_recent_counts()

    assert [(e.kind, e.value) for e in added] == [("account", buyer.username)]
    entry = added[0]
    assert entry.source == "rolling_counts" and entry.window_days == 7
    assert entry.counts["tripped"] == ["remedies"] and entry.counts["counts"]["remedies"] == 4
    assert entry.counts["window_days"] == 3 and entry.counts["limits"]["remedies"] == 3
    assert timedelta(days=6, hours=23) < entry.expires_at - timezone.now() <= timedelta(days=7)
    assert services.blacklist_from_recent_counts() == []  # idempotent


@pytest.mark.django_db
def test_the_window_is_a_policy_setting(buyer, supervisor):
    today = timezone.localdate()
    BuyerCounter.objects.create(buyer=buyer, date=today - timedelta(days=5), count=3)
    BuyerCounter.objects.create(buyer=buyer, date=today, count=1)
    assert services.blacklist_from_recent_counts() == []  # 1 in the last 3 days
    services.update_policy(actor=supervisor, changes={"blacklist_window_days": 7}, reason="control plan: 7 days")
    added = services.blacklist_from_recent_counts()
    assert [e.value for e in added] == [buyer.username] and added[0].counts["counts"]["remedies"] == 4
    assert PolicyChange.objects.get().changes == {"blacklist_window_days": [3, 7]}


@pytest.mark.django_db
def test_an_ip_and_a_device_shared_by_many_buyers_are_blacklisted(buyer, other_buyer, agent):
    from accounts import roles
    from accounts.tests.factories import UserFactory

    Policy.objects.create(pk=1, blacklist_max_accounts=2)
    now = timezone.now()
    buyers = [buyer, other_buyer, UserFactory(role=roles.BUYER, username="buyer_c")]
    for user in buyers:
        LoginEvent.objects.create(user=user, at=now - timedelta(hours=1), ip="203.0.113.99", device="farm-1",
                                  source="token")
    # agents share an office address: never counted
    for _ in range(5):
        LoginEvent.objects.create(user=agent, at=now, ip="10.0.0.1", device="office", source="session")

    added = services.blacklist_from_recent_counts()

    got = {(e.kind, e.value): e for e in added}
    assert set(got) == {("ip", "203.0.113.99"), ("device", "farm-1")}
    assert got[("ip", "203.0.113.99")].counts["counts"]["accounts"] == 3
    assert got[("ip", "203.0.113.99")].counts["tripped"] == ["accounts"]


@pytest.mark.django_db
def test_tickets_of_several_accounts_on_one_device_add_up(buyer, other_buyer):
    Policy.objects.create(pk=1, blacklist_max_tickets=3)
    for user in (buyer, other_buyer):
        LoginEvent.objects.create(user=user, ip=None, device="shared-2", source="token")
        for _ in range(2):
            open_ticket(buyer=user)
    added = services.blacklist_from_recent_counts()
    assert [(e.kind, e.value) for e in added] == [("device", "shared-2")]
    assert added[0].counts["counts"]["tickets"] == 4 and added[0].counts["tripped"] == ["tickets"]


@pytest.mark.django_db
def test_policy_refuses_bad_blacklist_settings(supervisor):
    with pytest.raises(InvalidInput):
        services.update_policy(actor=supervisor, changes={"blacklist_window_days": 0})
    with pytest.raises(InvalidInput):
        services.update_policy(actor=supervisor, changes={"freeze_on_failed_verification": 1})
    with pytest.raises(InvalidInput):  # beyond an integer column: refused, not a 500
        services.update_policy(actor=supervisor, changes={"blacklist_max_tickets": 10**11})
    policy = services.update_policy(actor=supervisor, changes={"freeze_on_failed_verification": False})
    assert policy.freeze_on_failed_verification is False


@pytest.mark.django_db
def test_policy_api_reads_and_changes_the_new_settings(api, supervisor):
    body = api(supervisor).get("/api/v1/compensation/policy/").json()
    assert body["blacklist_window_days"] == 3 and body["freeze_on_failed_verification"] is True
    changed = api(supervisor).patch("/api/v1/compensation/policy/", {"blacklist_window_days": 7,
                                                                     "blacklist_max_accounts": 10}, format="json")
    assert changed.status_code == 200 and changed.json()["blacklist_window_days"] == 7
    bad = api(supervisor).patch("/api/v1/compensation/policy/", {"blacklist_window_days": 0}, format="json")
    assert bad.status_code == 400


# --- what is listed, in one statement ----------------------------------------------------------


@pytest.mark.django_db
def test_listed_answers_the_active_entries_with_their_latest_expiry_in_one_statement(django_assert_num_queries):
    from compensation.services.blacklist import listed as listed_now

    now = timezone.now()
    listed("account", "buyer_a", days=2)
    longest = listed("account", "buyer_a", days=9)
    listed("ip", "10.0.0.9", days=1)
    BlacklistEntry.objects.create(kind="device", value="dev-1", reason="test", window_days=1,
                                  expires_at=now - timedelta(seconds=1), created_at=now - timedelta(days=1))
    listed("device", "buyer_a")  # another kind with the same value lists nothing for the account
    with django_assert_num_queries(1):
        found = listed_now(account="buyer_a", ip="10.0.0.9", device="dev-1", now=now)
    assert found == {"account": longest.expires_at, "ip": BlacklistEntry.objects.get(kind="ip").expires_at}
    assert listed_now(account="buyer_b", ip="10.0.0.8", device="dev-2", now=now) == {}
    with django_assert_num_queries(0):
        assert listed_now(now=now) == {}
