"""Reads of tickets, always scoped to the viewer."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Case, Count, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_fsm import can_proceed

from accounts import roles
from core import rows
from core.locks import lock as lock_rows
from core.parsing import int_or_none
from core.rows import among, column, prepared_cursor, table
from tickets.rules import MERGEABLE_STATES, Viewer, can_view_ticket, viewer_of, visibility_filter
from merchants.models import Order
from merchants.selectors import merchant_id_for
from tickets import search
from tickets.errors import InvalidInput, NotFound, TicketNotFound
from tickets.models import (
    AgentProfile, Channel, Message, OvertimeRequest, PhoneCall, Playbook, Queue, QuickReply, ReadMark,
    SavedView, Ticket, TicketEvent, TicketTag,
)

# transitions a person may run by name (``route`` is the system's alone)
USER_TRANSITIONS = (
    "assign", "reassign", "release", "wait_merchant", "wait_buyer", "resume",
    "escalate", "resolve", "close", "reopen",
)


def tickets_visible_to(*, user) -> QuerySet[Ticket]:
    """Staff see every ticket; merchant staff the tickets that involve their
    merchant; a buyer their own (``tickets.rules.can_view``, as a filter)."""
    viewer = user if isinstance(user, Viewer) else viewer_of(user)
    condition = visibility_filter(viewer)
    return Ticket.objects.all() if condition is None else Ticket.objects.filter(condition)


def get_ticket_for(*, user, ticket_id: int, lock: bool = False, related: tuple[str, ...] = ()) -> Ticket:
    """One ticket the viewer may see, else a 404 that reveals nothing; with
    the ``related`` rows the caller reads joined (unlocked reads only).

    Unlocked, the row is read by its key with SQL written once per process
    (``core.rows.by_key``) and judged by ``can_view``, the rule the filter
    form states for lists; locked, the filter goes into the statement, so a
    row the viewer may not see is never locked."""
    if not lock:
        return _visible(user, rows.by_key(Ticket, ticket_id, related=related))
    if related:
        raise ValueError("A locked ticket is read alone: its lock must not reach the rows joined to it.")
    try:
        # get(), not first(): by primary key there is nothing to order, and the ORDER BY cost more to build
        return lock_rows(tickets_visible_to(user=user), "ticket").get(pk=ticket_id)
    except Ticket.DoesNotExist:
        raise TicketNotFound() from None


def _visible(user, ticket: Ticket | None) -> Ticket:
    viewer = user if isinstance(user, Viewer) else viewer_of(user)
    if ticket is None or not can_view_ticket(viewer, ticket):
        raise TicketNotFound()
    return ticket


@dataclass(frozen=True)
class TicketFilters:
    status: list[str] | None = None
    queue_id: int | None = None
    grade: str | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    overdue: bool = False
    merchant_id: int | None = None
    q: str | None = None
    active_only: bool = False
    category: list[str] | None = None
    channel: list[str] | None = None
    tier: int | None = None
    tag: str | None = None
    buyer_id: int | None = None


def ticket_list(*, user, filters: TicketFilters, now: datetime | None = None) -> QuerySet[Ticket]:
    """The filtered list with everything a row shows joined in (no per-row queries)."""
    now = now or timezone.now()
    tickets = tickets_visible_to(user=user).select_related("queue", "assignee", "buyer", "merchant", "order")
    if filters.status:
        tickets = tickets.filter(status__in=filters.status)
    elif filters.active_only:
        tickets = tickets.filter(status__in=Ticket.ACTIVE)
    if filters.queue_id is not None:
        tickets = tickets.filter(queue_id=filters.queue_id)
    if filters.grade:
        tickets = tickets.filter(grade=filters.grade)
    if filters.unassigned:
        tickets = tickets.filter(assignee__isnull=True)
    elif filters.assignee_id is not None:
        tickets = tickets.filter(assignee_id=filters.assignee_id)
    if filters.overdue:
        tickets = tickets.filter(status__in=Ticket.ACTIVE, due_at__lt=now)
    if filters.merchant_id is not None:
        tickets = tickets.filter(merchant_id=filters.merchant_id)
    if filters.category:
        tickets = tickets.filter(category__in=filters.category)
    if filters.channel:
        tickets = tickets.filter(channel__in=filters.channel)
    if filters.tier is not None:
        tickets = tickets.filter(tier=filters.tier)
    if filters.buyer_id is not None:
        tickets = tickets.filter(buyer_id=filters.buyer_id)
    if filters.tag:
        tickets = tickets.filter(pk__in=TicketTag.objects.filter(name=filters.tag).values("ticket_id"))
    if filters.q:
        tickets = tickets.filter(search_condition(filters.q))
    # a row never shows the search text: leave the column in the table; the page's tags come
    # from ``with_tag_names`` once it is cut
    return tickets.defer("search_text")


def with_tag_names(tickets: Iterable[Ticket]) -> list[Ticket]:
    """The tickets of a page, each with its tags' names (sorted) for
    ``tag_names``, read in one query for the whole page. Django's prefetch did
    it in one query too, but built a related manager and a queryset for every
    row: a quarter of the API list's CPU (docs/PERFORMANCE.md)."""
    tickets = list(tickets)
    names: dict[int, list[str]] = {ticket.pk: [] for ticket in tickets}
    if names:
        where, params = among(column(TicketTag, "ticket"), names)
        with prepared_cursor() as cursor:
            cursor.execute(_tag_names_sql(where), params)
            for ticket_id, name in cursor.fetchall():
                names[ticket_id].append(name)
    for ticket in tickets:
        ticket.listed_tags = names[ticket.pk]
    return tickets


@functools.cache
def _tag_names_sql(where: str) -> str:
    return (f"SELECT {column(TicketTag, 'ticket')}, {column(TicketTag, 'name')} FROM {table(TicketTag)} "
            f"WHERE {where} ORDER BY {column(TicketTag, 'name')}")


def search_condition(term: str) -> Q:
    """What ``q`` matches: every word of the term in the ticket's search text
    (subject, conversation, order no., buyer's names and phone; see
    ``tickets.search``), or the ticket whose id the term is; a number shorter
    than ``search.DIGITS_AS_TEXT`` digits is an id only (phones, order nos. and
    their parts are longer). On PostgreSQL the
    text conditions use the trigram index (``LIKE`` on the lowercased column),
    the id its primary key; both in one bitmap scan."""
    term = term.strip()
    ticket_id = int_or_none(term, minimum=1)
    if ticket_id is not None and len(term) < search.DIGITS_AS_TEXT:
        # a short number is a ticket's id (as a text it would match every order no. holding it)
        return Q(pk=ticket_id)
    condition = Q()
    for pattern in search.patterns(term):
        condition &= Q(search_text__contains=pattern)
    if not condition:
        return Q(pk__in=[])
    if ticket_id is not None:
        condition |= Q(pk=ticket_id)
    return condition


def tag_names(ticket: Ticket) -> list[str]:
    """The ticket's tags, sorted (a list row's from ``with_tag_names``, else one query)."""
    listed = getattr(ticket, "listed_tags", None)
    if listed is not None:
        return listed
    return sorted(tag.name for tag in ticket.tags.all())


def console_queue(*, user, filters: TicketFilters, now: datetime | None = None) -> QuerySet[Ticket]:
    """The console's queue: most urgent deadline first, then oldest."""
    # paused tickets (no deadline) last on every database, as the partial index orders them
    return ticket_list(user=user, filters=filters, now=now).order_by(
        F("due_at").asc(nulls_last=True), "created_at", "id"
    )


def messages_visible_to(*, user, ticket: Ticket) -> QuerySet[Message]:
    # attachments in one more query, however many messages (internal notes'
    # attachments leave with their notes)
    messages = ticket.messages.select_related("author").prefetch_related("attachments").order_by("seq")
    if not roles.is_agent(user):
        messages = messages.filter(internal=False)
    return messages


def ticket_timeline(*, ticket: Ticket) -> QuerySet[TicketEvent]:
    return ticket.events.select_related("actor").order_by("created_at", "id")


def available_transitions(*, ticket: Ticket, user) -> list[str]:
    """The transitions this user may run now: right state, permission and conditions."""
    names = []
    for name in USER_TRANSITIONS:
        method = getattr(ticket, name)
        if not can_proceed(method):
            continue
        if not method._django_fsm.has_transition_perm(ticket, ticket.status, user):
            continue
        if name == "assign" and not roles.is_agent(user):
            continue
        names.append(name)
    return names


def quick_replies_for(*, ticket: Ticket) -> QuerySet[QuickReply]:
    return QuickReply.objects.filter(active=True).filter(Q(category="") | Q(category=ticket.category)).filter(
        language=ticket.language
    ).order_by("category", "shortcut")


def playbooks(*, category: str | None = None, q: str | None = None) -> QuerySet[Playbook]:
    items = Playbook.objects.select_related("created_by")
    if category:
        items = items.filter(Q(category=category) | Q(category=""))
    if q:
        items = items.filter(Q(title__icontains=q) | Q(body__icontains=q))
    return items.order_by("-category", "title")


def playbook_for_edit(*, playbook_id: int) -> Playbook | None:
    return Playbook.objects.select_related("created_by").filter(pk=playbook_id).first()


def overtime_requests_of_today(*, now: datetime, limit: int = 50) -> list[OvertimeRequest]:
    """Today's overtime requests for the team leads: waiting ones first, then
    the decided, newest first; agents and deciders in the same query."""
    waiting_first = Case(When(status=OvertimeRequest.Status.REQUESTED, then=0), default=1)
    return list(
        OvertimeRequest.objects.filter(work_date=timezone.localdate(now))
        .select_related("agent", "decided_by")
        .order_by(waiting_first, "-created_at", "-pk")[:limit]
    )


@dataclass
class Caller:
    """Who may be on the line: a buyer, their open tickets and latest orders."""

    buyer: object
    open_tickets: list
    orders: list


CALLERS_SHOWN = 5


def phone_variants(phone: str) -> list[str]:
    """The forms a mainland number is stored or shown in (``13800138000``,
    ``8613800138000``, ``+8613800138000``): an exact, indexed match on each."""
    digits = phone.lstrip("+")
    local = digits[2:] if digits.startswith("86") and len(digits) == 13 else digits
    variants = {phone, digits, local}
    if len(local) == 11 and local.startswith("1"):
        variants |= {f"86{local}", f"+86{local}"}
    return sorted(variants)


def callers(*, phone: str = "", order_no: str = "") -> list[Caller]:
    """The buyers a call may be from: by the number they registered (with or
    without the country code, ``phone_variants``) or by an order number.
    Three queries whatever the number of matches."""
    User = get_user_model()
    buyers = User.objects.filter(groups__name=roles.BUYER)
    if order_no:
        buyers = buyers.filter(pk__in=Order.objects.filter(order_no=order_no).values("buyer_id"))
    elif phone:
        buyers = buyers.filter(phone__in=phone_variants(phone))
    else:
        return []
    found = list(buyers.order_by("pk").distinct()[:CALLERS_SHOWN])
    if not found:
        return []
    ids = [b.pk for b in found]
    tickets: dict[int, list] = {pk: [] for pk in ids}
    for ticket in (Ticket.objects.filter(buyer_id__in=ids, status__in=Ticket.ACTIVE)
                   .select_related("assignee").order_by("-created_at", "-pk")[:50]):
        tickets[ticket.buyer_id].append(ticket)
    orders: dict[int, list] = {pk: [] for pk in ids}
    for order in Order.objects.filter(buyer_id__in=ids).select_related("merchant").order_by("-placed_at", "-pk")[:50]:
        if len(orders[order.buyer_id]) < 5:
            orders[order.buyer_id].append(order)
    return [Caller(buyer=b, open_tickets=tickets[b.pk][:10], orders=orders[b.pk]) for b in found]


def calls_on(*, ticket: Ticket) -> list:
    """A ticket's logged calls, oldest first, with who took each."""
    return list(PhoneCall.objects.filter(ticket=ticket).select_related("agent").order_by("started_at", "pk"))


# --- reads for the agent console pages ------------------------------------------


def chat_tabs(*, user, limit: int = 12) -> list[Ticket]:
    """The chats an agent holds, most recently active first, each with
    ``unread``: buyer and merchant messages after the agent's read mark.
    One query however many chats."""
    read_seq = ReadMark.objects.filter(ticket=OuterRef("pk"), user=user).values("seq")[:1]
    return list(
        Ticket.objects.filter(assignee=user, channel=Channel.CHAT, status__in=Ticket.WORKING)
        .select_related("buyer")
        .annotate(read_seq=Coalesce(Subquery(read_seq), Value(0)))
        .annotate(unread=Count("messages", filter=Q(
            messages__seq__gt=F("read_seq"),
            messages__author_role__in=[Message.AuthorRole.BUYER, Message.AuthorRole.MERCHANT],
        )))
        .order_by(F("last_message_at").desc(nulls_last=True), "-id")[:limit]
    )


def read_receipts(*, ticket: Ticket) -> dict[str, int]:
    """How far the buyer and the merchant's staff have read: ``{"buyer": seq, "merchant": seq}``."""
    marks = ReadMark.objects.filter(ticket=ticket).filter(
        Q(user_id=ticket.buyer_id) | Q(user__merchant_staff__merchant_id=ticket.merchant_id)
    ).values_list("user_id", "seq")
    receipts = {"buyer": 0, "merchant": 0}
    for user_id, seq in marks:
        side = "buyer" if user_id == ticket.buyer_id else "merchant"
        receipts[side] = max(receipts[side], seq)
    return receipts


def console_ticket(*, user, ticket_id: int) -> Ticket:
    """One ticket for the console's ticket page, with everything its header,
    quick replies and order panel show joined in (no per-field queries)."""
    return _visible(user, rows.by_key(Ticket, ticket_id, related=CONSOLE_TICKET_RELATED))


CONSOLE_TICKET_RELATED = ("queue", "assignee", "buyer", "merchant", "order", "order__shipment")


def shipment_events_for(*, ticket: Ticket) -> list:
    """The carrier's tracking history of the ticket's order, newest first."""
    if ticket.order_id is None:
        return []
    try:
        shipment = ticket.order.shipment
    except ObjectDoesNotExist:
        return []
    return list(shipment.events.order_by("-occurred_at", "-pk"))


def new_messages_for(*, user, ticket: Ticket, after_seq: int) -> QuerySet[Message]:
    """The conversation after ``after_seq``, as the viewer may see it."""
    return messages_visible_to(user=user, ticket=ticket).filter(seq__gt=after_seq)


def queues_for_console() -> QuerySet[Queue]:
    return Queue.objects.order_by("pk")


def agent_profile_of(*, agent) -> AgentProfile | None:
    """The agent's profile (presence, capacity) or None before their first shift."""
    return AgentProfile.objects.filter(user_id=agent.pk).first()


def agents_for_assignment() -> QuerySet:
    """Active staff who work tickets: whom a supervisor may reassign to."""
    from django.contrib.auth import get_user_model

    app_label, codename = roles.PERM_AGENT.split(".")
    perm = Q(permissions__content_type__app_label=app_label, permissions__codename=codename)
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(groups__in=Group.objects.filter(perm))
            | Q(user_permissions__content_type__app_label=app_label, user_permissions__codename=codename)
        )
        .distinct()
        .order_by("username")
    )


def tier_owners() -> dict[str, list[str]]:
    """The named people of the upper tiers, by role: team leads (the
    supervisor role) and heads, active, in one query (tier 1 is the assignee
    or any agent, too many to list)."""
    from django.contrib.auth import get_user_model

    people: dict[str, list[str]] = {roles.SUPERVISOR: [], roles.HEAD: []}
    found = (get_user_model().objects.filter(is_active=True, groups__name__in=list(people))
             .order_by("username").values_list("groups__name", "display_name", "username")[:60])
    for role, display_name, username in found:
        people[role].append(display_name or username)
    return people


def get_evidence_for(*, user, evidence_id: int):
    """An evidence file: staff, or the staff of the ticket's merchant; else 404."""
    from tickets.models import Evidence

    evidence = Evidence.objects.select_related("ticket").filter(pk=evidence_id).first()
    if evidence is None or not (
        roles.is_agent(user)
        or (roles.is_merchant_staff(user) and merchant_id_for(user=user) == evidence.ticket.merchant_id)
    ):
        raise TicketNotFound("Evidence not found.")
    return evidence


def evidence_for(*, ticket: Ticket) -> list:
    """The evidence images of a ticket the viewer already may see, oldest first."""
    return list(ticket.evidence.order_by("created_at", "id"))


DUPLICATES_SHOWN = 10


def likely_duplicates(*, ticket: Ticket) -> list[Ticket]:
    """Issue #13 item 2: the other tickets of the same buyer about the same
    order that are still open (what an agent merges this one into), oldest
    first. Empty, with no query, for a ticket without buyer or order or one
    that is no longer open itself."""
    if ticket.buyer_id is None or ticket.order_id is None or ticket.status not in MERGEABLE_STATES:
        return []
    return list(
        Ticket.objects.filter(buyer_id=ticket.buyer_id, order_id=ticket.order_id, status__in=MERGEABLE_STATES)
        .exclude(pk=ticket.pk).select_related("assignee").order_by("created_at", "pk")[:DUPLICATES_SHOWN]
    )


def get_attachment_for(*, user, attachment_id: int):
    """An attachment the viewer may see (``tickets.rules.may_see_attachment``:
    whoever sees its message; before a message claims it, its uploader and
    staff), else a 404 that reveals nothing. One query beyond the viewer's."""
    from tickets.models import Attachment
    from tickets.rules import may_see_attachment

    attachment = (Attachment.objects.select_related("ticket", "message")
                  .only("id", "ticket_id", "uploaded_by_id", "message_id", "file", "thumbnail", "content_type",
                        "size_bytes", "ticket__buyer_id", "ticket__merchant_id", "ticket__party",
                        "message__internal")
                  .filter(pk=attachment_id).first())
    viewer = user if isinstance(user, Viewer) else viewer_of(user)
    if attachment is None or not may_see_attachment(
        viewer, buyer_id=attachment.ticket.buyer_id, merchant_id=attachment.ticket.merchant_id,
        party=attachment.ticket.party, uploaded_by_id=attachment.uploaded_by_id,
        claimed=attachment.message_id is not None,
        internal=attachment.message.internal if attachment.message_id else False,
    ):
        raise TicketNotFound("Attachment not found.")
    return attachment


# --- saved views (issue #13 item 4) ----------------------------------------------

VIEWS_PER_AGENT = 30


def saved_views_of(*, user) -> QuerySet[SavedView]:
    """The caller's own views, by name; nobody sees another's."""
    return SavedView.objects.filter(owner_id=user.pk).order_by("name", "id")


def get_saved_view_for(*, user, view_id: int) -> SavedView:
    view = saved_views_of(user=user).filter(pk=view_id).first()
    if view is None:
        raise NotFound("View not found.")
    return view


# how long a view's count is shared: every console's views panel asks for its counts every 15 s
# (``_saved_views.html``), and at 100,000 tickets five views' counts took PostgreSQL ~95 ms
VIEW_COUNT_TTL_S = 10


def view_counts(*, user, views, to_filters, now: datetime | None = None) -> dict[int, int]:
    """How many tickets each view shows the viewer, at most
    ``VIEW_COUNT_TTL_S`` old: one COUNT per view not counted lately for the
    same filters and the same sight (at most ``VIEWS_PER_AGENT`` views), the
    rest from the cache, so the agents whose views ask the same (every staff
    member sees every ticket; "mine" is each one's own) share one count.
    ``to_filters`` turns a view's stored filters into ``TicketFilters`` (the
    API's list and the console's queue default differently when no status is
    set); a view whose stored filters no longer parse (a queue since
    deleted) counts ``None``."""
    now = now or timezone.now()
    viewer = user if isinstance(user, Viewer) else viewer_of(user)
    counts: dict[int, int | None] = {}
    keys: dict[int, tuple[str, TicketFilters]] = {}
    for view in list(views)[:VIEWS_PER_AGENT]:
        try:
            filters = to_filters(view.filters)
        except InvalidInput:
            counts[view.pk] = None
            continue
        keys[view.pk] = (_view_count_key(viewer, filters), filters)
    cached = cache.get_many({key for key, _ in keys.values()}) if keys else {}
    fresh = {}
    for view_id, (key, filters) in keys.items():
        if key not in cached and key not in fresh:
            fresh[key] = ticket_list(user=viewer, filters=filters, now=now).order_by().count()
        counts[view_id] = cached[key] if key in cached else fresh[key]
    if fresh:
        cache.set_many(fresh, timeout=VIEW_COUNT_TTL_S)
    return counts


def _view_count_key(viewer: Viewer, filters: TicketFilters) -> str:
    """The cache key of a count: who may see what (``visibility_filter``'s
    terms) and the filters, whatever view or agent asks."""
    import hashlib

    sight = ("all",) if viewer.is_staff else (viewer.role, viewer.merchant_id, viewer.user_id)
    digest = hashlib.blake2s(repr((sight, filters)).encode(), digest_size=16).hexdigest()
    return f"tickets:view-count:{digest}"
