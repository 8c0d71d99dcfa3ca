"""The console's risk page: the review list, and each account's actions over htmx."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from merchants.models import Order
from risk import services
from risk.models import OwnerVerification, RiskHit
from risk.tests.factories import NOW, buyer_account, open_hit, order_at, stolen_history

PAGE = "/console/risk/"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def victim(db):
    return buyer_account(username="victim", display_name="被盗账号", phone="13900000001", email="owner@example.com")


@pytest.mark.django_db
def test_page_access(client, buyer, merchant_user, agent, supervisor):
    assert client.get(PAGE).status_code == 302
    for outsider in (buyer, merchant_user):
        client.force_login(outsider)
        assert client.get(PAGE).status_code == 403
    client.force_login(agent)
    page = client.get(PAGE)
    nav = '<a href="/console/risk/" class="is-current">'  # the nav link: supervisors only
    assert page.status_code == 200 and nav not in page.content.decode()
    client.force_login(supervisor)
    assert nav in client.get(PAGE).content.decode()


@pytest.mark.django_db
def test_the_evidence_reads_as_dates_hours_and_days(client, supervisor):
    user, orders = stolen_history(dormant_days=120, hours_ago=(1, 5, 10))
    services.detect_stolen_accounts(now=NOW)
    client.force_login(supervisor)
    html = client.get(PAGE).content.decode()
    hit = RiskHit.objects.get()
    assert f'id="hit-{hit.pk}"' in html and user.username in html
    assert 'data-dormant-days="120"' in html
    for slot in ("10:00", "15:00", "19:00"):
        assert f'<span class="slot">{slot}</span>' in html
    for order in orders:
        assert order.order_no in html
        assert timezone.localtime(order.placed_at).strftime("%m-%d %H:%M") in html
    assert "¥299.00" in html


@pytest.mark.django_db
def test_filters(client, agent, victim):
    open_hit(victim)
    dismissed = open_hit(buyer_account(username="someone"))
    RiskHit.objects.filter(pk=dismissed.pk).update(status="dismissed")
    client.force_login(agent)

    def shown(**query):
        return re.findall(r'<tr id="hit-(\d+)"', client.get(PAGE, query).content.decode())

    assert len(shown()) == 1
    assert len(shown(status="all")) == 2
    assert shown(status="dismissed") == [str(dismissed.pk)]
    assert len(shown(status="all", q="victim")) == 1 and len(shown(status="all", q="被盗")) == 1
    assert shown(status="all", account_status="frozen") == []
    assert len(shown(status="bogus")) == 1  # an unknown value falls back to open


@pytest.mark.django_db
def test_agents_see_no_supervisor_actions_and_cannot_post_them(client, agent, victim):
    open_hit(victim)
    client.force_login(agent)
    html = client.get(PAGE).content.decode()
    assert f"/console/risk/accounts/{victim.pk}/freeze/" not in html
    assert client.post(f"/console/risk/accounts/{victim.pk}/freeze/", {"reason": "x"}, **HX).status_code == 403
    assert client.get(f"/console/risk/accounts/{victim.pk}/cancel/", **HX).status_code == 403
    assert User.objects.get(pk=victim.pk).account_status == "active"


@pytest.mark.django_db
def test_flag_and_freeze_from_the_page(client, supervisor, victim):
    hit = open_hit(victim)
    client.force_login(supervisor)
    assert f"/console/risk/accounts/{victim.pk}/freeze/" in client.get(PAGE).content.decode()
    flagged = client.post(f"/console/risk/accounts/{victim.pk}/flag/", {"reason": "疑似盗号"}, **HX)
    assert flagged.status_code == 200 and 'data-account-status="flagged"' in flagged.content.decode()
    again = client.post(f"/console/risk/accounts/{victim.pk}/flag/", {"reason": "x"}, **HX)
    assert again.status_code == 409 and 'class="notice error"' in again.content.decode()
    frozen = client.post(f"/console/risk/accounts/{victim.pk}/freeze/", {"reason": "盗号"}, **HX)
    assert 'data-account-status="frozen"' in frozen.content.decode()
    assert RiskHit.objects.get(pk=hit.pk).status == "actioned"
    assert client.post("/console/risk/accounts/999999/freeze/", {"reason": "x"}, **HX).status_code == 404


@pytest.mark.django_db
def test_cancel_confirms_which_orders_then_offers_an_undo(client, supervisor, victim):
    now = timezone.now()
    orders = [order_at(victim, now - timedelta(hours=h), escrow=True, amount_fen=10_000) for h in (1, 2, 3)]
    order_at(victim, now, escrow=True, status="shipped")
    client.force_login(supervisor)

    confirm = client.get(f"/console/risk/accounts/{victim.pk}/cancel/", **HX).content.decode()
    assert len(re.findall(r'name="order_id" value="(\d+)" checked', confirm)) == 3
    for order in orders:
        assert order.order_no in confirm
    assert "¥300.00" in confirm

    done = client.post(f"/console/risk/accounts/{victim.pk}/cancel/",
                       {"order_id": [orders[0].pk, orders[1].pk], "reason": "盗号下单"}, **HX)
    html = done.content.decode()
    assert done.status_code == 200 and 'class="inline-form undo"' in html
    assert sorted(re.findall(r'type="hidden" name="order_id" value="(\d+)"', html)) == sorted(
        [str(orders[0].pk), str(orders[1].pk)])
    assert list(Order.objects.filter(pk__in=[o.pk for o in orders]).order_by("placed_at")
                .values_list("status", flat=True)) == ["paid", "cancelled", "cancelled"]

    undone = client.post(f"/console/risk/accounts/{victim.pk}/undo/", {"order_id": [orders[0].pk, orders[1].pk]}, **HX)
    assert undone.status_code == 200 and 'data-pending="3"' in undone.content.decode()
    assert set(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("status", flat=True)) == {"paid"}


@pytest.mark.django_db
def test_cancel_without_a_reason_is_an_inline_400(client, supervisor, victim):
    order = order_at(victim, timezone.now(), escrow=True)
    client.force_login(supervisor)
    response = client.post(f"/console/risk/accounts/{victim.pk}/cancel/", {"order_id": [order.pk], "reason": ""}, **HX)
    assert response.status_code == 400 and 'class="notice error"' in response.content.decode()
    nothing_ticked = client.post(f"/console/risk/accounts/{victim.pk}/cancel/", {"reason": "盗号"}, **HX,
                                 HTTP_ACCEPT_LANGUAGE="en")
    assert nothing_ticked.status_code == 400 and "Tick at least one order." in nothing_ticked.content.decode()
    assert Order.objects.get(pk=order.pk).status == "paid"


@pytest.mark.django_db
def test_an_agent_unfreezes_after_the_verification_form(client, agent, supervisor, victim):
    services.freeze_account(actor=supervisor, user_id=victim.pk, reason="盗号")
    client.force_login(agent)
    page = client.get(PAGE).content.decode()
    assert f'id="restricted-{victim.pk}"' in page
    form = client.get(f"/console/risk/accounts/{victim.pk}/unfreeze/", **HX).content.decode()
    assert 'name="phone"' in form and 'name="id_last4_confirmed"' in form
    wrong = client.post(f"/console/risk/accounts/{victim.pk}/unfreeze/", {"phone": "13900000009", "email": "owner@example.com"}, **HX)
    assert wrong.status_code == 422 and 'data-account-status="frozen"' in wrong.content.decode()
    right = client.post(f"/console/risk/accounts/{victim.pk}/unfreeze/",
                        {"phone": "13900000001", "id_last4_confirmed": "1", "note": "本人来电"}, **HX)
    assert right.status_code == 200 and 'data-account-status="active"' in right.content.decode()
    assert list(OwnerVerification.objects.order_by("pk").values_list("outcome", flat=True)) == ["failed", "passed"]


@pytest.mark.django_db
def test_dismiss_from_the_page(client, supervisor, agent, victim):
    hit = open_hit(victim)
    client.force_login(agent)
    assert client.post(f"/console/risk/hits/{hit.pk}/dismiss/", {"reason": "x"}, **HX).status_code == 403
    client.force_login(supervisor)
    done = client.post(f"/console/risk/hits/{hit.pk}/dismiss/", {"reason": "本人确认"}, **HX)
    assert done.status_code == 200 and 'data-hit-status="dismissed"' in done.content.decode()
    twice = client.post(f"/console/risk/hits/{hit.pk}/dismiss/", {"reason": "x"}, **HX)
    assert twice.status_code == 409
    assert client.post("/console/risk/hits/999999/dismiss/", {"reason": "x"}, **HX).status_code == 404


@pytest.mark.django_db
def test_page_queries_do_not_grow_with_rows(client, supervisor, django_assert_max_num_queries):
    def add(n: int) -> None:
        for _ in range(n):
            user = buyer_account()
            open_hit(user)
            order_at(user, timezone.now())
            frozen = buyer_account()
            User.objects.filter(pk=frozen.pk).update(account_status="frozen")

    client.force_login(supervisor)
    add(10)
    with CaptureQueriesContext(connection) as ten:
        client.get(PAGE)
    add(90)
    with django_assert_max_num_queries(len(ten.captured_queries)):
        html = client.get(PAGE).content.decode()
    assert html.count('<tr id="hit-') == 100 and html.count('<tr id="restricted-') == 100


def test_the_account_panel_offers_what_the_status_allows_and_undo_only_in_its_window():
    """risk/rules.py decides; the page only shows (the services refuse with the same rules)."""
    from datetime import timedelta

    from django.utils import timezone

    from risk import rules

    assert rules.may_flag(status="active") and not rules.may_flag(status="flagged") and not rules.may_flag(status="frozen")
    assert rules.may_freeze(status="flagged") and not rules.may_freeze(status="frozen")
    assert rules.may_unfreeze(status="frozen") and not rules.may_unfreeze(status="active")
    now = timezone.now()
    assert rules.undo_open(undo_until=now + timedelta(seconds=1), now=now)
    assert not rules.undo_open(undo_until=now - timedelta(seconds=1), now=now) and not rules.undo_open(undo_until=None, now=now)
