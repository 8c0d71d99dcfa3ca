"""API.md: every POST that moves money requires an Idempotency-Key (400
``idempotency_key_required`` without one), across the apps that move money:
remedies, approvals, payouts, bulk remedy jobs."""

import pytest

from compensation.models import Policy, Remedy
from compensation.tests.factories import new_key, remedy_ticket


@pytest.mark.django_db
def test_every_money_post_refuses_a_missing_key(api, buyer, agent, supervisor, merchant, merchant_user):
    """API.md: every POST that moves money requires Idempotency-Key (400
    ``idempotency_key_required``); nothing is written without it."""
    from incidents.models import BulkJob
    from merchants.models import Payout
    from merchants.tests.factories import fund

    Policy.objects.update_or_create(pk=1, defaults={"value_cap_fen": 100})
    ticket = remedy_ticket(buyer=buyer, agent=agent, merchant=merchant)
    pending = api(agent).post(f"/api/v1/tickets/{ticket.pk}/remedies/", {"kind": "refund", "reason": "x"},
                              format="json", HTTP_IDEMPOTENCY_KEY=new_key()).json()
    fund(merchant, available_fen=10_000)
    calls = [
        (api(agent), f"/api/v1/tickets/{ticket.pk}/remedies/", {"kind": "coupon", "reason": "x"}),
        (api(supervisor), f"/api/v1/remedies/{pending['id']}/approve/", {}),
        (api(supervisor), f"/api/v1/remedies/{pending['id']}/reject/", {}),
        (api(merchant_user), f"/api/v1/merchants/{merchant.pk}/payouts/", {"amount_fen": 100}),
        (api(supervisor), "/api/v1/bulk-jobs/", {"kind": "remedy", "ticket_ids": [ticket.pk],
                                                 "params": {"remedy": "coupon", "reason": "x"}}),
    ]
    for client, path, body in calls:
        for headers in ({}, {"HTTP_IDEMPOTENCY_KEY": "  "}):
            response = client.post(path, body, format="json", **headers)
            assert response.status_code == 400, (path, response.content)
            assert response.json()["code"] == "idempotency_key_required"
    assert Remedy.objects.count() == 1 and Remedy.objects.get().status == "pending_approval"
    assert not Payout.objects.exists() and not BulkJob.objects.exists()
    # with a key, a retried bulk remedy gets the same job back, never a second one
    body = calls[-1][2]
    first = api(supervisor).post("/api/v1/bulk-jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="job-1")
    again = api(supervisor).post("/api/v1/bulk-jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="job-1")
    assert first.status_code == 201 and again.json()["id"] == first.json()["id"] and BulkJob.objects.count() == 1
    other = api(supervisor).post("/api/v1/bulk-jobs/", {**body, "params": {"remedy": "resend", "reason": "x"}},
                                 format="json", HTTP_IDEMPOTENCY_KEY="job-1")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
