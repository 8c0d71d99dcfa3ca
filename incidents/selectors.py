"""Reads for the incident pages, bulk jobs (a job and its dry run) and the supervisor dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections, router
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
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
from tickets.models import AgentProfile, Channel, QuickReply, Rating, SlaBreach, Ticket
from tickets.services.knowledge import render_quick_reply
from tickets.services.people import day_start, worked_seconds


def open_incidents():
    return Incident.objects.filter(status=Incident.Status.OPEN).annotate(ticket_count=Count("links")).order_by("due_at")


def incident_tickets(incident: Incident, limit: int = 50) -> list[Ticket]:
    return list(Ticket.objects.filter(incident_links__incident=incident).select_related("buyer", "order", "assignee")
                .order_by("-created_at")[:limit])


def recent_jobs(incident: Incident) -> list[BulkJob]:
    return list(incident.jobs.select_related("created_by").order_by("-created_at")[:10])


# The market board (issue #14 item 5): the last hour in 5-minute buckets
# (per minute where a minute holds enough to read: the inflow), today against
# the same clock time yesterday and a week ago.
BUCKET_MIN = 5
BUCKETS = 12
DAYS_BACK = (0, 1, 7)  # today, yesterday, the same hour last week
TOP_CATEGORIES = 3
CSAT_WINDOW_MIN = 60


@dataclass(frozen=True)
class Trend:
    """One figure over the same window on three days, aligned point by point
    (``None`` where a bucket holds nothing to average)."""

    today: list
    yesterday: list
    last_week: list


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
    # the market board's series, each in BUCKETS buckets of BUCKET_MIN minutes from ``start``
    start: datetime | None = None
    categories: dict[str, Trend] = None  # the top categories of the hour: tickets opened per bucket
    waiting: Trend | None = None  # chats waiting for a first reply at each bucket's end
    first_reply_s: Trend | None = None  # average seconds to the first reply of chats answered in the bucket
    csat: Trend | None = None  # average rating over the CSAT_WINDOW_MIN minutes up to each bucket's end
    spend_days: Trend | None = None  # cumulative spend per hour: today up to now, the other days all 24 hours


def dashboard(*, now: datetime | None = None, minutes: int = 60) -> Dashboard:
    """Every figure from the database as it is now; a fixed number of queries,
    read from the replica when there is one (``core/db_router.py``: a board
    refreshed every few seconds may lag by the replica's delay)."""
    with replica_reads():
        return _dashboard(now=now or timezone.now(), minutes=minutes)


def _dashboard(*, now: datetime, minutes: int) -> Dashboard:
    start = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    inflow, yesterday, last_week, categories = _inflow(start, minutes)
    waiting, waiting_now, oldest = _waiting_chats(start, now)
    breaches = dict(SlaBreach.objects.filter(detected_at__gte=day_start(now)).values_list("grade")
                    .annotate(n=Count("id")).values_list("grade", "n"))
    budget = BudgetDay.objects.filter(date=timezone.localdate(now)).first()
    spend_days = _spend_by_hour(now)
    hour0 = day_start(now)
    spend = [(timezone.localtime(hour0 + timedelta(hours=i)), v) for i, v in enumerate(spend_days.today)]
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
        now=now, inflow=inflow, waiting_chats=waiting_now,
        longest_wait_s=max(0, int((now - oldest).total_seconds())) if oldest else 0,
        breaches_by_grade={grade: breaches.get(grade, 0) for grade, _ in sla.GRADE_CHOICES},
        budget=budget, spend=spend, agents=agents, incidents=list(open_incidents()[:10]),
        inflow_yesterday=yesterday, inflow_last_week=last_week,
        start=start, categories=categories, waiting=waiting, first_reply_s=_first_reply(start),
        csat=_csat_rolling(start), spend_days=spend_days,
    )


def _windows(first: datetime, minutes: int) -> list[tuple[datetime, datetime]]:
    """The window ``[first, first + minutes)`` today, yesterday and a week ago."""
    return [(first - timedelta(days=d), first - timedelta(days=d) + timedelta(minutes=minutes)) for d in DAYS_BACK]


def _in_windows(field: str, windows: list[tuple[datetime, datetime]]) -> Q:
    when = Q()
    for first, end in windows:
        when |= Q(**{f"{field}__gte": first, f"{field}__lt": end})
    return when


def _bucket_of(minute: datetime, start: datetime) -> tuple[int, int] | None:
    """(day index in DAYS_BACK, bucket) of a minute in one of the windows from ``start``."""
    for day, d in enumerate(DAYS_BACK):
        offset = (minute - (start - timedelta(days=d))).total_seconds() // 60
        if 0 <= offset < BUCKETS * BUCKET_MIN:
            return day, int(offset // BUCKET_MIN)
    return None


def _inflow(start: datetime, minutes: int):
    """Tickets opened per minute over the hour on the three days, and per
    bucket for the hour's top categories: one query, grouped by minute and
    category in the database (at most minutes × 3 × categories rows)."""
    rows = (Ticket.objects.filter(_in_windows("created_at", _windows(start, minutes)))
            .annotate(minute=TruncMinute("created_at")).values_list("minute", "category")
            .annotate(n=Count("id")).order_by())
    per_minute: dict[datetime, int] = {}
    by_category: dict[str, list[list[int]]] = {}
    for minute, category, n in rows:
        per_minute[minute] = per_minute.get(minute, 0) + n
        where = _bucket_of(minute, start)
        if where is not None:
            days = by_category.setdefault(category, [[0] * BUCKETS for _ in DAYS_BACK])
            days[where[0]][where[1]] += n
    series = [[per_minute.get(first + timedelta(minutes=i), 0) for i in range(minutes)]
              for first, _ in _windows(start, minutes)]
    inflow = [(start + timedelta(minutes=i), v) for i, v in enumerate(series[0])]
    # the categories that brought most tickets this hour (then yesterday's, then by name)
    top = sorted(by_category, key=lambda c: (-sum(by_category[c][0]), -sum(by_category[c][1]), c))[:TOP_CATEGORIES]
    categories = {c: Trend(*by_category[c]) for c in top}
    return inflow, series[1], series[2], categories


def _bucket_ends(start: datetime) -> list[datetime]:
    return [start + timedelta(minutes=BUCKET_MIN * (k + 1)) for k in range(BUCKETS)]


def waiting_at(at: datetime) -> Q:
    """A chat waits from its opening until its first reply (or until it is
    resolved, closed or merged without one). A point-in-time count that the
    timestamps give back for any past moment, so yesterday's and last week's
    exist without sampling; at ``now`` it is the chats with no reply yet among
    the active ones (``Ticket.status`` new, open, assigned or waiting)."""
    return (Q(created_at__lt=at) & (Q(first_response_at__isnull=True) | Q(first_response_at__gte=at))
            & (Q(resolved_at__isnull=True) | Q(resolved_at__gte=at)) & (Q(closed_at__isnull=True) | Q(closed_at__gte=at)))


WAITING_NOW = Q(first_response_at__isnull=True, resolved_at__isnull=True, closed_at__isnull=True)


def _waiting_chats(start: datetime, now: datetime) -> tuple[Trend, int, datetime | None]:
    """Chats waiting at each bucket's end on the three days, the number now
    and the oldest waiting one: one query of 36 conditional sums over the chats
    that were still waiting at the earliest point (``waiting_at``, written as
    plain SQL: the ORM spends ~20 ms of Python compiling 36 filtered counts,
    the database under 5 ms answering them)."""
    points = [end - timedelta(days=d) for d in DAYS_BACK for end in _bucket_ends(start)]
    earliest = min(points)
    alias = router.db_for_read(Ticket) or DEFAULT_DB_ALIAS
    connection = connections[alias]
    adapt = connection.ops.adapt_datetimefield_value
    qn = connection.ops.quote_name
    created, answered, resolved, closed = (qn(c) for c in ("created_at", "first_response_at", "resolved_at", "closed_at"))
    at = (f"SUM(CASE WHEN {created} < %s AND ({answered} IS NULL OR {answered} >= %s) AND ({resolved} IS NULL "
          f"OR {resolved} >= %s) AND ({closed} IS NULL OR {closed} >= %s) THEN 1 ELSE 0 END)")
    waiting_now = f"{answered} IS NULL AND {resolved} IS NULL AND {closed} IS NULL"
    sql = (f"SELECT SUM(CASE WHEN {waiting_now} THEN 1 ELSE 0 END), MIN(CASE WHEN {waiting_now} THEN {created} END), "
           + ", ".join([at] * len(points))
           + f" FROM {qn(Ticket._meta.db_table)} WHERE {qn('channel')} = %s AND {created} <= %s"
           f" AND ({answered} IS NULL OR {answered} >= %s) AND ({resolved} IS NULL OR {resolved} >= %s)"
           f" AND ({closed} IS NULL OR {closed} >= %s)")
    params = [adapt(p) for point in points for p in (point,) * 4]
    params += [Channel.CHAT, adapt(now), adapt(earliest), adapt(earliest), adapt(earliest)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    oldest = row[1]
    if oldest is not None and not isinstance(oldest, datetime):  # SQLite answers MIN() of a text column as text
        oldest = connection.ops.convert_datetimefield_value(oldest, None, connection)
    counts = [int(v or 0) for v in row[2:]]
    trend = Trend(*[counts[day * BUCKETS:(day + 1) * BUCKETS] for day in range(len(DAYS_BACK))])
    return trend, int(row[0] or 0), oldest


def _first_reply(start: datetime) -> Trend:
    """Average seconds from opening to the first reply of the chats whose first
    reply landed in each bucket: summed per minute in the database."""
    waited = ExpressionWrapper(F("first_response_at") - F("created_at"), output_field=DurationField())
    rows = (Ticket.objects.filter(_in_windows("first_response_at", _windows(start, BUCKETS * BUCKET_MIN)),
                                  channel=Channel.CHAT)
            .annotate(minute=TruncMinute("first_response_at")).values_list("minute")
            .annotate(n=Count("id"), total=Sum(waited)).values_list("minute", "n", "total").order_by())
    sums = [[[0, 0.0] for _ in range(BUCKETS)] for _ in DAYS_BACK]
    for minute, n, total in rows:
        where = _bucket_of(minute, start)
        if where is not None:
            cell = sums[where[0]][where[1]]
            cell[0] += n
            cell[1] += _seconds(total)
    return Trend(*[[round(s / n, 1) if n else None for n, s in day] for day in sums])


def _seconds(value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000  # a backend that sums durations as microseconds


def _csat_rolling(start: datetime) -> Trend:
    """The average rating over the CSAT_WINDOW_MIN minutes up to each bucket's
    end: ratings summed per minute in the database, rolled here."""
    reach = CSAT_WINDOW_MIN - BUCKET_MIN
    first = start - timedelta(minutes=reach)
    rows = (Rating.objects.filter(_in_windows("created_at", _windows(first, reach + BUCKETS * BUCKET_MIN)))
            .annotate(minute=TruncMinute("created_at")).values_list("minute")
            .annotate(n=Count("id"), total=Sum("score")).values_list("minute", "n", "total").order_by())
    per_minute = {minute: (n, total) for minute, n, total in rows}
    days = []
    for d in DAYS_BACK:
        values = []
        for end in _bucket_ends(start):
            n = total = 0
            for i in range(CSAT_WINDOW_MIN):
                got = per_minute.get(end - timedelta(days=d, minutes=i + 1))
                if got:
                    n, total = n + got[0], total + got[1]
            values.append(round(total / n, 2) if n else None)
        days.append(values)
    return Trend(*days)


def _spend_by_hour(now: datetime) -> Trend:
    """What executed remedies cost, cumulative per hour of the day: today up to
    this hour, yesterday and the same day last week all 24 hours
    (``Remedy.cost_fen``, summed in one query)."""
    today = day_start(now)
    windows = [(today - timedelta(days=d), today - timedelta(days=d) + timedelta(days=1)) for d in DAYS_BACK]
    rows = (Remedy.objects.filter(_in_windows("executed_at", windows), status=Remedy.Status.EXECUTED)
            .annotate(hour=TruncHour("executed_at")).values("hour", "kind", "with_coupon")
            .annotate(amount=Sum("amount_fen"), coupons=Sum("coupon_fen")).order_by())
    per_hour: list[list[int]] = [[0] * 24 for _ in DAYS_BACK]
    for row in rows:
        cost = (row["amount"] if row["kind"] in (Remedy.Kind.REFUND, Remedy.Kind.COUPON) else 0) + (
            row["coupons"] if row["with_coupon"] else 0)
        for day, (first, end) in enumerate(windows):
            if first <= row["hour"] < end:
                per_hour[day][int((row["hour"] - first).total_seconds() // 3600)] += cost
    hours_today = int((now - today).total_seconds() // 3600) + 1
    cumulative = []
    for day, hours in enumerate(per_hour):
        total, series = 0, []
        for fen in hours[:hours_today if day == 0 else 24]:
            total += fen
            series.append(total)
        cumulative.append(series)
    return Trend(*cumulative)


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
    "CouponFailureSummary", "Dashboard", "PreviewRow", "Trend", "WAITING_NOW", "affected_buyers",
    "coupon_failure_summary", "coupon_failures", "get_coupon_failure_for", "dashboard", "get_job_for",
    "incident_tickets", "open_incidents", "preview_job", "recent_jobs", "render_macro", "waiting_at",
]
