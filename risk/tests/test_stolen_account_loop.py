"""Issue #16 item 2: the stolen-account loop end to end: the risk check's
user-facing message by language, the open hit and the prepared reply on the
buyer's tickets, the freeze on a failed verification (a policy setting), and
cancelled bookings that stay cancelled while the account is restricted."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from compensation import services as compensation
from merchants import services as merchant_services
from merchants.errors import AccountRestricted
from merchants.models import Order
from risk import services
from risk.models import AccountAction, OwnerVerification
from risk.tests.factories import buyer_account, integration_user, open_hit, order_at
from tickets.tests.factories import open_ticket

CHECK = "/api/v1/risk/check/"


@pytest.fixture
def victim(db):
    return buyer_account(username="victim", phone="13900000001", email="owner@example.com")


@pytest.mark.django_db
def test_a_deny_carries_the_user_facing_message_by_lang_or_accept_language(api, victim, supervisor):
    services.flag_account(actor=supervisor, user_id=victim.pk, reason="盗号")
    system = api(integration_user())
    assert system.get(CHECK, {"account": "victim"}).json()["message"] == "系统繁忙，请稍后再试"
    assert system.get(CHECK, {"account": "victim", "lang": "en"}).json()["message"] == "System busy, please try later"
    assert system.get(CHECK, {"account": "victim", "lang": "zh-CN"}).json()["message"] == "系统繁忙，请稍后再试"
    by_header = system.get(CHECK, {"account": "victim"}, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert by_header.json() == {"decision": "deny", "reasons": ["account_flagged"],
                                "message": "System busy, please try later"}
    allowed = system.get(CHECK, {"account": "someone_else", "lang": "en"}).json()
    assert allowed == {"decision": "allow", "reasons": [], "message": ""}


@pytest.mark.django_db
def test_a_blacklisted_buyer_hears_the_same_words_at_the_workbench_doors(api, victim, supervisor):
    compensation.add_to_blacklist(actor=supervisor, kind="account", value="victim", reason="盗号", window_days=3)
    check = api(integration_user()).get(CHECK, {"account": "victim", "lang": "en"}).json()
    door = api(victim).post("/api/v1/tickets/", {"category": "other", "subject": "s", "body": "b"}, format="json",
                            HTTP_ACCEPT_LANGUAGE="en")
    assert door.json()["detail"] == check["message"] == "System busy, please try later"


@pytest.mark.django_db
def test_a_failed_verification_freezes_the_account_at_once(victim, agent):
    check = services.verify_owner(actor=agent, user_id=victim.pk, phone="13900000009")
    assert check.outcome == OwnerVerification.Outcome.FAILED
    assert User.objects.get(pk=victim.pk).account_status == "frozen"
    action = AccountAction.objects.get(user=victim, kind="freeze")
    assert action.actor == agent and action.data["verification_id"] == check.pk
    # failing again records the check, freezes nothing twice
    services.verify_owner(actor=agent, user_id=victim.pk, phone="13900000009")
    assert AccountAction.objects.filter(user=victim, kind="freeze").count() == 1
    assert OwnerVerification.objects.filter(user=victim).count() == 2


@pytest.mark.django_db
def test_the_freeze_on_failure_is_a_policy_setting(victim, agent, supervisor):
    compensation.update_policy(actor=supervisor, changes={"freeze_on_failed_verification": False})
    services.verify_owner(actor=agent, user_id=victim.pk, phone="13900000009")
    assert User.objects.get(pk=victim.pk).account_status == "active"
    assert not AccountAction.objects.filter(user=victim).exists()


@pytest.mark.django_db
def test_a_passed_verification_freezes_nothing(victim, agent):
    services.verify_owner(actor=agent, user_id=victim.pk, phone="13900000001", email="owner@example.com")
    assert User.objects.get(pk=victim.pk).account_status == "active"


@pytest.mark.django_db
def test_cancelled_bookings_stay_cancelled_while_the_account_is_frozen_or_flagged(victim, supervisor, agent):
    now = timezone.now()
    orders = [order_at(victim, now - timedelta(hours=h), escrow=True, amount_fen=12_300) for h in (1, 2)]
    services.cancel_pending_orders(actor=supervisor, user_id=victim.pk, reason="盗号", order_ids=[o.pk for o in orders])
    services.verify_owner(actor=agent, user_id=victim.pk, phone="000")  # fails: frozen at once
    with pytest.raises(AccountRestricted):
        merchant_services.restore_order(actor=supervisor, order_id=orders[0].pk)
    result = services.restore_cancelled_orders(actor=supervisor, user_id=victim.pk, order_ids=[o.pk for o in orders])
    assert result.done == [] and {code for _, code in result.skipped} == {"account_restricted"}
    assert set(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("status", flat=True)) == {"cancelled"}


@pytest.mark.django_db
def test_restore_refused_through_the_api_with_its_code(api, victim, supervisor):
    now = timezone.now()
    order = order_at(victim, now - timedelta(hours=1), escrow=True)
    services.cancel_pending_orders(actor=supervisor, user_id=victim.pk, reason="盗号", order_ids=[order.pk])
    services.flag_account(actor=supervisor, user_id=victim.pk, reason="盗号")
    response = api(supervisor).post(f"/api/v1/risk/accounts/{victim.pk}/restore-orders/", {"order_ids": [order.pk]},
                                    format="json")
    assert response.status_code == 200
    assert response.json()["skipped"] == [{"order_id": order.pk, "code": "account_restricted"}]


@pytest.mark.django_db
def test_an_open_hit_shows_on_any_ticket_of_the_buyer_with_the_prepared_reply(client, victim, agent):
    zh = open_ticket(buyer=victim)
    en = open_ticket(buyer=victim, language="en")
    client.force_login(agent)
    quiet = client.get(f"/console/risk/tickets/{zh.pk}/banner/")
    assert quiet.status_code == 200 and "data-risk-banner" not in quiet.content.decode()

    hit = open_hit(victim)
    page = client.get(f"/console/risk/tickets/{zh.pk}/banner/").content.decode()
    assert f'data-open-hit="{hit.pk}"' in page
    assert "系统升级，请重新核实您的注册信息" in page and 'data-insert-reply' in page
    assert 'hx-swap-oob="afterbegin:#qr-list"' in page  # offered in the quick-reply picker too
    english = client.get(f"/console/risk/tickets/{en.pk}/banner/").content.decode()
    assert "System upgrade, please re-verify your registration details." in english
    # the ticket page loads it
    assert f"/console/risk/tickets/{zh.pk}/banner/" in client.get(f"/console/tickets/{zh.pk}/").content.decode()


@pytest.mark.django_db
def test_a_frozen_account_without_a_hit_still_gets_the_prepared_reply(client, victim, agent, supervisor):
    ticket = open_ticket(buyer=victim)
    services.freeze_account(actor=supervisor, user_id=victim.pk, reason="盗号")
    client.force_login(agent)
    page = client.get(f"/console/risk/tickets/{ticket.pk}/banner/").content.decode()
    assert "data-risk-banner" in page and "data-open-hit" not in page and "系统升级" in page


@pytest.mark.django_db
def test_the_banner_is_for_staff_who_may_see_the_ticket(client, victim, buyer):
    ticket = open_ticket(buyer=victim)
    open_hit(victim)
    client.force_login(buyer)
    assert client.get(f"/console/risk/tickets/{ticket.pk}/banner/").status_code in (302, 403, 404)
    client.force_login(victim)
    assert client.get(f"/console/risk/tickets/{ticket.pk}/banner/").status_code in (302, 403, 404)
