"""The Remedies API: status codes, the permission matrix, bad input."""

import pytest

from compensation.models import Policy, Remedy
from compensation.tests.factories import new_key, remedy_ticket


@pytest.mark.django_db
def test_apply_codes_and_permission_matrix(api, buyer, other_buyer, agent, supervisor, merchant, merchant_user):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    path = f"/api/v1/tickets/{ticket.pk}/remedies/"
    for outsider, code in ((buyer, 403), (merchant_user, 403), (other_buyer, 403), (None, 401)):
        response = api(outsider).post(path, {"kind": "coupon", "reason": "x"}, format="json")
        assert response.status_code == code
    created = api(agent).post(path, {"kind": "resend", "reason": "丢件补发", "with_coupon": True}, format="json",
                              HTTP_IDEMPOTENCY_KEY="abc")
    assert created.status_code == 201 and created.json()["status"] == "executed"
    replay = api(agent).post(path, {"kind": "resend", "reason": "丢件补发", "with_coupon": True}, format="json",
                             HTTP_IDEMPOTENCY_KEY="abc")
    assert replay.status_code == 201 and replay.json() == created.json()
    conflict = api(agent).post(path, {"kind": "coupon", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
    assert Remedy.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"kind": "refund", "amount_fen": -5, "reason": "x"}, 422, "amount_invalid"),
        ({"kind": "refund", "amount_fen": 999999, "reason": "x"}, 422, "amount_invalid"),
        ({"kind": "gold", "reason": "x"}, 400, "invalid"),
        ({"kind": "refund"}, 400, "invalid"),
        ({"kind": "refund", "amount_fen": "ten", "reason": "x"}, 400, "invalid"),
        ({"kind": "refund", "reason": "x" * 300}, 400, "invalid"),
        ({"kind": "coupon", "reason": "x", "with_coupon": True}, 400, "invalid"),
    ],
)
def test_bad_remedy_input(api, buyer, agent, merchant, payload, status, code):
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    response = api(agent).post(f"/api/v1/tickets/{ticket.pk}/remedies/", payload, format="json", HTTP_IDEMPOTENCY_KEY=new_key())
    assert response.status_code == status and response.json()["code"] == code
    assert not Remedy.objects.exists()


@pytest.mark.django_db
def test_unknown_ticket_and_closed_ticket(api, buyer, agent, merchant):
    assert api(agent).post("/api/v1/tickets/999999/remedies/", {"kind": "coupon", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=new_key()).status_code == 404
    closed = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant, state="closed")
    response = api(agent).post(f"/api/v1/tickets/{closed.pk}/remedies/", {"kind": "coupon", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=new_key())
    assert response.status_code == 422 and response.json()["code"] == "ticket_closed"


@pytest.mark.django_db
def test_approval_endpoints(api, buyer, agent, supervisor, merchant, other_agent):
    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 100})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    pending = api(agent).post(f"/api/v1/tickets/{ticket.pk}/remedies/", {"kind": "refund", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=new_key())
    assert pending.status_code == 202 and pending.json()["reasons"] == ["over_value_cap"]
    remedy_id = pending.json()["id"]
    queue = api(supervisor).get("/api/v1/remedies/?status=pending_approval").json()
    assert [r["id"] for r in queue["results"]] == [remedy_id]
    assert api(other_agent).get("/api/v1/remedies/").json()["count"] == 0  # agents see their own
    assert api(buyer).get("/api/v1/remedies/").status_code == 403
    assert api(agent).post(f"/api/v1/remedies/{remedy_id}/approve/", HTTP_IDEMPOTENCY_KEY=new_key()).status_code == 403
    approved = api(supervisor).post(f"/api/v1/remedies/{remedy_id}/approve/", {"reason": "核实"}, format="json", HTTP_IDEMPOTENCY_KEY=new_key())
    assert approved.status_code == 200 and approved.json()["status"] == "executed"
    again = api(supervisor).post(f"/api/v1/remedies/{remedy_id}/approve/", HTTP_IDEMPOTENCY_KEY=new_key())
    assert again.status_code == 409 and again.json()["code"] == "already_decided"
    assert api(supervisor).post("/api/v1/remedies/424242/reject/", HTTP_IDEMPOTENCY_KEY=new_key()).status_code == 404


@pytest.mark.django_db
def test_quota_budget_policy_and_breaker_endpoints(api, agent, supervisor, buyer):
    quota = api(agent).get("/api/v1/agents/me/quota/").json()
    assert quota["used"] == 0 and quota["remaining"] == quota["limit"] == 60
    budget = api(agent).get("/api/v1/compensation/budget/").json()
    assert budget["spent_fen"] == 0 and budget["breaker_open"] is False
    assert api(buyer).get("/api/v1/compensation/budget/").status_code == 403
    assert api(agent).get("/api/v1/compensation/policy/").json()["coupon_fen"] == 500
    assert api(agent).patch("/api/v1/compensation/policy/", {"coupon_fen": 800}, format="json").status_code == 403
    changed = api(supervisor).patch("/api/v1/compensation/policy/", {"coupon_fen": 800, "reason": "大促"}, format="json")
    assert changed.status_code == 200 and changed.json()["coupon_fen"] == 800
    assert api(supervisor).patch("/api/v1/compensation/policy/", {"coupon_fen": 0}, format="json").status_code == 400
    reset = api(supervisor).post("/api/v1/compensation/breaker/reset/", {"reason": "恢复自助"}, format="json")
    assert reset.status_code == 200 and reset.json()["breaker_open"] is False
    assert api(supervisor).post("/api/v1/compensation/breaker/reset/", {}, format="json").status_code == 400
    assert api(agent).post("/api/v1/compensation/breaker/reset/", {"reason": "x"}, format="json").status_code == 403


@pytest.mark.django_db
def test_blacklist_endpoint(api, supervisor, agent, buyer, merchant):
    path = "/api/v1/compensation/blacklist/"
    # the ticket came in before the listing: a listed buyer opens none now (issue #16 item 1)
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    assert api(agent).post(path, {"kind": "account", "value": buyer.username, "reason": "x"}, format="json").status_code == 403
    bad = api(supervisor).post(path, {"kind": "phone", "value": "1", "reason": "x"}, format="json")
    assert bad.status_code == 400
    added = api(supervisor).post(path, {"kind": "account", "value": buyer.username, "reason": "恶意索赔", "window_days": 3},
                                 format="json")
    assert added.status_code == 201 and added.json()["window_days"] == 3
    assert [e["value"] for e in api(agent).get(f"{path}?active=true").json()["results"]] == [buyer.username]
    assert api(buyer).get(path).status_code == 403
    refused = api(agent).post(f"/api/v1/tickets/{ticket.pk}/remedies/", {"kind": "coupon", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=new_key())
    assert refused.status_code == 422 and refused.json()["code"] == "buyer_blacklisted"

