"""Bulk jobs: the dry run writes nothing, a run acts once per item through the
owning service (caps and approvals still hold), a run stopped half-way resumes
without doing anything twice, cancels can be undone within the window."""

from __future__ import annotations

import pytest

from core.errors import DomainError
from incidents import selectors, services
from incidents.models import BulkJob, BulkJobItem, IncidentEvent
from merchants.models import Order
from merchants.tests.factories import paid_order
from tickets.models import Message
from tickets.tests.factories import open_ticket, ticket_in_state


@pytest.fixture
def incident(supervisor):
    return services.open_incident(actor=supervisor, title="浙江丢件潮", grade="2", region="浙江")


def _with_tickets(incident, supervisor, tickets):
    services.link_tickets(actor=supervisor, incident_id=incident.pk, ticket_ids=[t.pk for t in tickets])


@pytest.fixture
def start(django_capture_on_commit_callbacks):
    """Start a job and run what the commit queues (the job itself, eager here)."""
    def run(supervisor, job):
        with django_capture_on_commit_callbacks(execute=True):
            services.start_job(actor=supervisor, job_id=job.pk)
    return run


def _counts() -> tuple[int, int]:
    return Message.objects.count(), BulkJobItem.objects.exclude(status="pending").count()


@pytest.mark.django_db
def test_macro_reply_preview_then_run_once_with_placeholders_filled(supervisor, buyer, order, incident, start):
    tickets = [open_ticket(buyer=buyer, order=order) for _ in range(3)]
    _with_tickets(incident, supervisor, tickets)
    job = services.create_bulk_job(actor=supervisor, kind="macro_reply", incident_id=incident.pk,
                                   params={"body": "{buyer_name}您好，订单{order_no}的包裹我们正在追查。"})
    before = _counts()
    _, rows, counts = selectors.preview_job(user=supervisor, job_id=job.pk)
    assert _counts() == before  # the dry run changed nothing
    assert counts == {"ok": 3, "refused": 0}
    assert rows[0].change == f"{buyer.name}您好，订单{order.order_no}的包裹我们正在追查。"
    start(supervisor, job)  # eager here: runs on commit
    job.refresh_from_db()
    assert (job.status, job.done_count, job.percent) == ("done", 3, 100)
    for ticket in tickets:
        assert Message.objects.filter(ticket=ticket, body__startswith=buyer.name, author=supervisor).count() == 1
    # run again: nothing twice
    services.run_job(job_id=job.pk)
    assert Message.objects.filter(body__contains="正在追查").count() == 3
    with pytest.raises(DomainError) as again:
        services.start_job(actor=supervisor, job_id=job.pk)
    assert again.value.code == "job_state"
    assert IncidentEvent.objects.filter(incident=incident, kind="job_done").exists()


@pytest.mark.django_db
def test_a_job_stopped_half_way_resumes_without_doing_anything_twice(supervisor, buyer, order, incident):
    tickets = [open_ticket(buyer=buyer, order=order) for _ in range(5)]
    _with_tickets(incident, supervisor, tickets)
    job = services.create_bulk_job(actor=supervisor, kind="macro_reply", incident_id=incident.pk,
                                   params={"body": "统一回复"})
    BulkJob.objects.filter(pk=job.pk).update(status="queued")
    partial = services.run_job(job_id=job.pk, stop_after=2)  # the worker "dies" here
    assert (partial.status, partial.done_count) == ("running", 2)
    # the worst moment: an item's reply committed but its mark did not
    item = BulkJobItem.objects.filter(job=job, status="pending").order_by("id").first()
    from tickets import services as ticket_services

    ticket_services.post_message(actor=supervisor, ticket_id=item.target_id, body="统一回复",
                                 client_msg_id=f"bulk-{job.pk}-{item.target_id}")
    done = services.run_job(job_id=job.pk)
    assert (done.status, done.done_count) == ("done", 5)
    assert Message.objects.filter(body="统一回复").count() == 5


@pytest.mark.django_db
def test_a_worker_killed_between_marking_items_and_reporting_them_loses_no_count(supervisor, buyer, order,
                                                                                 incident, monkeypatch):
    """The rehearsal's Celery fault: items marked done, the worker killed before
    its next progress report. The resumed job counts them all the same."""
    from incidents.services import runner

    tickets = [open_ticket(buyer=buyer, order=order) for _ in range(5)]
    _with_tickets(incident, supervisor, tickets)
    job = services.create_bulk_job(actor=supervisor, kind="macro_reply", incident_id=incident.pk,
                                   params={"body": "统一回复"})
    BulkJob.objects.filter(pk=job.pk).update(status="queued")
    real, calls = runner._run_item, []

    class Killed(BaseException):
        pass

    def dies_on_the_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            raise Killed
        return real(*args)

    monkeypatch.setattr(runner, "_run_item", dies_on_the_fourth)
    with pytest.raises(Killed):
        services.run_job(job_id=job.pk, progress_every=1000, progress_interval_s=3600)
    assert BulkJobItem.objects.filter(job=job, status="done").count() == 3
    monkeypatch.setattr(runner, "_run_item", real)
    done = services.run_job(job_id=job.pk)
    assert (done.status, done.done_count, done.skipped_count, done.failed_count) == ("done", 5, 0, 0)
    assert Message.objects.filter(body="统一回复").count() == 5


@pytest.mark.django_db
def test_bulk_remedy_goes_through_apply_remedy_and_its_caps(supervisor, buyer, merchant, incident, start):
    from compensation.models import Remedy

    orders = [paid_order(merchant=merchant, buyer=buyer) for _ in range(2)]
    tickets = [ticket_in_state("assigned", buyer=buyer, agent=supervisor, order=o) for o in orders]
    closed = ticket_in_state("resolved", buyer=buyer, agent=supervisor, order=orders[0])
    _with_tickets(incident, supervisor, tickets + [closed])
    job = services.create_bulk_job(actor=supervisor, kind="remedy", incident_id=incident.pk,
                                   params={"remedy": "coupon", "reason": "丢件潮安抚"}, idempotency_key="bulk-1")
    assert job.total == 2  # only open tickets
    start(supervisor, job)
    job.refresh_from_db()
    assert job.done_count + job.failed_count == 2
    assert Remedy.objects.filter(ticket__in=tickets).count() == job.done_count
    services.run_job(job_id=job.pk)
    assert Remedy.objects.filter(ticket__in=tickets).count() == job.done_count  # not twice


@pytest.mark.django_db
def test_bulk_cancel_for_a_risk_list_and_its_undo(supervisor, buyer, other_buyer, merchant, start):
    mine = [paid_order(merchant=merchant, buyer=buyer, status=Order.Status.PAID) for _ in range(3)]
    shipped = paid_order(merchant=merchant, buyer=buyer)  # the factory's default: shipped
    theirs = paid_order(merchant=merchant, buyer=other_buyer, status=Order.Status.PAID)
    job = services.create_bulk_job(actor=supervisor, kind="cancel", user_ids=[buyer.pk],
                                   params={"reason": "疑似被盗账号"})
    assert sorted(job.items.values_list("target_id", flat=True)) == sorted(o.pk for o in mine)
    start(supervisor, job)
    job.refresh_from_db()
    assert job.status == "done" and job.undo_until is not None
    assert set(Order.objects.filter(pk__in=[o.pk for o in mine]).values_list("status", flat=True)) == {"cancelled"}
    assert Order.objects.get(pk=shipped.pk).status == "shipped" and Order.objects.get(pk=theirs.pk).status == "paid"
    services.undo_job(actor=supervisor, job_id=job.pk)
    assert set(Order.objects.filter(pk__in=[o.pk for o in mine]).values_list("status", flat=True)) == {"paid"}
    assert BulkJob.objects.get(pk=job.pk).status == "undone"


@pytest.mark.django_db
def test_undo_after_the_window_is_refused(supervisor, buyer, merchant, settings, start):
    settings.CANCEL_UNDO_WINDOW_S = 0
    paid_order(merchant=merchant, buyer=buyer, status=Order.Status.PAID)
    job = services.create_bulk_job(actor=supervisor, kind="cancel", user_ids=[buyer.pk], params={"reason": "x"})
    start(supervisor, job)
    with pytest.raises(DomainError) as late:
        services.undo_job(actor=supervisor, job_id=job.pk)
    assert late.value.code == "undo_expired"
    assert Order.objects.get(buyer=buyer).status == "cancelled"


@pytest.mark.django_db
def test_jobs_are_for_supervisors_and_refuse_bad_input(agent, supervisor, buyer, order, incident):
    with pytest.raises(DomainError) as denied:
        services.create_bulk_job(actor=agent, kind="macro_reply", incident_id=incident.pk, params={"body": "x"})
    assert denied.value.code == "permission_denied"
    for kind, params in [("macro_reply", {"body": ""}), ("remedy", {"remedy": "gold", "reason": "x"}),
                         ("nuke", {}), ("macro_reply", {"body": "x"})]:  # the last: no tickets linked yet
        with pytest.raises(DomainError) as bad:
            services.create_bulk_job(actor=supervisor, kind=kind, incident_id=incident.pk, params=params,
                                     idempotency_key="bad")
        assert bad.value.code == "invalid"
    assert not BulkJob.objects.exists()


@pytest.mark.django_db
def test_a_job_whose_heartbeat_stopped_is_resumed_by_the_sweep(supervisor, buyer, order, incident,
                                                               django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    tickets = [open_ticket(buyer=buyer, order=order) for _ in range(4)]
    _with_tickets(incident, supervisor, tickets)
    job = services.create_bulk_job(actor=supervisor, kind="macro_reply", incident_id=incident.pk,
                                   params={"body": "断点续跑"})
    BulkJob.objects.filter(pk=job.pk).update(status="queued")
    services.run_job(job_id=job.pk, stop_after=1)  # the process dies here
    assert services.resume_stalled_jobs() == []  # its heartbeat is fresh: leave it alone
    BulkJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.resume_stalled_jobs() == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.done_count) == ("done", 4)
    assert Message.objects.filter(body="断点续跑").count() == 4
    assert services.resume_stalled_jobs() == []


@pytest.mark.django_db(transaction=True)
def test_in_the_embedded_default_a_job_runs_in_a_thread_and_the_request_returns(supervisor, buyer, order, settings):
    import threading

    settings.BULK_JOBS_IN_THREAD = True
    incident = services.open_incident(actor=supervisor, title="线程", grade="2")
    tickets = [open_ticket(buyer=buyer, order=order) for _ in range(3)]
    services.link_tickets(actor=supervisor, incident_id=incident.pk, ticket_ids=[t.pk for t in tickets])
    job = services.create_bulk_job(actor=supervisor, kind="macro_reply", incident_id=incident.pk,
                                   params={"body": "后台执行"})
    services.start_job(actor=supervisor, job_id=job.pk)
    # wait for the job's thread itself, not by polling its row: on SQLite's shared-cache test
    # database a read beside the thread's write makes the write fail ("table is locked"),
    # which a real database file (with its busy timeout) does not
    for _ in range(100):
        runner = next((t for t in threading.enumerate() if t.name == f"bulk-job-{job.pk}"), None)
        if runner is None:
            break
        runner.join(timeout=0.1)
    assert BulkJob.objects.get(pk=job.pk).status == "done"
    assert BulkJob.objects.get(pk=job.pk).done_count == 3
    assert Message.objects.filter(body="后台执行").count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_on_one_job_do_each_item_once_and_count_it_once():
    """A redelivered task while the first worker still runs: both walk the items."""
    from accounts import roles
    from accounts.tests.factories import UserFactory
    from merchants.tests.factories import OrderFactory
    from tests.concurrency import race, requires_postgres

    requires_postgres()
    boss = UserFactory(role=roles.SUPERVISOR)
    buyer = UserFactory(role=roles.BUYER)
    order = OrderFactory(buyer=buyer)
    incident = services.open_incident(actor=boss, title="并发", grade="2")
    tickets = [open_ticket(buyer=buyer, order=order) for _ in range(12)]
    services.link_tickets(actor=boss, incident_id=incident.pk, ticket_ids=[t.pk for t in tickets])
    job = services.create_bulk_job(actor=boss, kind="macro_reply", incident_id=incident.pk, params={"body": "并发回复"})
    BulkJob.objects.filter(pk=job.pk).update(status="queued")
    _, errors = race(lambda i: services.run_job(job_id=job.pk, progress_every=1), 2)
    assert errors == []
    job.refresh_from_db()
    assert (job.status, job.done_count, job.total) == ("done", 12, 12)
    assert Message.objects.filter(body="并发回复").count() == 12
    assert IncidentEvent.objects.filter(incident=incident, kind="job_done").count() == 1


@pytest.mark.django_db
def test_the_dry_run_costs_the_same_queries_for_3_or_30_tickets(supervisor, buyer, order, incident,
                                                                django_assert_max_num_queries):
    def preview_queries(n):
        tickets = [open_ticket(buyer=buyer, order=order) for _ in range(n)]
        _with_tickets(incident, supervisor, tickets)
        job = services.create_bulk_job(actor=supervisor, kind="macro_reply", ticket_ids=[t.pk for t in tickets],
                                       params={"body": "{buyer_name}，{order_no}"})
        with django_assert_max_num_queries(10) as captured:
            selectors.preview_job(user=supervisor, job_id=job.pk)
        return len(captured.captured_queries)

    assert preview_queries(3) == preview_queries(30)


@pytest.mark.django_db
def test_linking_refuses_unknown_tickets_and_closed_incidents(supervisor, agent, buyer, order, incident):
    ticket = open_ticket(buyer=buyer, order=order)
    for bad in ([ticket.pk, 987654], ["x"]):
        with pytest.raises(DomainError) as refused:
            services.link_tickets(actor=supervisor, incident_id=incident.pk, ticket_ids=bad)
        assert refused.value.code == "invalid"
    with pytest.raises(DomainError) as nothing:
        services.link_tickets(actor=supervisor, incident_id=incident.pk)
    assert nothing.value.code == "invalid"
    with pytest.raises(DomainError) as denied:
        services.link_tickets(actor=agent, incident_id=incident.pk, ticket_ids=[ticket.pk])
    assert denied.value.code == "permission_denied"
    assert not incident.links.exists()
    services.close_incident(actor=supervisor, incident_id=incident.pk, cause="a", actions_taken="b", prevention="c")
    with pytest.raises(DomainError) as closed:
        services.link_tickets(actor=supervisor, incident_id=incident.pk, ticket_ids=[ticket.pk])
    assert closed.value.code == "incident_closed"
    with pytest.raises(DomainError) as gone:
        services.link_tickets(actor=supervisor, incident_id=987654, ticket_ids=[ticket.pk])
    assert gone.value.code == "not_found"


@pytest.mark.django_db
def test_the_incident_page_runs_a_remedy_or_cancel_job_from_the_same_form(client, supervisor, buyer, merchant, incident):
    from merchants.tests.factories import paid_order

    client.force_login(supervisor)
    order = paid_order(merchant=merchant, buyer=buyer, status=Order.Status.PAID)
    ticket = open_ticket(buyer=buyer, order=order)
    _with_tickets(incident, supervisor, [ticket])
    form = {"body": "", "remedy": "coupon", "reason": "安抚", "with_coupon": ""}
    remedy = client.post(f"/console/incidents/{incident.pk}/jobs/", {**form, "kind": "remedy"}, HTTP_HX_REQUEST="true")
    cancel = client.post(f"/console/incidents/{incident.pk}/jobs/", {**form, "kind": "cancel"}, HTTP_HX_REQUEST="true")
    assert remedy.status_code == cancel.status_code == 200
    assert list(BulkJob.objects.order_by("id").values_list("kind", "params")) == [
        ("remedy", {"remedy": "coupon", "amount_fen": None, "with_coupon": False, "reason": "安抚"}),
        ("cancel", {"reason": "安抚"}),
    ]
