"""Reads for the incident pages, bulk jobs (a job and its dry run) and the supervisor dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone
from django.utils.translation import gettext

from accounts import roles
from compensation import selectors as compensation_selectors
from compensation import services as compensation
from compensation.models import BudgetDay, Remedy
from core.db_router import replica_reads
from core.money import format_fen
from incidents.errors import JobNotFound, NotFound, PermissionDenied
from incidents.models import AffectedBuyer, BulkJob, CouponFailure, Incident
from merchants.models import Order
from tickets import sla
from tickets.models import AgentProfile, Channel, QuickReply, SlaBreach, Ticket
from tickets.services.knowledge import render_quick_reply
from tickets.services.people import day_start, worked_seconds


def open_incidents():
    return Incident.objects.filter(status=Incident.Status.OPEN).annotate(ticket_count=Count("links")).order_by("due_at")


def incident_tickets(incident: Incident, limit: int = 50) -> list[Ticket]:
    return list(Ticket.objects.filter(incident_links__incident=incident).select_related("buyer", "order", "assignee")
                .order_by("-created_at")[:limit])


def recent_jobs(incident: Incident) -> list[BulkJob]:
    return list(incident.jobs.select_related("created_by").order_by("-created_at")[:10])


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    inflow: list[tuple[datetime, int]]  # tickets opened per minute, the last hour, oldest first
    waiting_chats: int
    longest_wait_s: int
    breaches_by_grade: dict[str, int]
    budget: BudgetDay | None
    spend: list[tuple[datetime, int]]  # compensation spent so far today, hour by hour (cumulative fen)
    agents: list[dict]
    incidents: list[Incident]
    # the same minutes yesterday and a week ago (issue #14 item 5: today against them)
    inflow_yesterday: list[int] = ()
    inflow_last_week: list[int] = ()


def dashboard(*, now: datetime | None = None, minutes: int = 60) -> Dashboard:
    """Every figure from the database as it is now; a fixed number of queries,
    read from the replica when there is one (``core/db_router.py``: a board
    refreshed every few seconds may lag by the replica's delay)."""
    with replica_reads():
        return _dashboard(now=now or timezone.now(), minutes=minutes)


def _dashboard(*, now: datetime, minutes: int) -> Dashboard:
    start = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    per_minute = dict(
        Ticket.objects.filter(created_at__gte=start).annotate(minute=TruncMinute("created_at"))
        .values_list("minute").annotate(n=Count("id")).values_list("minute", "n")
    )
    inflow = [(start + timedelta(minutes=i), per_minute.get(start + timedelta(minutes=i), 0)) for i in range(minutes)]
    yesterday, last_week = _inflow_before(start, minutes, days=(1, 7))
    waiting = Ticket.objects.filter(channel=Channel.CHAT, status=Ticket.Status.OPEN).aggregate(
        n=Count("id"), oldest=Min("created_at"))
    breaches = dict(SlaBreach.objects.filter(detected_at__gte=day_start(now)).values_list("grade")
                    .annotate(n=Count("id")).values_list("grade", "n"))
    budget = BudgetDay.objects.filter(date=timezone.localdate(now)).first()
    spend = _spend_by_hour(now)
    profiles = list(AgentProfile.objects.select_related("user").exclude(presence=AgentProfile.Presence.OFFLINE)
                    .order_by("user__username")[:50])
    ids = [p.user_id for p in profiles]
    load = dict(Ticket.objects.filter(assignee_id__in=ids, status__in=Ticket.WORKING).values_list("assignee_id")
                .annotate(n=Count("id")).values_list("assignee_id", "n"))
    worked = worked_seconds(agent_ids=ids, now=now)
    agents = [{"name": p.user.name, "presence": p.presence, "presence_label": p.get_presence_display(),
               "load": load.get(p.user_id, 0), "capacity": p.capacity,
               "worked_s": worked.get(p.user_id, 0)} for p in profiles]
    return Dashboard(
        now=now, inflow=inflow, waiting_chats=waiting["n"],
        longest_wait_s=int((now - waiting["oldest"]).total_seconds()) if waiting["oldest"] else 0,
        breaches_by_grade={grade: breaches.get(grade, 0) for grade, _ in sla.GRADE_CHOICES},
        budget=budget, spend=spend, agents=agents, incidents=list(open_incidents()[:10]),
        inflow_yesterday=yesterday, inflow_last_week=last_week,
    )


def _inflow_before(start: datetime, minutes: int, *, days: tuple[int, ...]) -> list[list[int]]:
    """Tickets opened per minute over the same window ``days`` ago, each day a
    list aligned with today's minutes, all in one query."""
    windows = [(start - timedelta(days=d), start - timedelta(days=d) + timedelta(minutes=minutes)) for d in days]
    when = Q()
    for first, end in windows:
        when |= Q(created_at__gte=first, created_at__lt=end)
    per_minute = dict(Ticket.objects.filter(when).annotate(minute=TruncMinute("created_at"))
                      .values_list("minute").annotate(n=Count("id")).values_list("minute", "n"))
    return [[per_minute.get(first + timedelta(minutes=i), 0) for i in range(minutes)] for first, _ in windows]


def _spend_by_hour(now: datetime) -> list[tuple[datetime, int]]:
    """What today's executed remedies cost, cumulative per hour (``Remedy.cost_fen``, summed in one query)."""
    start = day_start(now)
    rows = (Remedy.objects.filter(status=Remedy.Status.EXECUTED, executed_at__gte=start)
            .annotate(hour=TruncHour("executed_at")).values("hour", "kind", "with_coupon")
            .annotate(amount=Sum("amount_fen"), coupons=Sum("coupon_fen")).order_by())
    per_hour: dict[datetime, int] = {}
    for row in rows:
        cost = (row["amount"] if row["kind"] in (Remedy.Kind.REFUND, Remedy.Kind.COUPON) else 0) + (
            row["coupons"] if row["with_coupon"] else 0)
        hour = timezone.localtime(row["hour"]).replace(minute=0, second=0, microsecond=0)
        per_hour[hour] = per_hour.get(hour, 0) + cost
    hours = int((now - start).total_seconds() // 3600) + 1
    total, series = 0, []
    for i in range(hours):
        hour = timezone.localtime(start + timedelta(hours=i)).replace(minute=0, second=0, microsecond=0)
        total += per_hour.get(hour, 0)
        series.append((hour, total))
    return series


# --- bulk jobs ---------------------------------------------------------------------


def get_job_for(*, user, job_id: int) -> BulkJob:
    """A bulk job, for supervisors only."""
    if not roles.is_supervisor(user):
        raise PermissionDenied("Only supervisors see bulk jobs.")
    job = BulkJob.objects.select_related("incident", "created_by").filter(pk=job_id).first()
    if job is None:
        raise JobNotFound()
    return job


@dataclass(frozen=True)
class PreviewRow:
    target_id: int
    label: str
    change: str
    ok: bool


def preview_job(*, user, job_id: int, limit: int = 50) -> tuple[BulkJob, list[PreviewRow], dict[str, int]]:
    """The dry run: what each item would do, without writing anything.
    Returns the first ``limit`` rows and counts over all items."""
    job = get_job_for(user=user, job_id=job_id)
    ids = list(job.items.order_by("id").values_list("target_id", flat=True))
    rows: list[PreviewRow] = []
    counts = {"ok": 0, "refused": 0}
    chunk = 500
    for start in range(0, len(ids), chunk):
        for row in _preview_chunk(job, ids[start:start + chunk], user=user):
            counts["ok" if row.ok else "refused"] += 1
            if len(rows) < limit:
                rows.append(row)
    return job, rows, counts


def _preview_chunk(job: BulkJob, ids: list[int], *, user) -> list[PreviewRow]:
    if job.kind == BulkJob.Kind.CANCEL:
        orders = Order.objects.filter(pk__in=ids).in_bulk()
        return [PreviewRow(i, orders[i].order_no if i in orders else f"#{i}",
                           gettext("cancel, %(amount)s back to the buyer") % {"amount": format_fen(orders[i].amount_fen)}
                           if i in orders and orders[i].status == Order.Status.PAID else gettext("not cancellable now"),
                           i in orders and orders[i].status == Order.Status.PAID) for i in ids]
    if job.kind == BulkJob.Kind.COUPON_COMPENSATION:
        return _coupon_preview_chunk(ids)
    found = Ticket.objects.select_related("buyer", "merchant", "order", "order__shipment", "assignee").in_bulk(ids)
    refusals = {}
    if job.kind == BulkJob.Kind.REMEDY:
        refusals = compensation.refusals_for(tickets=[t for t in found.values() if t.is_active],
                                             kind=job.params["remedy"], amount_fen=job.params.get("amount_fen"))
    rows = []
    for i in ids:
        ticket = found.get(i)
        if ticket is None or not ticket.is_active:
            rows.append(PreviewRow(i, f"#{i}", gettext("no longer open: skipped"), False))
            continue
        label = f"#{ticket.pk} {ticket.subject}"
        if job.kind == BulkJob.Kind.MACRO_REPLY:
            text, missing = render_macro(job, ticket, user)
            rows.append(PreviewRow(i, label, text if not missing else gettext("unfilled: %(names)s") % {
                "names": ", ".join(missing)}, not missing))
        else:
            refusal = refusals.get(ticket.pk)
            rows.append(PreviewRow(i, label, str(refusal.detail) if refusal else _remedy_label(job.params), refusal is None))
    return rows


def _coupon_preview_chunk(ids: list[int]) -> list[PreviewRow]:
    found = AffectedBuyer.objects.select_related("buyer", "failure", "order").in_bulk(ids)
    rows = []
    for i in ids:
        affected = found.get(i)
        if affected is None:
            rows.append(PreviewRow(i, f"#{i}", gettext("no longer registered: skipped"), False))
            continue
        rows.append(_coupon_row(affected))
    return rows


def _coupon_row(affected: AffectedBuyer) -> PreviewRow:
    failure = affected.failure
    label = f"{affected.buyer.name} ({affected.buyer.username})"
    if affected.outcome in (AffectedBuyer.Outcome.EXECUTED, AffectedBuyer.Outcome.PENDING_APPROVAL):
        return PreviewRow(affected.pk, label, gettext("already compensated: skipped"), False)
    if failure.remedy == CouponFailure.Remedy.CASHBACK:
        if affected.order_id is None:
            return PreviewRow(affected.pk, label, gettext("no order to pay cashback on: refused"), False)
        return PreviewRow(affected.pk, label, gettext("cashback %(amount)s on order %(order)s") % {
            "amount": format_fen(failure.amount_fen), "order": affected.order.order_no}, True)
    return PreviewRow(affected.pk, label, gettext("replacement coupon %(amount)s") % {
        "amount": format_fen(failure.amount_fen)}, True)


# --- failed campaign coupons ---------------------------------------------------------


def coupon_failures(*, user, limit: int = 50) -> list[CouponFailure]:
    """The registered failed coupons, newest first, each with its buyer counts (one query)."""
    if not roles.is_supervisor(user):
        raise PermissionDenied("Only supervisors handle failed coupons.")
    done = Q(buyers__outcome__in=[AffectedBuyer.Outcome.EXECUTED, AffectedBuyer.Outcome.PENDING_APPROVAL])
    return list(CouponFailure.objects.select_related("created_by", "job")
                .annotate(buyer_count=Count("buyers"), compensated_count=Count("buyers", filter=done))
                .order_by("-created_at", "-pk")[:limit])


def get_coupon_failure_for(*, user, failure_id: int) -> CouponFailure:
    if not roles.is_supervisor(user):
        raise PermissionDenied("Only supervisors handle failed coupons.")
    failure = CouponFailure.objects.select_related("created_by", "job").filter(pk=failure_id).first()
    if failure is None:
        raise NotFound("No such failed coupon.")
    return failure


@dataclass(frozen=True)
class CouponFailureSummary:
    total: int
    by_source: dict[str, int]
    by_outcome: dict[str, int]
    to_compensate: int
    estimated_fen: int
    executed_fen: int
    budget_left_fen: int
    breaker_open: bool


def coupon_failure_summary(failure: CouponFailure, *, now: datetime | None = None) -> CouponFailureSummary:
    """What the preview and the report show: who is registered (by source),
    what became of them (by outcome), what is left to pay against today's
    budget. Three queries."""
    rows = list(failure.buyers.order_by().values_list("source", "outcome").annotate(n=Count("id")))
    by_source: dict[str, int] = {}
    by_outcome: dict[str, int] = {}
    for source, outcome, n in rows:
        by_source[source] = by_source.get(source, 0) + n
        by_outcome[outcome] = by_outcome.get(outcome, 0) + n
    to_compensate = by_outcome.get(AffectedBuyer.Outcome.NONE, 0) + by_outcome.get(AffectedBuyer.Outcome.FAILED, 0)
    budget = compensation_selectors.budget_today(now=now)
    return CouponFailureSummary(
        total=sum(by_source.values()), by_source=by_source, by_outcome=by_outcome, to_compensate=to_compensate,
        estimated_fen=to_compensate * failure.amount_fen,
        executed_fen=by_outcome.get(AffectedBuyer.Outcome.EXECUTED, 0) * failure.amount_fen,
        budget_left_fen=max(0, budget.budget_fen - budget.spent_fen),
        breaker_open=budget.breaker_open,
    )


def affected_buyers(failure: CouponFailure, *, outcome: str | None = None):
    """The failure's registered buyers with their ticket and order, for lists and the report."""
    rows = failure.buyers.select_related("buyer", "ticket", "order").order_by("pk")
    if outcome is not None:
        rows = rows.filter(outcome=outcome)
    return rows


def render_macro(job: BulkJob, ticket: Ticket, agent) -> tuple[str, list[str]]:
    """A macro job's text for one ticket, and the placeholders it could not fill
    (the preview shows it, the runner posts it)."""
    return render_quick_reply(reply=QuickReply(body=job.params["body"]), ticket=ticket, agent=agent)


def _remedy_label(params: dict) -> str:
    label = str(Remedy.Kind(params["remedy"]).label)
    if params.get("amount_fen"):
        label += f" {format_fen(params['amount_fen'])}"
    elif params["remedy"] == Remedy.Kind.COUPON:
        label += f" {format_fen(compensation.get_policy().coupon_fen)}"
    if params.get("with_coupon"):
        label += f" + {format_fen(compensation.get_policy().coupon_fen)}"
    return label


__all__ = [
    "CouponFailureSummary", "Dashboard", "PreviewRow", "affected_buyers", "coupon_failure_summary", "coupon_failures",
    "get_coupon_failure_for", "dashboard", "get_job_for", "incident_tickets", "open_incidents", "preview_job",
    "recent_jobs", "render_macro",
]
