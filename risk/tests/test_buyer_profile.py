"""The customer at a glance (issue #13 item 1): ``GET /api/v1/buyers/{id}/profile/``
and the console panel, figures against direct counts, scoping, constant queries."""

from datetime import timedelta

import pytest
from django.utils import timezone

from compensation import services as compensation
from compensation.models import Remedy
from compensation.tests.factories import new_key, remedy_ticket
from merchants.tests.factories import OrderFactory
from risk import services as risk_services
from risk.profile import month_start
from risk.tests.factories import open_hit
from tickets import services as ticket_services
from tickets.models import Rating, Ticket
from tickets.tests.factories import open_ticket, ticket_in_state


def path(buyer_id: int) -> str:
    return f"/api/v1/buyers/{buyer_id}/profile/"


def _executed_remedy(*, ticket, agent, kind="coupon", amount_fen=500, with_coupon=False, coupon_fen=0, at=None):
    """A remedy row as the service leaves it once executed (the caps are the
    service's tests; here only the figures matter)."""
    at = at or timezone.now()
    return Remedy.objects.create(
        ticket=ticket, order=ticket.order, buyer=ticket.buyer, requested_by=agent, kind=kind, amount_fen=amount_fen,
        with_coupon=with_coupon, coupon_fen=coupon_fen, reason="测试", status=Remedy.Status.EXECUTED,
        created_at=at, executed_at=at,
    )


@pytest.mark.django_db
def test_profile_figures_equal_direct_counts(api, buyer, other_buyer, agent, supervisor, merchant):
    # given: two remedies through the real service, one from last month, one of another buyer
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    for _ in range(2):
        result = compensation.apply_remedy(actor=agent, ticket_id=ticket.pk, kind="coupon", reason="延误补偿",
                                           idempotency_key=new_key())
        assert result.body["status"] == "executed"
    _executed_remedy(ticket=ticket, agent=agent, kind="refund", amount_fen=1_000, with_coupon=True, coupon_fen=500)
    _executed_remedy(ticket=ticket, agent=agent, kind="resend", amount_fen=0)
    _executed_remedy(ticket=ticket, agent=agent, amount_fen=700, at=month_start(timezone.now()) - timedelta(hours=1))
    theirs = remedy_ticket(buyer=other_buyer, agent=agent, merchant=merchant)
    _executed_remedy(ticket=theirs, agent=agent, amount_fen=9_900)
    rated = ticket_in_state("resolved", buyer=buyer, agent=agent)
    ticket_services.rate_ticket(actor=buyer, ticket_id=rated.pk, score=9, comment="很好")
    risk_services.flag_account(actor=supervisor, user_id=buyer.pk, reason="可疑")  # (actions any open hit)
    open_hit(buyer)
    compensation.add_to_blacklist(actor=supervisor, kind="account", value=buyer.username, reason="薅羊毛", window_days=3)

    # when
    response = api(agent).get(path(buyer.pk))

    # then
    assert response.status_code == 200
    body = response.json()
    start = month_start(timezone.now())
    month = Remedy.objects.filter(buyer=buyer, status="executed", executed_at__gte=start)
    assert body["remedies_this_month"]["count"] == month.count() == 4
    assert body["remedies_this_month"]["amount_fen"] == sum(r.cost_fen for r in month) == 500 + 500 + 1_500
    assert [r["id"] for r in body["recent_remedies"]][:1] == [month.order_by("-executed_at", "-id")[0].pk]
    assert all(r["agent_id"] == agent.pk and r["agent_name"] == agent.name for r in body["recent_remedies"])
    assert {r["kind"] for r in body["recent_remedies"]} >= {"coupon", "refund", "resend"}
    open_ids = set(Ticket.objects.filter(buyer=buyer, status__in=Ticket.ACTIVE).values_list("pk", flat=True))
    assert {t["id"] for t in body["open_tickets"]} == open_ids
    assert {t["id"] for t in body["recent_tickets"]} == set(Ticket.objects.filter(buyer=buyer).values_list("pk", flat=True))
    assert body["open_tickets"][0]["url"] == f"/console/tickets/{body['open_tickets'][0]['id']}/"
    assert body["csat"]["count"] == Rating.objects.filter(buyer=buyer).count() == 1
    assert body["csat"]["average"] == 9.0 and body["csat"]["recent"][0]["ticket_id"] == rated.pk
    assert [o["id"] for o in body["recent_orders"]] == [ticket.order_id]
    account = body["account"]
    assert account["flagged"] is True and account["frozen"] is False and account["account_status"] == "flagged"
    assert account["open_risk_hits"] == 1
    assert account["blacklisted"] is True and account["blacklisted_until"]


@pytest.mark.django_db
def test_another_buyers_data_never_appears(api, buyer, other_buyer, agent, merchant):
    mine = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    theirs = remedy_ticket(buyer=other_buyer, agent=agent, merchant=merchant)
    _executed_remedy(ticket=theirs, agent=agent)
    body = api(agent).get(path(buyer.pk)).json()
    assert {t["id"] for t in body["recent_tickets"]} == {mine.pk}
    assert {o["id"] for o in body["recent_orders"]} == {mine.order_id}
    assert body["recent_remedies"] == [] and body["remedies_this_month"] == {
        "count": 0, "amount_fen": 0, "since": body["remedies_this_month"]["since"]}
    assert body["account"] == {"account_status": "active", "flagged": False, "frozen": False, "open_risk_hits": 0,
                               "blacklisted": False, "blacklisted_until": None}


@pytest.mark.django_db
def test_staff_only_and_unknown_buyer(api, buyer, other_buyer, merchant_user, supervisor):
    for outsider in (buyer, other_buyer, merchant_user):
        response = api(outsider).get(path(buyer.pk))
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert api(None).get(path(buyer.pk)).status_code == 401
    missing = api(supervisor).get(path(999_999))
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert api(supervisor).get("/api/v1/buyers/abc/profile/").status_code == 404


def _history(*, buyer, agent, merchant, size: int) -> None:
    for i in range(size):
        order = OrderFactory(buyer=buyer, merchant=merchant)
        ticket = open_ticket(buyer=buyer, order=order, subject=f"第{i}单")
        _executed_remedy(ticket=ticket, agent=agent)
        Rating.objects.create(ticket=ticket, buyer=buyer, score=i % 11)
    open_hit(buyer)


@pytest.mark.django_db
def test_constant_queries_at_two_sizes(api, buyer, other_buyer, agent, merchant, django_assert_max_num_queries):
    client = api(agent)
    client.get(path(buyer.pk))  # warm the token and role caches
    _history(buyer=buyer, agent=agent, merchant=merchant, size=2)
    with django_assert_max_num_queries(14):
        small = client.get(path(buyer.pk))
    _history(buyer=other_buyer, agent=agent, merchant=merchant, size=15)
    with django_assert_max_num_queries(14):
        large = client.get(path(other_buyer.pk))
    assert small.status_code == large.status_code == 200
    assert len(large.json()["recent_tickets"]) == 10 and large.json()["remedies_this_month"]["count"] == 15


@pytest.mark.django_db
def test_console_panel_shows_the_buyer(client, buyer, other_buyer, agent, supervisor, merchant, merchant_user,
                                       django_assert_max_num_queries):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    _executed_remedy(ticket=ticket, agent=agent, amount_fen=500)
    compensation.add_to_blacklist(actor=supervisor, kind="account", value=buyer.username, reason="薅羊毛", window_days=3)
    theirs = open_ticket(buyer=other_buyer, subject="别人的工单")
    client.force_login(agent)
    page = client.get(f"/console/tickets/{ticket.pk}/").content.decode()
    assert f"/console/risk/tickets/{ticket.pk}/buyer/" in page
    client.get(f"/console/risk/tickets/{ticket.pk}/buyer/")  # warm the role cache
    with django_assert_max_num_queries(16):
        panel = client.get(f"/console/risk/tickets/{ticket.pk}/buyer/")
    html = panel.content.decode()
    assert panel.status_code == 200 and "data-buyer-panel" in html
    assert f'href="/console/tickets/{ticket.pk}/"' in html and "¥5.00" in html and 'data-flag="blacklisted"' in html
    assert f"#{theirs.pk} " not in html and "别人的工单" not in html
    for outsider, status in ((buyer, 403), (merchant_user, 403)):
        client.force_login(outsider)
        assert client.get(f"/console/risk/tickets/{ticket.pk}/buyer/").status_code == status
    client.force_login(agent)
    assert client.get("/console/risk/tickets/999999/buyer/").status_code == 404
