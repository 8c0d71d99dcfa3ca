"""Tickets are made through the real services, so every test ticket has a
queue, a deadline, a first message and a timeline like a real one."""

from __future__ import annotations

from tickets import services
from tickets.models import AgentProfile, AgentSkill, Category, Ticket


def open_ticket(*, buyer, order=None, category: str = Category.LOGISTICS_DELAY, channel: str = "web",
                actor=None, grade: str | None = None, subject: str = "快递三天没动了", body: str = "请帮我查一下物流",
                language: str | None = None) -> Ticket:
    ticket = services.open_ticket(
        actor=actor or buyer, category=category, subject=subject, body=body,
        order_id=order.pk if order else None, channel=channel,
        buyer_id=buyer.pk if actor is not None else None, grade=grade, language=language,
    )
    # re-read rather than refresh_from_db: FSMModelMixin.refresh_from_db flips
    # ``protected`` on the shared field and races when tests run threads
    return Ticket.objects.get(pk=ticket.pk)


def ticket_in_state(state: str, *, buyer, agent, order=None, **kwargs) -> Ticket:
    """A ticket driven through the real transitions to ``state``."""
    ticket = open_ticket(buyer=buyer, order=order, **kwargs)
    steps = {
        "open": [],
        "assigned": ["assign"],
        "waiting_buyer": ["assign", "wait_buyer"],
        "waiting_merchant": ["assign", "wait_merchant"],
        "resolved": ["assign", "resolve"],
        "closed": ["assign", "resolve", "close"],
    }[state]
    for name in steps:
        services.transition_ticket(actor=agent, ticket_id=ticket.pk, name=name)
    return Ticket.objects.get(pk=ticket.pk)


def make_agent_profile(user, *, presence="online", capacity=5, skills=None, languages="zh-hans") -> AgentProfile:
    profile, _ = AgentProfile.objects.get_or_create(user=user)
    profile.presence = presence
    profile.capacity = capacity
    profile.languages = languages
    profile.save()
    for category in skills if skills is not None else Category.values:
        AgentSkill.objects.get_or_create(profile=profile, category=category)
    return profile
