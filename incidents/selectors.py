"""Reads for the incident pages and the supervisor dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, Sum
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from compensation.models import BudgetDay, Remedy
from incidents.models import BulkJob, Incident
from tickets import sla
from tickets.models import AgentProfile, Channel, SlaBreach, Ticket
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


def dashboard(*, now: datetime | None = None, minutes: int = 60) -> Dashboard:
    """Every figure from the database as it is now; a fixed number of queries."""
    now = now or timezone.now()
    start = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    per_minute = dict(
        Ticket.objects.filter(created_at__gte=start).annotate(minute=TruncMinute("created_at"))
        .values_list("minute").annotate(n=Count("id")).values_list("minute", "n")
    )
    inflow = [(start + timedelta(minutes=i), per_minute.get(start + timedelta(minutes=i), 0)) for i in range(minutes)]
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
    )


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


__all__ = ["Dashboard", "dashboard", "incident_tickets", "open_incidents", "recent_jobs"]
