"""A failed campaign coupon (issue #13 item 6): the supervisor registers the
buyers it hit (by the code their tickets name, an uploaded list, or the
coupon-failure tickets of a period), previews, and compensates them in one
bulk job through the remedy service, inside the caps, once per buyer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import roles
from accounts.tests.factories import UserFactory
from compensation.models import Coupon, Remedy
from compensation.services import get_policy
from core.errors import IdempotencyKeyRequired
from incidents import selectors, services
from incidents.errors import CouponFailureExists, InvalidInput, PermissionDenied
from incidents.models import AffectedBuyer, BulkJob, CouponFailure
from merchants.tests.factories import paid_order
from tickets.models import Ticket
from tickets.tests.factories import open_ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_supervisor(db):
    return UserFactory(role=roles.SUPERVISOR, username="lead_b", display_name="周组长")


@pytest.fixture
def run_jobs(django_capture_on_commit_callbacks):
    """Compensate and run the job the commit queues (eager here)."""
    def run(supervisor, failure, key="key-1"):
        with django_capture_on_commit_callbacks(execute=True):
            job = services.compensate(actor=supervisor, failure_id=failure.pk, idempotency_key=key)
        job.refresh_from_db()
        return job
    return run


def _failure(supervisor, **kwargs) -> CouponFailure:
    return services.create_coupon_failure(actor=supervisor, **{
        "code": "D11-50OFF", "title": "双11满减券结算失败", "remedy": "coupon", "reason": "活动券失效补偿", **kwargs})


def _coupon_ticket(buyer, *, subject="D11-50OFF 用不了", order=None):
    return open_ticket(buyer=buyer, category="coupon_failure", subject=subject, body="结算时提示券无效", order=order)


def test_register_a_failed_coupon_and_its_refusals(supervisor, agent):
    failure = _failure(supervisor)
    assert failure.amount_fen == get_policy().coupon_fen and failure.remedy == "coupon"
    with pytest.raises(CouponFailureExists):
        _failure(supervisor)
    with pytest.raises(PermissionDenied):
        _failure(agent, code="OTHER")
    for bad in ({"code": "x"}, {"code": "有中文"}, {"remedy": "cash"}, {"code": "CB1", "remedy": "cashback"},
                {"code": "CB2", "amount_fen": 0}, {"code": "CB3", "amount_fen": 10**7}, {"code": "CB4", "title": " "},
                {"code": "CB5", "reason": ""}):
        with pytest.raises(InvalidInput):
            _failure(supervisor, **bad)
    assert CouponFailure.objects.count() == 1


def test_buyers_by_code_by_list_and_by_period(supervisor, buyer, other_buyer):
    failure = _failure(supervisor)
    named = _coupon_ticket(buyer)
    _coupon_ticket(other_buyer, subject="券不能用")  # names no code
    open_ticket(buyer=other_buyer, subject="D11-50OFF 物流问题")  # not a coupon ticket

    by_code = services.register_buyers(actor=supervisor, failure_id=failure.pk, source="code")
    assert (by_code.added, by_code.already) == (1, 0)
    row = AffectedBuyer.objects.get(failure=failure, buyer=buyer)
    assert row.ticket_id == named.pk and row.source == "code"

    listed_buyer = UserFactory(role=roles.BUYER, username="buyer_list", phone="13700137000")
    by_list = services.register_buyers(actor=supervisor, failure_id=failure.pk, source="list",
                                       entries=["buyer_list", str(buyer.pk), "13700137000", "nobody", "99999999"])
    assert (by_list.added, by_list.already) == (1, 1) and by_list.unknown == ["99999999", "nobody"]
    assert AffectedBuyer.objects.get(failure=failure, buyer=listed_buyer).ticket_id is None

    now = timezone.now()
    by_period = services.register_buyers(actor=supervisor, failure_id=failure.pk, source="query",
                                         since=now - timedelta(hours=1), until=now + timedelta(minutes=1))
    assert (by_period.added, by_period.already) == (1, 1)  # other_buyer's coupon ticket
    assert failure.buyers.count() == 3

    with pytest.raises(InvalidInput):
        services.register_buyers(actor=supervisor, failure_id=failure.pk, source="query",
                                 since=now, until=now - timedelta(hours=1))
    with pytest.raises(InvalidInput):
        services.register_buyers(actor=supervisor, failure_id=failure.pk, source="query",
                                 since=now - timedelta(days=40), until=now)
    with pytest.raises(InvalidInput):
        services.register_buyers(actor=supervisor, failure_id=failure.pk, source="list", entries="buyer_list")
    with pytest.raises(InvalidInput):
        services.register_buyers(actor=supervisor, failure_id=failure.pk, source="rumour")
    assert failure.buyers.count() == 3


def test_preview_then_compensate_once_per_buyer(supervisor, other_supervisor, buyer, other_buyer, run_jobs):
    failure = _failure(supervisor)
    _coupon_ticket(buyer)
    services.register_buyers(actor=supervisor, failure_id=failure.pk, source="code")
    services.register_buyers(actor=supervisor, failure_id=failure.pk, source="list", entries=[other_buyer.username])

    summary = selectors.coupon_failure_summary(failure)
    assert (summary.total, summary.to_compensate, summary.estimated_fen) == (2, 2, 2 * failure.amount_fen)
    assert summary.by_source == {"code": 1, "list": 1}
    assert Remedy.objects.count() == 0  # the preview wrote nothing

    job = run_jobs(supervisor, failure)
    assert job.kind == BulkJob.Kind.COUPON_COMPENSATION and job.status == "done" and job.done_count == 2
    rows = {r.buyer_id: r for r in AffectedBuyer.objects.filter(failure=failure)}
    assert {r.outcome for r in rows.values()} == {"executed"}
    assert Coupon.objects.filter(buyer=buyer, value_fen=failure.amount_fen).count() == 1
    assert Coupon.objects.filter(buyer=other_buyer, value_fen=failure.amount_fen).count() == 1
    # the buyer without a coupon ticket got one, where the compensation shows
    opened = Ticket.objects.get(pk=rows[other_buyer.pk].ticket_id)
    assert opened.category == "coupon_failure" and "D11-50OFF" in opened.subject
    assert Remedy.objects.get(pk=rows[buyer.pk].remedy_id).ticket_id == rows[buyer.pk].ticket_id

    # a retry of the same request is the same job; another run by another lead pays nobody twice
    assert run_jobs(supervisor, failure).pk == job.pk
    with pytest.raises(InvalidInput):  # nobody left to compensate
        run_jobs(other_supervisor, failure, key="key-2")
    assert Remedy.objects.count() == 2 and Coupon.objects.count() == 2
    report = selectors.coupon_failure_summary(failure)
    assert report.by_outcome == {"executed": 2} and report.executed_fen == 2 * failure.amount_fen


def test_caps_still_hold_and_refusals_are_reported(supervisor, buyer, other_buyer, merchant, run_jobs):
    # cashback on the order: a buyer with no order is refused, one over the daily cap waits for approval
    failure = _failure(supervisor, code="SHOP-20", remedy="cashback", amount_fen=2000)
    order = paid_order(merchant=merchant, buyer=buyer)
    _coupon_ticket(buyer, subject="SHOP-20 失效", order=order)
    services.register_buyers(actor=supervisor, failure_id=failure.pk, source="code")
    services.register_buyers(actor=supervisor, failure_id=failure.pk, source="list", entries=[other_buyer.username])
    from compensation.services import update_policy

    update_policy(actor=supervisor, changes={"buyer_daily_cap": 0}, reason="压测")

    job = run_jobs(supervisor, failure)
    assert (job.done_count, job.failed_count) == (1, 1)
    rows = {r.buyer_id: r for r in AffectedBuyer.objects.filter(failure=failure)}
    assert rows[other_buyer.pk].outcome == "failed" and rows[other_buyer.pk].detail["code"] == "order_not_eligible"
    assert rows[buyer.pk].outcome == "pending_approval"
    remedy = Remedy.objects.get(pk=rows[buyer.pk].remedy_id)
    assert remedy.status == "pending_approval" and remedy.kind == "refund" and remedy.amount_fen == 2000
    assert "buyer_daily_cap" in rows[buyer.pk].detail["reasons"]


def test_compensation_needs_an_idempotency_key_and_a_supervisor(supervisor, agent, buyer):
    failure = _failure(supervisor)
    _coupon_ticket(buyer)
    services.register_buyers(actor=supervisor, failure_id=failure.pk, source="code")
    with pytest.raises(IdempotencyKeyRequired):
        services.compensate(actor=supervisor, failure_id=failure.pk, idempotency_key=None)
    with pytest.raises(PermissionDenied):
        services.compensate(actor=agent, failure_id=failure.pk, idempotency_key="k")
    with pytest.raises(PermissionDenied):
        services.register_buyers(actor=agent, failure_id=failure.pk, source="code")
    assert not BulkJob.objects.exists() and Remedy.objects.count() == 0


# --- API ---------------------------------------------------------------------------


def test_the_api_registers_previews_compensates_and_reports(api, supervisor, agent, buyer, run_jobs,
                                                           django_capture_on_commit_callbacks):
    client = api(supervisor)
    created = client.post("/api/v1/coupon-failures/", {"code": "D11-50OFF", "title": "满减券失效", "remedy": "coupon",
                                                      "reason": "活动券失效补偿"}, format="json")
    assert created.status_code == 201
    failure_id = created.json()["id"]
    again = client.post("/api/v1/coupon-failures/", {"code": "D11-50OFF", "title": "x", "remedy": "coupon",
                                                    "reason": "x"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "coupon_failure_exists"

    _coupon_ticket(buyer)
    registered = client.post(f"/api/v1/coupon-failures/{failure_id}/buyers/", {"source": "code"}, format="json")
    assert registered.json() == {"added": 1, "already": 0, "unknown": []}
    bad = client.post(f"/api/v1/coupon-failures/{failure_id}/buyers/", {"source": "query"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"

    preview = client.get(f"/api/v1/coupon-failures/{failure_id}/").json()
    assert preview["summary"]["to_compensate"] == 1 and preview["job"] is None

    assert client.post(f"/api/v1/coupon-failures/{failure_id}/compensate/").json()["code"] == "idempotency_key_required"
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(f"/api/v1/coupon-failures/{failure_id}/compensate/", HTTP_IDEMPOTENCY_KEY="c-1")
    assert started.status_code == 202 and started.json()["kind"] == "coupon_comp"

    report = client.get(f"/api/v1/coupon-failures/{failure_id}/").json()
    assert report["summary"]["by_outcome"] == {"executed": 1} and report["job"]["status"] == "done"
    rows = client.get(f"/api/v1/coupon-failures/{failure_id}/buyers/?outcome=executed").json()
    assert rows["count"] == 1 and rows["results"][0]["buyer_id"] == buyer.pk and rows["results"][0]["remedy_id"]
    assert client.get(f"/api/v1/coupon-failures/{failure_id}/buyers/?outcome=maybe").status_code == 400
    assert client.get("/api/v1/coupon-failures/").json()["count"] == 1
    assert client.get("/api/v1/coupon-failures/999999/").status_code == 404

    for outsider in (agent, buyer):
        other = api(outsider)
        assert other.get("/api/v1/coupon-failures/").status_code == 403
        assert other.get(f"/api/v1/coupon-failures/{failure_id}/").status_code == 403
        assert other.post(f"/api/v1/coupon-failures/{failure_id}/compensate/",
                          HTTP_IDEMPOTENCY_KEY="c-2").status_code == 403


# --- pages -------------------------------------------------------------------------


def test_the_pages_register_upload_preview_and_compensate(client, supervisor, buyer, other_buyer,
                                                          django_capture_on_commit_callbacks,
                                                          django_assert_max_num_queries):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(supervisor)
    assert "data-coupon-failures" in client.get("/console/incidents/").content.decode()
    page = client.get("/console/coupon-failures/").content.decode()
    assert "data-coupon-failure-form" in page
    refused = client.post("/console/coupon-failures/", {"code": "x", "title": "t", "remedy": "coupon", "reason": "r"})
    assert refused.status_code == 400 and not CouponFailure.objects.exists()
    made = client.post("/console/coupon-failures/", {"code": "D11-50OFF", "title": "满减券失效", "remedy": "coupon",
                                                    "amount_fen": "", "reason": "活动券失效补偿"})
    failure = CouponFailure.objects.get()
    assert made.status_code == 302 and made["Location"] == f"/console/coupon-failures/{failure.pk}/"

    upload = SimpleUploadedFile("buyers.csv", f"\ufeff{buyer.username},nobody\n{other_buyer.phone or other_buyer.pk}\n"
                                .encode("utf-8"), content_type="text/csv")
    listed = client.post(f"/console/coupon-failures/{failure.pk}/buyers/", {"source": "list", "file": upload})
    html = listed.content.decode()
    assert listed.status_code == 200 and 'data-registered="2"' in html and "nobody" in html
    bad = client.post(f"/console/coupon-failures/{failure.pk}/buyers/", {"source": "query", "since": "x"})
    assert bad.status_code == 400 and 'data-code="invalid"' in bad.content.decode()

    with django_assert_max_num_queries(30):
        preview = client.get(f"/console/coupon-failures/{failure.pk}/").content.decode()
    assert 'data-figure="to-compensate">2<' in preview and "data-compensate" in preview

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(f"/console/coupon-failures/{failure.pk}/compensate/", {"idempotency_key": "page-1"},
                           HTTP_HX_REQUEST="true")
    assert done.status_code == 204 and done["HX-Redirect"] == f"/console/coupon-failures/{failure.pk}/"
    report = client.get(f"/console/coupon-failures/{failure.pk}/").content.decode()
    assert report.count('data-outcome="executed"') >= 2 and "data-compensate" not in report
    assert Coupon.objects.count() == 2

    client.force_login(UserFactory(role=roles.AGENT))
    assert client.get(f"/console/coupon-failures/{failure.pk}/").status_code == 403
    assert client.post(f"/console/coupon-failures/{failure.pk}/compensate/", {"idempotency_key": "x"}).status_code == 403
