"""Issue #16 item 5: merchant credit has consequences. Below the credit
policy's thresholds payouts wait for a supervisor's review; the policy is
audited; the portal explains why. (Disputes held at once, the shorter resend
deadline and the order panel need tickets: tickets/tests/test_credit_consequences.py.)"""

import pytest

from core.errors import InvalidInput, PermissionDenied
from merchants import services
from merchants.errors import PayoutAwaitingReview, PayoutNotInReview
from merchants.models import CreditPolicy, CreditPolicyChange, Merchant, MerchantAccount, Movement, Payout
from merchants.tests.factories import fund


def low_credit(merchant, score=45):
    Merchant.objects.filter(pk=merchant.pk).update(credit_score=score)
    merchant.refresh_from_db()


# --- payouts go to review ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_low_credit_payout_awaits_review_and_approval_sends_it(api, merchant, merchant_user, supervisor):
    low_credit(merchant)
    fund(merchant, available_fen=10_000)
    response = api(merchant_user).post(f"/api/v1/merchants/{merchant.pk}/payouts/", {"amount_fen": 4_000},
                                       format="json", HTTP_IDEMPOTENCY_KEY="p1")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "awaiting_review" and body["review_reason"] == {"credit_score": 45, "threshold": 60}
    assert MerchantAccount.objects.get(merchant=merchant).available_fen == 6_000  # set aside at once
    with pytest.raises(PayoutAwaitingReview):  # the bank is not asked before the review
        services.settle_payout(payout_id=body["id"], paid=True)
    assert Payout.objects.get(pk=body["id"]).status == "awaiting_review"

    queue = api(supervisor).get("/api/v1/payouts/awaiting-review/").json()
    assert [row["id"] for row in queue["results"]] == [body["id"]]
    approved = api(supervisor).post(f"/api/v1/payouts/{body['id']}/approve/", {"note": "核实无误"}, format="json")
    assert approved.status_code == 200 and approved.json()["status"] == "requested"
    assert approved.json()["reviewed_by_id"] == supervisor.pk
    assert MerchantAccount.objects.get(merchant=merchant).available_fen == 6_000
    again = api(supervisor).post(f"/api/v1/payouts/{body['id']}/reject/", {"note": "x"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "payout_not_in_review"
    # the bank settles it as any other
    assert services.settle_payout(payout_id=body["id"], paid=True).status == "paid"


@pytest.mark.django_db
def test_a_rejected_payout_returns_to_available(merchant, merchant_user, supervisor):
    low_credit(merchant)
    fund(merchant, available_fen=10_000)
    payout, _ = services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=3_000,
                                        idempotency_key="a")
    with pytest.raises(InvalidInput):
        services.review_payout(actor=supervisor, payout_id=payout.pk, approve=False, note="")
    rejected = services.review_payout(actor=supervisor, payout_id=payout.pk, approve=False, note="信用过低，暂缓")
    assert rejected.status == "rejected" and rejected.review_note == "信用过低，暂缓"
    assert MerchantAccount.objects.get(merchant=merchant).available_fen == 10_000
    assert Movement.objects.filter(payout=payout, kind="payout_returned").get().amount_fen == 3_000
    with pytest.raises(PayoutNotInReview):
        services.review_payout(actor=supervisor, payout_id=payout.pk, approve=True)


@pytest.mark.django_db
def test_only_supervisors_review_and_a_good_merchant_is_not_reviewed(api, merchant, merchant_user, agent, supervisor):
    fund(merchant, available_fen=10_000)
    payout, _ = services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=1_000,
                                        idempotency_key="a")
    assert payout.status == "requested" and payout.review_reason == {}
    with pytest.raises(PayoutNotInReview):
        services.review_payout(actor=supervisor, payout_id=payout.pk, approve=True)
    low_credit(merchant)
    reviewed, _ = services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=1_000,
                                          idempotency_key="b")
    for outsider in (agent, merchant_user):
        with pytest.raises(PermissionDenied):
            services.review_payout(actor=outsider, payout_id=reviewed.pk, approve=True)
        assert api(outsider).post(f"/api/v1/payouts/{reviewed.pk}/approve/", {}, format="json").status_code == 403
    assert api(agent).get("/api/v1/payouts/awaiting-review/").status_code == 403


@pytest.mark.django_db
def test_console_approvals_page_reviews_payouts(client, merchant, merchant_user, supervisor):
    low_credit(merchant)
    fund(merchant, available_fen=10_000)
    payout, _ = services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=2_000,
                                        idempotency_key="a")
    client.force_login(supervisor)
    page = client.get("/console/remedies/approvals/").content.decode()
    assert f'id="payout-{payout.pk}"' in page and merchant.name in page
    response = client.post(f"/console/remedies/approvals/payouts/{payout.pk}/reject/", {"note": "暂缓"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'data-decision="rejected"' in response.content.decode()
    assert Payout.objects.get(pk=payout.pk).status == "rejected"


# --- the policy, with audit -----------------------------------------------------------------------


@pytest.mark.django_db
def test_credit_policy_changes_are_audited_and_validated(api, supervisor, agent, merchant_user):
    assert api(agent).get("/api/v1/merchants/credit-policy/").json()["payout_review_below"] == 60
    assert not CreditPolicy.objects.exists()  # a GET writes nothing
    changed = api(supervisor).patch("/api/v1/merchants/credit-policy/",
                                    {"payout_review_below": 70, "short_resend_hours": 12, "reason": "双11"},
                                    format="json")
    assert changed.status_code == 200 and changed.json()["payout_review_below"] == 70
    change = CreditPolicyChange.objects.get()
    assert change.changes == {"payout_review_below": [60, 70], "short_resend_hours": [24, 12]}
    assert change.changed_by == supervisor and change.reason == "双11"
    assert api(agent).patch("/api/v1/merchants/credit-policy/", {"payout_review_below": 1},
                            format="json").status_code == 403
    assert api(supervisor).patch("/api/v1/merchants/credit-policy/", {"payout_review_below": 200},
                                 format="json").status_code == 400
    with pytest.raises(InvalidInput):
        services.update_credit_policy(actor=supervisor, changes={"resend_hours": 0})
    assert api(merchant_user).get("/api/v1/merchants/credit-policy/").status_code == 200


# --- where people see it ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_standing_api_and_the_portal_explain_why(api, client, merchant, merchant_user, other_merchant):
    low_credit(merchant)
    body = api(merchant_user).get(f"/api/v1/merchants/{merchant.pk}/credit/standing/").json()
    assert body["score"] == 45 and body["resend_hours"] == 24
    assert {c["rule"]: (c["threshold"], c["active"]) for c in body["consequences"]} == {
        "dispute_hold": (60, True), "payout_review": (60, True), "short_resend": (60, True)}
    assert api(merchant_user).get(f"/api/v1/merchants/{other_merchant.pk}/credit/standing/").status_code == 404
    client.force_login(merchant_user)
    page = client.get("/merchant/credit/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-rule="payout_review" data-active="true"' in page
    assert "below 60 (your score: 45)" in page


# --- the score and the policy in force, read together -------------------------------------------


@pytest.mark.django_db
def test_the_score_and_the_policy_in_force_come_in_one_statement(merchant, supervisor, django_assert_num_queries):
    from merchants.services.credit_policy import score_and_policy

    low_credit(merchant, score=52)
    assert not CreditPolicy.objects.exists()
    with django_assert_num_queries(1):
        score, policy = score_and_policy(merchant_id=merchant.pk)
    defaults = CreditPolicy()
    assert score == 52
    assert [getattr(policy, f) for f in services.CREDIT_POLICY_FIELDS] == \
        [getattr(defaults, f) for f in services.CREDIT_POLICY_FIELDS]

    services.update_credit_policy(actor=supervisor, changes={"short_resend_below": 80, "short_resend_hours": 12})
    with django_assert_num_queries(1):
        score, policy = score_and_policy(merchant_id=merchant.pk)
    saved = CreditPolicy.objects.get(pk=1)
    assert score == 52 and policy.pk == 1
    for name in (*services.CREDIT_POLICY_FIELDS, "updated_at"):
        assert getattr(policy, name) == getattr(saved, name), name
    assert (policy.short_resend_below, policy.short_resend_hours) == (80, 12)

    unknown, policy = score_and_policy(merchant_id=merchant.pk + 10_000)
    assert unknown is None and policy.short_resend_hours == 12
