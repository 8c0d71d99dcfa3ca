"""Agents at work: presence, the 7-hour shift, overtime."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from core.locks import lock
from accounts import roles
from tickets import events
from tickets.errors import InvalidInput, NotFound, OvertimeDecided, OvertimePending, PermissionDenied
from tickets.locks import lock_agent_profiles
from tickets.models import AgentProfile, OvertimeRequest, WorkSession


def day_start(now: datetime) -> datetime:
    local = timezone.localtime(now)
    return timezone.make_aware(datetime.combine(local.date(), time.min), timezone.get_current_timezone())


def worked_seconds(*, agent_ids: list[int], now: datetime) -> dict[int, int]:
    """Seconds each agent has been online today, split sessions added up."""
    start = day_start(now)
    sessions = WorkSession.objects.filter(agent_id__in=agent_ids, started_at__lt=now).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=start)
    )
    totals = dict.fromkeys(agent_ids, 0)
    for agent_id, started_at, ended_at in sessions.values_list("agent_id", "started_at", "ended_at"):
        begin = max(started_at, start)
        end = min(ended_at or now, now)
        if end > begin:
            totals[agent_id] += int((end - begin).total_seconds())
    return totals


def shift_limits(*, agent_ids: list[int], now: datetime) -> dict[int, int]:
    """Seconds each agent may work today: the shift plus granted overtime."""
    base = int(settings.SHIFT_HOURS * 3600)
    granted = (
        OvertimeRequest.objects.filter(
            agent_id__in=agent_ids, work_date=timezone.localdate(now), status=OvertimeRequest.Status.GRANTED
        )
        .values("agent_id")
        .annotate(minutes=Sum("minutes"))
    )
    limits = dict.fromkeys(agent_ids, base)
    for row in granted:
        limits[row["agent_id"]] += row["minutes"] * 60
    return limits


@dataclass(frozen=True)
class ShiftStatus:
    worked_s: int
    limit_s: int
    overtime_granted_s: int
    # the agent's latest overtime request of today, whatever its status (the shift bar shows it)
    latest_overtime: OvertimeRequest | None = None

    @property
    def reached(self) -> bool:
        return self.worked_s >= self.limit_s

    @property
    def remaining_s(self) -> int:
        return max(0, self.limit_s - self.worked_s)


def shift_status(*, agent, now: datetime | None = None) -> ShiftStatus:
    """One agent's day: worked, the limit with granted overtime, and the
    latest overtime request (two queries)."""
    now = now or timezone.now()
    worked = worked_seconds(agent_ids=[agent.pk], now=now)[agent.pk]
    requests = list(
        OvertimeRequest.objects.filter(agent_id=agent.pk, work_date=timezone.localdate(now)).order_by("-created_at", "-pk")
    )
    granted_s = 60 * sum(r.minutes for r in requests if r.status == OvertimeRequest.Status.GRANTED)
    return ShiftStatus(worked_s=worked, limit_s=int(settings.SHIFT_HOURS * 3600) + granted_s,
                       overtime_granted_s=granted_s, latest_overtime=requests[0] if requests else None)


def _profile_for(agent) -> AgentProfile:
    profile, _ = AgentProfile.objects.get_or_create(user=agent)
    return profile


@transaction.atomic(durable=True)
def set_presence(*, agent, presence: str, now: datetime | None = None) -> AgentProfile:
    """Online starts a work session, anything else ends it; going online
    offers waiting chats."""
    if not roles.is_agent(agent):
        raise PermissionDenied("Only agents have a presence.")
    if presence not in AgentProfile.Presence.values:
        raise InvalidInput(f"Unknown presence {presence!r}.", field="presence")
    now = now or timezone.now()
    _profile_for(agent)
    (profile,) = lock_agent_profiles([agent.pk])
    if profile.presence == presence:
        return profile
    profile.presence = presence
    profile.presence_changed_at = now
    profile.save(update_fields=["presence", "presence_changed_at"])
    open_session = WorkSession.objects.filter(agent=agent, ended_at__isnull=True).first()
    if presence == AgentProfile.Presence.ONLINE and open_session is None:
        WorkSession.objects.create(agent=agent, started_at=now)
    elif presence != AgentProfile.Presence.ONLINE and open_session is not None:
        open_session.ended_at = now
        open_session.save(update_fields=["ended_at"])
    events.presence_changed(agent.pk, presence)
    if presence == AgentProfile.Presence.ONLINE:
        from tickets.tasks import dispatch_chats_later

        dispatch_chats_later()
    return profile


@transaction.atomic(durable=True)
def request_overtime(*, agent, minutes: int, reason: str, now: datetime | None = None) -> OvertimeRequest:
    if not roles.is_agent(agent):
        raise PermissionDenied("Only agents request overtime.")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 240:
        raise InvalidInput("minutes is an integer from 1 to 240.", field="minutes")
    reason = (reason or "").strip()
    if not reason or len(reason) > 255:
        raise InvalidInput("Give a reason (at most 255 characters).", field="reason")
    now = now or timezone.now()
    work_date = timezone.localdate(now)
    # one question at a time: the agent's profile row orders two clicks of "ask"
    _profile_for(agent)
    lock_agent_profiles([agent.pk])
    if OvertimeRequest.objects.filter(
        agent=agent, work_date=work_date, status=OvertimeRequest.Status.REQUESTED
    ).exists():
        raise OvertimePending()
    request = OvertimeRequest.objects.create(
        agent=agent, work_date=work_date, minutes=minutes, reason=reason, created_at=now
    )
    events.overtime_requested(request, agent=agent)
    return request


@transaction.atomic(durable=True)
def decide_overtime(*, supervisor, request_id: int, grant: bool, now: datetime | None = None) -> OvertimeRequest:
    """A supervisor grants or denies, once; nobody decides their own request."""
    if not roles.is_supervisor(supervisor):
        raise PermissionDenied("Only a supervisor decides overtime.")
    request = lock(OvertimeRequest.objects, "overtime_request").filter(pk=request_id).first()
    if request is None:
        raise NotFound("No such overtime request.")
    if request.agent_id == supervisor.pk:
        raise PermissionDenied("Nobody decides their own overtime request.")
    if request.status != OvertimeRequest.Status.REQUESTED:
        raise OvertimeDecided()
    now = now or timezone.now()
    request.status = OvertimeRequest.Status.GRANTED if grant else OvertimeRequest.Status.DENIED
    request.decided_by = supervisor
    request.decided_at = now
    request.save(update_fields=["status", "decided_by", "decided_at"])
    events.overtime_decided(request, supervisor=supervisor)
    if grant:
        # the agent has room again: reset today's reminder and offer waiting chats
        AgentProfile.objects.filter(user_id=request.agent_id).update(shift_reminded_on=None)
        from tickets.tasks import dispatch_chats_later

        dispatch_chats_later()
    return request


def send_shift_reminders(*, now: datetime | None = None) -> list[int]:
    """Remind each online agent once a day when the shift is reached."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    reminded = []
    online = list(
        AgentProfile.objects.filter(presence=AgentProfile.Presence.ONLINE)
        .exclude(shift_reminded_on=today)
        .values_list("user_id", flat=True)
    )
    if not online:
        return reminded
    worked = worked_seconds(agent_ids=online, now=now)
    limits = shift_limits(agent_ids=online, now=now)
    for agent_id in online:
        if worked[agent_id] < limits[agent_id]:
            continue
        with transaction.atomic():
            updated = (
                AgentProfile.objects.filter(user_id=agent_id)
                .exclude(shift_reminded_on=today)
                .update(shift_reminded_on=today)
            )
            if updated:
                events.shift_reminder(agent_id, worked[agent_id], limits[agent_id])
                reminded.append(agent_id)
    return reminded


__all__ = [
    "ShiftStatus", "day_start", "decide_overtime", "request_overtime", "send_shift_reminders",
    "set_presence", "shift_limits", "shift_status", "worked_seconds",
]
