"""SLA grades, pause/resume while waiting on the buyer, and the breach sweep."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.management import call_command
from django.utils import timezone

from tickets import services
from tickets.errors import PermissionDenied
from tickets.models import SlaBreach, Ticket, TicketEvent
from tickets.tests.factories import open_ticket, ticket_in_state


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("grade", "deadline", "tier"),
    [("3", timedelta(minutes=30), 1), ("2", timedelta(hours=8), 2), ("1", timedelta(hours=12), 3),
     ("special", timedelta(hours=24), 4)],
)
def test_grade_sets_deadline_and_owning_tier(grade, deadline, tier, buyer, order, agent):
    ticket = open_ticket(buyer=buyer, order=order, actor=agent, grade=grade)
    assert ticket.due_at - ticket.created_at == deadline
    assert ticket.tier == tier


@pytest.mark.django_db
def test_buyer_cannot_choose_a_grade(buyer, order):
    with pytest.raises(PermissionDenied):
        open_ticket(buyer=buyer, order=order, grade="special")
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_waiting_on_buyer_pauses_and_resume_restores_the_remaining_time(buyer, order, agent):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    # 20 minutes of the 30 already used
    Ticket.objects.filter(pk=ticket.pk).update(due_at=timezone.now() + timedelta(minutes=10))

    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="wait_buyer")
    ticket.refresh_from_db()
    assert ticket.due_at is None
    assert 595 <= ticket.sla_remaining_s <= 600
    assert ticket.sla_paused_at is not None
    # a paused ticket is never overdue, however long the buyer takes
    Ticket.objects.filter(pk=ticket.pk).update(sla_paused_at=timezone.now() - timedelta(hours=5))
    assert services.sweep_sla() == []

    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resume")
    ticket.refresh_from_db()
    left = (ticket.due_at - timezone.now()).total_seconds()
    assert 590 <= left <= 600  # the 10 minutes that were left, not 5 hours less
    assert ticket.sla_paused_at is None and ticket.sla_remaining_s is None


@pytest.mark.django_db
def test_buyer_reply_resumes_a_ticket_waiting_on_them(buyer, order, agent):
    ticket = ticket_in_state("waiting_buyer", buyer=buyer, agent=agent, order=order)
    services.post_message(actor=buyer, ticket_id=ticket.pk, body="照片已发")
    ticket.refresh_from_db()
    assert ticket.status == "assigned"
    assert ticket.due_at is not None
    event = TicketEvent.objects.filter(ticket=ticket, kind="resume").get()
    assert event.data["reason"] == "buyer_replied"
    assert event.actor_id == buyer.pk


@pytest.mark.django_db
def test_waiting_on_merchant_does_not_pause(buyer, order, agent):
    ticket = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    assert ticket.due_at is not None and ticket.sla_paused_at is None


def _overdue(ticket, minutes=5):
    Ticket.objects.filter(pk=ticket.pk).update(due_at=timezone.now() - timedelta(minutes=minutes))


@pytest.mark.django_db(transaction=True)
async def test_sweep_escalates_once_records_and_alerts(buyer, order, agent):
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    fine = await database_sync_to_async(open_ticket)(buyer=buyer, order=order)
    await database_sync_to_async(_overdue)(ticket)
    # one event loop for the layer: the Redis layer's process-local channels need it
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("console", channel)
    agent_channel = await layer.new_channel()
    await layer.group_add(f"agent.{agent.pk}", agent_channel)

    breaches = await database_sync_to_async(services.sweep_sla)()

    assert [b.ticket_id for b in breaches] == [ticket.pk]

    def check_rows():
        ticket.refresh_from_db()
        assert ticket.tier == 2 and ticket.breached_at is not None
        breach = SlaBreach.objects.get()
        assert (breach.tier_before, breach.tier_after, breach.grade) == (1, 2, "3")
        assert TicketEvent.objects.filter(ticket=ticket, kind="sla_breached").count() == 1
        assert TicketEvent.objects.filter(ticket=ticket, kind="escalate", data__reason="sla_breach").count() == 1
        fine.refresh_from_db()
        assert fine.tier == 1 and fine.breached_at is None

    await database_sync_to_async(check_rows)()
    # the alert reached the console (after the escalation's ticket.changed) and the holder
    frames = [(await layer.receive(channel))["payload"] for _ in range(2)]
    assert [f["type"] for f in frames] == ["ticket.changed", "sla.breached"]
    assert frames[1]["ticket_id"] == ticket.pk and frames[1]["tier_after"] == 2
    agent_frame = (await layer.receive(agent_channel))["payload"]
    assert agent_frame["type"] == "sla.breached"

    # idempotent: sweeping again records and escalates nothing more
    assert await database_sync_to_async(services.sweep_sla)() == []

    def check_once():
        assert SlaBreach.objects.count() == 1
        ticket.refresh_from_db()
        assert ticket.tier == 2

    await database_sync_to_async(check_once)()


@pytest.mark.django_db
def test_sweep_at_top_tier_records_without_escalating(buyer, order, agent):
    ticket = open_ticket(buyer=buyer, order=order, actor=agent, grade="special")
    _overdue(ticket, minutes=60 * 25)
    services.sweep_sla()
    ticket.refresh_from_db()
    assert ticket.tier == 4 and ticket.breached_at is not None
    assert SlaBreach.objects.filter(ticket=ticket, tier_before=4, tier_after=4).exists()
    assert not TicketEvent.objects.filter(ticket=ticket, kind="escalate").exists()


@pytest.mark.django_db
def test_sweep_skips_resolved_and_closed(buyer, order, agent):
    for state in ("resolved", "closed"):
        ticket = ticket_in_state(state, buyer=buyer, agent=agent, order=order)
        Ticket.objects.filter(pk=ticket.pk).update(due_at=timezone.now() - timedelta(hours=1))
    assert services.sweep_sla() == []
    assert not SlaBreach.objects.exists()


@pytest.mark.django_db
def test_reopen_gives_a_fresh_deadline_that_can_breach_again(buyer, order, agent, supervisor):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    _overdue(ticket)
    services.sweep_sla()
    # the breach raised it to the team lead's tier: the team lead resolves it (tiers are roles)
    services.transition_ticket(actor=supervisor, ticket_id=ticket.pk, name="resolve")
    services.transition_ticket(actor=buyer, ticket_id=ticket.pk, name="reopen")
    ticket.refresh_from_db()
    assert ticket.breached_at is None and ticket.due_at > timezone.now()
    _overdue(ticket, minutes=1)
    services.sweep_sla()
    assert SlaBreach.objects.filter(ticket=ticket).count() == 2


@pytest.mark.django_db
def test_sla_sweep_command(buyer, order, capsys):
    ticket = open_ticket(buyer=buyer, order=order)
    _overdue(ticket)
    call_command("sla_sweep")
    assert "1 breach" in capsys.readouterr().out
    call_command("sla_sweep")
    assert "0 breaches" in capsys.readouterr().out
    assert SlaBreach.objects.count() == 1


@pytest.mark.django_db
def test_sla_sweep_celery_task_runs_the_sweep(buyer, order):
    from tickets.tasks import sla_sweep

    ticket = open_ticket(buyer=buyer, order=order)
    _overdue(ticket)
    assert sla_sweep.delay().get() == 1
    assert SlaBreach.objects.filter(ticket=ticket).exists()


@pytest.mark.django_db
def test_an_untouched_ticket_climbs_the_whole_ladder_then_alerts_every_period(buyer, order, agent):
    """Each tier gets its own fresh deadline: grade 3 (30 min per tier) goes
    agent → team lead → head → all levels, and at the top every period that
    passes untouched is another breach and another alert."""
    ticket = open_ticket(buyer=buyer, order=order)
    now = timezone.now()
    for tier in (2, 3, 4):
        now += timedelta(minutes=31)
        assert [b.ticket_id for b in services.sweep_sla(now=now)] == [ticket.pk]
        ticket = Ticket.objects.get(pk=ticket.pk)
        assert ticket.tier == tier and ticket.due_at == now + timedelta(minutes=30)
    first_breach = ticket.breached_at
    for _ in range(2):
        assert services.sweep_sla(now=now + timedelta(minutes=10)) == []  # not due yet
        now += timedelta(minutes=31)
        assert len(services.sweep_sla(now=now)) == 1
    ladder = list(SlaBreach.objects.filter(ticket=ticket).order_by("detected_at")
                  .values_list("tier_before", "tier_after"))
    assert ladder == [(1, 2), (2, 3), (3, 4), (4, 4), (4, 4)]
    ticket = Ticket.objects.get(pk=ticket.pk)
    assert ticket.breached_at == first_breach  # the first breach is what the reports count
    assert TicketEvent.objects.filter(ticket=ticket, kind="sla_breached").count() == 5
    # resolved (at all levels, by the head: tiers are roles): the alerts stop
    from accounts import roles
    from accounts.tests.factories import UserFactory

    head = UserFactory(role=roles.HEAD, username="head_a")
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="assign")
    services.transition_ticket(actor=head, ticket_id=ticket.pk, name="resolve")
    assert services.sweep_sla(now=now + timedelta(days=1)) == []


@pytest.mark.django_db
def test_escalating_a_paused_ticket_gives_the_new_tier_a_whole_deadline(buyer, order, agent, supervisor):
    ticket = ticket_in_state("waiting_buyer", buyer=buyer, agent=agent, order=order)
    Ticket.objects.filter(pk=ticket.pk).update(sla_remaining_s=60)
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="escalate")
    ticket = Ticket.objects.get(pk=ticket.pk)
    assert ticket.tier == 2 and ticket.due_at is None and ticket.sla_remaining_s == 30 * 60
