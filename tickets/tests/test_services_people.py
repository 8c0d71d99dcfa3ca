"""Presence, the 7-hour shift (continuous or split), reminders and overtime."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from tickets import services
from tickets.errors import InvalidInput, NotFound, OvertimeDecided, PermissionDenied
from tickets.models import AgentProfile, OvertimeRequest, WorkSession
from tickets.services.people import day_start, worked_seconds
from tickets.tests.factories import make_agent_profile


@pytest.mark.django_db
def test_presence_opens_and_closes_work_sessions(agent):
    services.set_presence(agent=agent, presence="online")
    assert WorkSession.objects.filter(agent=agent, ended_at__isnull=True).count() == 1
    services.set_presence(agent=agent, presence="online")  # no second session
    assert WorkSession.objects.filter(agent=agent).count() == 1
    services.set_presence(agent=agent, presence="away")
    session = WorkSession.objects.get(agent=agent)
    assert session.ended_at is not None
    assert AgentProfile.objects.get(user=agent).presence == "away"


@pytest.mark.django_db
def test_presence_refusals(agent, buyer):
    with pytest.raises(InvalidInput):
        services.set_presence(agent=agent, presence="sleeping")
    with pytest.raises(PermissionDenied):
        services.set_presence(agent=buyer, presence="online")


@pytest.mark.django_db
def test_split_shift_adds_up_and_ignores_yesterday(agent):
    now = timezone.now()
    start = day_start(now)
    if now - start < timedelta(hours=3):
        now = start + timedelta(hours=10)
    WorkSession.objects.create(agent=agent, started_at=start - timedelta(hours=2), ended_at=start + timedelta(hours=1))
    WorkSession.objects.create(agent=agent, started_at=now - timedelta(hours=1), ended_at=None)
    assert worked_seconds(agent_ids=[agent.pk], now=now)[agent.pk] == 2 * 3600


@pytest.mark.django_db(transaction=True)
async def test_shift_reminder_once_a_day(agent, daytime):
    def given():
        make_agent_profile(agent)
        WorkSession.objects.create(agent=agent, started_at=timezone.now() - timedelta(hours=7, minutes=2))

    await database_sync_to_async(given)()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(f"agent.{agent.pk}", channel)

    assert await database_sync_to_async(services.send_shift_reminders)() == [agent.pk]
    frame = (await layer.receive(channel))["payload"]
    assert frame["type"] == "shift.reminder" and frame["worked_s"] >= 7 * 3600
    assert await database_sync_to_async(services.send_shift_reminders)() == []
    assert (await database_sync_to_async(services.shift_status)(agent=agent)).reached


@pytest.mark.django_db
def test_no_reminder_below_the_limit(agent):
    make_agent_profile(agent)
    WorkSession.objects.create(agent=agent, started_at=timezone.now() - timedelta(hours=6, minutes=50))
    assert services.send_shift_reminders() == []


@pytest.mark.django_db
def test_overtime_extends_the_limit(agent, supervisor):
    overtime = services.request_overtime(agent=agent, minutes=90, reason="双十一高峰")
    assert overtime.status == "requested"
    services.decide_overtime(supervisor=supervisor, request_id=overtime.pk, grant=True)
    status = services.shift_status(agent=agent)
    assert status.limit_s == 7 * 3600 + 90 * 60
    assert status.overtime_granted_s == 90 * 60
    overtime.refresh_from_db()
    assert (overtime.status, overtime.decided_by_id) == ("granted", supervisor.pk)


@pytest.mark.django_db
def test_overtime_refusals(agent, other_agent, supervisor, buyer):
    with pytest.raises(InvalidInput):
        services.request_overtime(agent=agent, minutes=0, reason="x")
    with pytest.raises(InvalidInput):
        services.request_overtime(agent=agent, minutes=300, reason="x")
    with pytest.raises(InvalidInput):
        services.request_overtime(agent=agent, minutes=30, reason="  ")
    with pytest.raises(PermissionDenied):
        services.request_overtime(agent=buyer, minutes=30, reason="x")
    overtime = services.request_overtime(agent=agent, minutes=30, reason="收尾")
    with pytest.raises(PermissionDenied):
        services.decide_overtime(supervisor=other_agent, request_id=overtime.pk, grant=True)
    own = services.request_overtime(agent=supervisor, minutes=30, reason="自己")
    with pytest.raises(PermissionDenied):
        services.decide_overtime(supervisor=supervisor, request_id=own.pk, grant=True)
    with pytest.raises(NotFound):
        services.decide_overtime(supervisor=supervisor, request_id=987654, grant=True)
    services.decide_overtime(supervisor=supervisor, request_id=overtime.pk, grant=False)
    with pytest.raises(OvertimeDecided):
        services.decide_overtime(supervisor=supervisor, request_id=overtime.pk, grant=True)
    assert OvertimeRequest.objects.get(pk=overtime.pk).status == "denied"
    assert services.shift_status(agent=agent).limit_s == 7 * 3600
