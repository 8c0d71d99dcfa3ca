"""The remedy panel, the approvals page and the policy page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compensation import services
from compensation.models import BudgetDay, Coupon, Policy, PolicyChange, Remedy
from compensation.tests.factories import new_key, remedy_ticket
from merchants.models import ResendTask
from tickets.models import Message


def _panel(client, ticket):
    return client.get(f"/console/remedies/panel/{ticket.pk}/")


def _outcomes(html: str) -> dict[str, str]:
    """action → outcome, as the panel shows them."""
    import re

    return {action: outcome for outcome, action in re.findall(r'class="remedy-option outcome-(\w+)" data-action="(\w+)"', html)}


@pytest.mark.django_db
def test_panel_access(client, buyer, agent, merchant, merchant_user):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    assert _panel(client, ticket).status_code == 302
    for outsider in (buyer, merchant_user):
        client.force_login(outsider)
        assert _panel(client, ticket).status_code == 403
    client.force_login(agent)
    assert _panel(client, ticket).status_code == 200
    assert client.get("/console/remedies/panel/999999/").status_code == 404


@pytest.mark.django_db
def test_panel_says_before_any_click_what_is_self_service(client, buyer, agent, merchant, supervisor):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=2_990)
    client.force_login(agent)
    assert set(_outcomes(_panel(client, ticket).content.decode()).values()) == {"self_service"}
    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 1_000})
    html = _panel(client, ticket).content.decode()
    assert set(_outcomes(html).values()) == {"approval"}
    assert "self-service cap" in html or "自助" in html
    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 5_000, "agent_monthly_quota": 0})
    assert set(_outcomes(_panel(client, ticket).content.decode()).values()) == {"approval"}
    Policy.objects.update_or_create(pk=1, defaults={"agent_monthly_quota": 60})
    BudgetDay.objects.update_or_create(date=timezone.localdate(), defaults={"budget_fen": 100, "breaker_open": True})
    html = _panel(client, ticket).content.decode()
    assert 'class="notice error breaker"' in html and set(_outcomes(html).values()) == {"approval"}
    BudgetDay.objects.all().delete()
    services.add_to_blacklist(actor=supervisor, kind="account", value=buyer.username, reason="恶意索赔")
    assert set(_outcomes(_panel(client, ticket).content.decode()).values()) == {"refused"}


@pytest.mark.django_db
def test_closed_ticket_panel_refuses_everything(client, buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, state="closed")
    client.force_login(agent)
    html = _panel(client, ticket).content.decode()
    assert set(_outcomes(html).values()) == {"refused"} and "<form" not in html


@pytest.mark.django_db
def test_resend_plus_coupon_through_the_panel_once(client, buyer, agent, merchant):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    client.force_login(agent)
    data = {"action": "resend_coupon", "idempotency_key": "panel-1"}
    first = client.post(f"/console/remedies/panel/{ticket.pk}/apply/", data, HTTP_HX_REQUEST="true")
    assert first.status_code == 201 and 'data-outcome="executed"' in first.content.decode()
    assert first["HX-Trigger"] == "refresh-messages"
    again = client.post(f"/console/remedies/panel/{ticket.pk}/apply/", data, HTTP_HX_REQUEST="true")
    assert again.status_code == 201
    assert Remedy.objects.count() == 1 and Coupon.objects.count() == 1 and ResendTask.objects.count() == 1
    assert Message.objects.filter(ticket=ticket, notice="remedy_applied").count() == 1
    assert client.post(f"/console/remedies/panel/{ticket.pk}/apply/", {"action": "gold"}).status_code == 400


@pytest.mark.django_db
def test_over_cap_refund_goes_to_approval_and_is_approved(client, buyer, agent, merchant, supervisor):
    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 1_000})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=8_800)
    client.force_login(agent)
    pending = client.post(f"/console/remedies/panel/{ticket.pk}/apply/", {"action": "refund", "idempotency_key": "k"})
    assert pending.status_code == 202 and 'data-outcome="pending_approval"' in pending.content.decode()
    remedy = Remedy.objects.get()
    assert client.get("/console/remedies/approvals/").status_code == 403  # agents
    assert client.post(f"/console/remedies/approvals/{remedy.pk}/approve/").status_code == 403
    client.force_login(supervisor)
    page = client.get("/console/remedies/approvals/").content.decode()
    assert f'id="remedy-{remedy.pk}"' in page
    assert 'name="idempotency_key"' in page  # the form sends its own key
    approved = client.post(f"/console/remedies/approvals/{remedy.pk}/approve/", {"reason": "核实", "idempotency_key": "a1"})
    assert approved.status_code == 200 and 'data-decision="executed"' in approved.content.decode()
    remedy.refresh_from_db()
    assert remedy.status == "executed" and remedy.order.refunded_fen == 8_800
    retried = client.post(f"/console/remedies/approvals/{remedy.pk}/approve/", {"reason": "核实", "idempotency_key": "a1"})
    assert retried.status_code == 200 and 'data-decision="executed"' in retried.content.decode()  # a double submit
    twice = client.post(f"/console/remedies/approvals/{remedy.pk}/approve/", {"idempotency_key": "a2"})
    assert twice.status_code == 409


@pytest.mark.django_db
def test_supervisor_cannot_approve_own_request_on_the_page(client, buyer, agent, merchant, supervisor):
    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 1_000})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, amount_fen=8_800)
    own = services.apply_remedy(actor=supervisor, ticket_id=ticket.pk, kind="refund", reason="x", idempotency_key=new_key())
    client.force_login(supervisor)
    response = client.post(f"/console/remedies/approvals/{own.remedy_id}/approve/", {"idempotency_key": "o1"})
    assert response.status_code == 403
    assert Remedy.objects.get(pk=own.remedy_id).status == "pending_approval"


@pytest.mark.django_db
def test_policy_page(client, agent, supervisor):
    client.force_login(agent)
    assert client.get("/console/remedies/policy/").status_code == 200
    assert client.post("/console/remedies/policy/", {"coupon_fen": "800"}).status_code == 403
    client.force_login(supervisor)
    response = client.post("/console/remedies/policy/", {"coupon_fen": "800", "value_cap_fen": "5000", "reason": "大促"})
    assert response.status_code == 200
    assert Policy.objects.get().coupon_fen == 800
    assert PolicyChange.objects.get().changes == {"coupon_fen": [500, 800]}
    rearm = client.post("/console/remedies/policy/", {"form": "breaker", "reason": "恢复"})
    assert rearm.status_code == 200 and BudgetDay.objects.get().breaker_open is False
    refused = client.post("/console/remedies/policy/", {"form": "breaker", "reason": ""})
    assert refused.status_code == 400


@pytest.mark.django_db
def test_approvals_page_query_count_is_flat(client, buyer, agent, merchant, supervisor, django_assert_max_num_queries):
    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 100, "buyer_daily_cap": 1000})

    def pending(n):
        for _ in range(n):
            ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
            services.apply_remedy(actor=agent, ticket_id=ticket.pk, kind="coupon", reason="x", idempotency_key=new_key())

    client.force_login(supervisor)
    pending(3)
    with CaptureQueriesContext(connection) as ctx:
        client.get("/console/remedies/approvals/")
    pending(27)
    with django_assert_max_num_queries(len(ctx.captured_queries)):
        page = client.get("/console/remedies/approvals/").content.decode()
    assert page.count('<tr id="remedy-') == 30
