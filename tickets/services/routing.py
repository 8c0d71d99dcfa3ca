"""Routing to queues and auto-assigning chats to agents.

A chat goes to the least-loaded online agent who has the category as a skill,
speaks the ticket's language, has room under their capacity and has not
reached the day's shift; ties go to whoever was assigned longest ago. Waiting
chats are served oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from core.locks import lock
from tickets import events
from tickets.locks import lock_agent_profiles
from tickets.models import AgentProfile, AgentSkill, Channel, Queue, RoutingRule, Ticket
from tickets.services.people import shift_limits, worked_seconds
from tickets.services.transitions import run_transition

DEFAULT_QUEUE = "general"
DISPATCH_BATCH = 50


RULES_CACHE_KEY = "tickets:routing-rules:v2"
ROUTING_CACHE_S = 300


def _routing() -> tuple[list[RoutingRule], Queue]:
    """The active rules in order, and the general queue where a ticket that
    no rule matches goes, from the cache (one Redis read per ticket in
    production) or the database; a rule or queue saved or deleted empties the
    cache (``tickets.apps``), so every process routes by the new rules at once."""
    routing = cache.get(RULES_CACHE_KEY)
    if routing is None:
        rules = list(RoutingRule.objects.filter(active=True).select_related("queue").order_by("priority", "pk"))
        general, created = Queue.objects.get_or_create(code=DEFAULT_QUEUE, defaults={"name": "综合 General"})
        routing = (rules, general)
        if created:  # made by this transaction: cached once it commits, never a queue a rollback took back
            transaction.on_commit(lambda: cache.set(RULES_CACHE_KEY, routing, timeout=ROUTING_CACHE_S))
        else:
            cache.set(RULES_CACHE_KEY, routing, timeout=ROUTING_CACHE_S)
    return routing


def forget_routing_rules(**_) -> None:
    # now, and again once the change commits: a request that read the old
    # rules in between must not leave them cached
    cache.delete(RULES_CACHE_KEY)
    transaction.on_commit(lambda: cache.delete(RULES_CACHE_KEY))


def pick_queue(*, ticket: Ticket) -> Queue:
    """The queue of the first matching active rule, else the general queue."""
    rules, general = _routing()
    for rule in rules:
        if rule.matches(category=ticket.category, party=ticket.party, grade=ticket.grade, language=ticket.language):
            return rule.queue
    return general


@dataclass
class Candidate:
    profile: AgentProfile
    load: int
    skills: frozenset[str]
    languages: frozenset[str]

    def fits(self, ticket: Ticket) -> bool:
        return (
            ticket.category in self.skills
            and ticket.language in self.languages
            and self.load < self.profile.capacity
        )

    def rank(self) -> tuple:
        last = self.profile.last_assigned_at
        return (self.load, last is not None, last or datetime.min, self.profile.pk)


def available_agents(*, now: datetime, lock: bool) -> list[Candidate]:
    """Online agents with room and shift time left.

    With ``lock`` the profiles are locked first and the loads counted after,
    so a count never predates another dispatcher's commit (READ COMMITTED
    gives each statement a fresh snapshot); that keeps capacity exact when
    chats arrive in parallel.
    """
    online = AgentProfile.objects.filter(presence=AgentProfile.Presence.ONLINE, user__is_active=True)
    if lock:
        ids = list(online.values_list("user_id", flat=True))
        profiles = [p for p in lock_agent_profiles(ids) if p.presence == AgentProfile.Presence.ONLINE]
    else:
        profiles = list(online.order_by("pk"))
    if not profiles:
        return []
    ids = [p.user_id for p in profiles]
    loads = dict(
        Ticket.objects.filter(assignee_id__in=ids, status__in=Ticket.WORKING)
        .values("assignee_id")
        .annotate(n=Count("id"))
        .values_list("assignee_id", "n")
    )
    skills: dict[int, set[str]] = {}
    for profile_id, category in AgentSkill.objects.filter(profile__in=profiles).values_list("profile_id", "category"):
        skills.setdefault(profile_id, set()).add(category)
    worked = worked_seconds(agent_ids=ids, now=now)
    limits = shift_limits(agent_ids=ids, now=now)
    return [
        Candidate(
            profile=p, load=loads.get(p.user_id, 0), skills=frozenset(skills.get(p.pk, ())),
            languages=frozenset(p.language_list),
        )
        for p in profiles
        if loads.get(p.user_id, 0) < p.capacity and worked[p.user_id] < limits[p.user_id]
    ]


def _dispatch(*, tickets: list[Ticket], now: datetime) -> list[tuple[int, int]]:
    """Assign locked open chat tickets, oldest first, to the best candidates."""
    candidates = available_agents(now=now, lock=True) if tickets else []
    assigned = []
    for ticket in sorted(tickets, key=lambda t: (t.created_at, t.pk)):
        fitting = [c for c in candidates if c.fits(ticket)]
        if not fitting:
            continue
        best = min(fitting, key=Candidate.rank)
        run_transition(
            ticket=ticket, name="assign", actor=None, now=now, system=True,
            assignee=best.profile.user, event_data={"auto": True},
        )
        best.load += 1
        best.profile.last_assigned_at = now
        best.profile.save(update_fields=["last_assigned_at"])
        events.assignment_offered(ticket, best.profile.user_id)
        assigned.append((ticket.pk, best.profile.user_id))
    return assigned


def _waiting_chats(*, limit: int, exclude: int | None = None) -> list[Ticket]:
    waiting = lock(Ticket.objects, "ticket", skip_locked=True).filter(
        status=Ticket.Status.OPEN, channel=Channel.CHAT, assignee__isnull=True
    )
    if exclude is not None:
        waiting = waiting.exclude(pk=exclude)
    return list(waiting.order_by("created_at", "id")[:limit])


def assign_chat_on_open(*, ticket: Ticket, now: datetime) -> list[tuple[int, int]]:
    """Inside ``open_ticket``: serve older waiting chats first, then this one."""
    assert transaction.get_connection().in_atomic_block
    return _dispatch(tickets=[*_waiting_chats(limit=DISPATCH_BATCH, exclude=ticket.pk), ticket], now=now)


@transaction.atomic(durable=True)
def dispatch_chats(*, now: datetime | None = None, limit: int = DISPATCH_BATCH) -> list[tuple[int, int]]:
    """Offer waiting chats to agents who have room (after a ticket is resolved,
    an agent comes online or is granted overtime). Returns (ticket, agent) pairs."""
    now = now or timezone.now()
    return _dispatch(tickets=_waiting_chats(limit=limit), now=now)
