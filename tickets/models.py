"""Tickets, their conversation and timeline, routing, SLA and the people who work them."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, FSMModelMixin, transition

from accounts import roles
from merchants.models import Merchant, Order
from tickets import rules as tier_rules
from tickets import sla


class Category(models.TextChoices):
    LOGISTICS_DELAY = "logistics_delay", _("Logistics delay")
    NOT_RECEIVED = "not_received", _("Parcel lost / not received")
    PARCEL_DAMAGED = "parcel_damaged", _("Parcel damaged")
    WRONG_ITEM = "wrong_item", _("Wrong or missing item")
    REFUND_REQUEST = "refund_request", _("Refund request")
    ORDER_CHANGE = "order_change", _("Order change (address, colour, size)")
    COUPON_FAILURE = "coupon_failure", _("Coupon failure")
    ACCOUNT_SECURITY = "account_security", _("Account security (stolen account)")
    MERCHANT_PAYOUT = "merchant_payout", _("Merchant payout / withdrawal")
    MERCHANT_DISPUTE = "merchant_dispute", _("Merchant dispute")
    SERVICE_ATTITUDE = "service_attitude", _("Service attitude complaint")
    OTHER = "other", _("Other")


# A buyer's ticket of one of these on an order whose money reached the
# merchant places a hold (the escrow issue acts on it).
DISPUTE_CATEGORIES = frozenset(
    {Category.REFUND_REQUEST, Category.WRONG_ITEM, Category.NOT_RECEIVED, Category.PARCEL_DAMAGED}
)
MERCHANT_CATEGORIES = frozenset({Category.MERCHANT_PAYOUT, Category.MERCHANT_DISPUTE})


class Party(models.TextChoices):
    BUYER = "buyer", _("Buyer")
    MERCHANT = "merchant", _("Merchant")
    BOTH = "both", _("Buyer and merchant")


class Channel(models.TextChoices):
    CHAT = "chat", _("Chat")
    WEB = "web", _("Web form")
    PHONE = "phone", _("Phone note")
    API = "api", _("API")


class Language(models.TextChoices):
    ZH = "zh-hans", _("Chinese")
    EN = "en", _("English")


class Queue(models.Model):
    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=64)
    description = models.CharField(_("description"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("queue")
        verbose_name_plural = _("queues")
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.name


class RoutingRule(models.Model):
    """First active rule (lowest priority number) whose set fields all match wins."""

    priority = models.PositiveIntegerField(_("priority"), default=100)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices, blank=True)
    party = models.CharField(_("party"), max_length=16, choices=Party.choices, blank=True)
    grade = models.CharField(_("grade"), max_length=8, choices=sla.GRADE_CHOICES, blank=True)
    language = models.CharField(_("language"), max_length=8, choices=Language.choices, blank=True)
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="rules")
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")
        ordering = ["priority", "pk"]

    def __str__(self) -> str:
        parts = [p for p in (self.category, self.party, self.grade, self.language) if p]
        return f"#{self.priority} {' & '.join(parts) or '*'} → {self.queue.code}"

    def matches(self, *, category: str, party: str, grade: str, language: str) -> bool:
        return (
            (not self.category or self.category == category)
            and (not self.party or self.party == party)
            and (not self.grade or self.grade == grade)
            and (not self.language or self.language == language)
        )


# --- transition permissions: (ticket, user) -> bool ---------------------------
# django-fsm-2 never checks these by itself; ``transition_ticket`` does.


def _staff(ticket: Ticket, user) -> bool:
    return roles.is_agent(user)


def _holder_or_supervisor(ticket: Ticket, user) -> bool:
    return roles.is_supervisor(user) or (roles.is_agent(user) and ticket.assignee_id == user.pk)


def _settler(ticket: Ticket, user) -> bool:
    """The holder or a supervisor, at or above the ticket's tier (resolve)."""
    return _holder_or_supervisor(ticket, user) and _at_or_above_tier(ticket, user)


def _staff_at_or_above_tier(ticket: Ticket, user) -> bool:
    """Staff at or above the ticket's tier (close)."""
    return roles.is_agent(user) and _at_or_above_tier(ticket, user)


def _at_or_above_tier(ticket: Ticket, user) -> bool:
    return tier_rules.may_settle(rank=roles.staff_rank(user), tier=ticket.tier)


def _supervisor(ticket: Ticket, user) -> bool:
    return roles.is_supervisor(user)


def _escalator(ticket: Ticket, user) -> bool:
    return roles.is_supervisor(user) or (
        roles.is_agent(user) and ticket.assignee_id in (None, user.pk)
    )


def _owner_or_staff(ticket: Ticket, user) -> bool:
    return roles.is_agent(user) or (ticket.buyer_id is not None and ticket.buyer_id == user.pk)


def _system_only(ticket: Ticket, user) -> bool:
    return False


# --- transition conditions: (ticket) -> bool ------------------------------------


def _below_top_tier(ticket: Ticket) -> bool:
    return ticket.tier < sla.MAX_TIER


def _has_merchant(ticket: Ticket) -> bool:
    return ticket.merchant_id is not None


def _within_reopen_window(ticket: Ticket) -> bool:
    return ticket.resolved_at is not None and timezone.now() - ticket.resolved_at <= settings.REOPEN_WINDOW


_below_top_tier.hint = "already_top_tier"
_has_merchant.hint = "no_merchant"
_within_reopen_window.hint = "reopen_window_passed"


class Ticket(ConcurrentTransitionMixin, FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        NEW = "new", _("New")
        OPEN = "open", _("Open (queued)")
        ASSIGNED = "assigned", _("Assigned")
        WAITING_MERCHANT = "waiting_merchant", _("Waiting on merchant")
        WAITING_BUYER = "waiting_buyer", _("Waiting on buyer")
        RESOLVED = "resolved", _("Resolved")
        CLOSED = "closed", _("Closed")
        MERGED = "merged", _("Merged into another ticket")

    ACTIVE = (Status.OPEN, Status.ASSIGNED, Status.WAITING_MERCHANT, Status.WAITING_BUYER)
    WORKING = (Status.ASSIGNED, Status.WAITING_MERCHANT, Status.WAITING_BUYER)

    subject = models.CharField(_("subject"), max_length=200)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices)
    party = models.CharField(_("party"), max_length=16, choices=Party.choices, default=Party.BUYER)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices, default=Channel.WEB)
    grade = models.CharField(_("grade"), max_length=8, choices=sla.GRADE_CHOICES, default=sla.GRADE_GENERAL)
    tier = models.PositiveSmallIntegerField(_("tier"), choices=sla.TIER_CHOICES, default=sla.TIER_AGENT)
    language = models.CharField(_("language"), max_length=8, choices=Language.choices, default=Language.ZH)
    # indexed by ticket_queue_status, which leads with it
    queue = models.ForeignKey(
        Queue, on_delete=models.PROTECT, db_index=False, null=True, blank=True, related_name="tickets"
    )
    # indexed by ticket_buyer_recent, which leads with it
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, db_index=False, null=True, blank=True, related_name="buyer_tickets"
    )
    # indexed by ticket_merchant_recent, which leads with it
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, db_index=False, null=True, blank=True, related_name="tickets"
    )
    order = models.ForeignKey(Order, on_delete=models.PROTECT, null=True, blank=True, related_name="tickets")
    # indexed by ticket_assignee_status, which leads with it
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, db_index=False, null=True, blank=True, related_name="assigned_tickets"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    status = FSMField(_("status"), max_length=20, choices=Status.choices, default=Status.NEW, protected=True)

    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # SLA: ``due_at`` is null while paused; ``sla_remaining_s`` keeps what was left.
    due_at = models.DateTimeField(_("due at"), null=True, blank=True)
    sla_paused_at = models.DateTimeField(_("SLA paused at"), null=True, blank=True)
    sla_remaining_s = models.IntegerField(_("SLA seconds left when paused"), null=True, blank=True)
    breached_at = models.DateTimeField(_("SLA breached at"), null=True, blank=True)
    first_response_at = models.DateTimeField(_("first response at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    # per-ticket message counter: the last ``Message.seq`` handed out
    last_seq = models.PositiveIntegerField(_("last message seq"), default=0)
    # the last message buyers and merchants may see (internal notes take seqs
    # too): a public frame names the one before it, so their sockets tell a
    # lost message from a note they are not meant to see
    last_public_seq = models.PositiveIntegerField(_("last public message seq"), default=0)
    last_message_at = models.DateTimeField(_("last message at"), null=True, blank=True)
    # the first public buyer message no agent has answered yet (null when the
    # last word is an agent's): the start of the wait the next agent reply ends,
    # which that reply stores (``Message.waited_from``) for the chat report
    buyer_waiting_since = models.DateTimeField(_("buyer waiting since"), null=True, blank=True, editable=False)
    # a duplicate merged into another ticket (status ``merged``) names it here;
    # its conversation was copied there and its buyer's chat follows it
    merged_into = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="merged_from",
        verbose_name=_("merged into"),
    )
    # what a search matches (``tickets.search``): subject, order no., the buyer's
    # names and phone, the public conversation; indexed by pg_trgm on PostgreSQL
    # (migration 0009). Intake writes the ticket's own part with its opening
    # request; what is said later is folded in by ``fold_search_text`` every few
    # seconds, up to ``searched_seq``: appended per message, every message rewrote
    # the ticket's row into all its indexes (PERFORMANCE.md, 2026-12-05)
    search_text = models.TextField(_("search text"), blank=True, default="", editable=False)
    searched_seq = models.PositiveIntegerField(_("searched up to seq"), default=0, editable=False)

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="ticket_recent"),
            models.Index(fields=["status", "-created_at", "-id"], name="ticket_status_recent"),
            models.Index(fields=["status", "due_at"], name="ticket_status_due"),
            models.Index(fields=["assignee", "status"], name="ticket_assignee_status"),
            models.Index(fields=["queue", "status", "-created_at"], name="ticket_queue_status"),
            models.Index(fields=["buyer", "-created_at"], name="ticket_buyer_recent"),
            models.Index(fields=["merchant", "-created_at"], name="ticket_merchant_recent"),
            models.Index(fields=["grade", "status"], name="ticket_grade_status"),
            # the reports' period filter on resolutions (``reports.selectors``)
            models.Index(fields=["resolved_at"], name="ticket_resolved",
                         condition=models.Q(resolved_at__isnull=False)),

            # the reports' first responses (``reports.selectors._first_responses``): the
            # period's answered tickets with their groups, read from the index alone
            models.Index(fields=["created_at"], include=["first_response_at", "assignee", "queue"],
                         condition=models.Q(first_response_at__isnull=False), name="ticket_first_response"),
            # the market board (issue #14 item 5): chats' first replies in a window, and the
            # chats still waiting at a moment (first reply null or later) without a full scan
            models.Index(fields=["first_response_at"], condition=models.Q(channel="chat"),
                         name="ticket_chat_first_response"),
            # the console queue: active tickets, most urgent deadline first (Ticket.ACTIVE,
            # written out because the class attribute is not visible inside Meta)
            models.Index(
                fields=["due_at", "created_at", "id"],
                condition=models.Q(status__in=["open", "assigned", "waiting_merchant", "waiting_buyer"]),
                name="ticket_active_due",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(tier__gte=1, tier__lte=4), name="ticket_tier_range"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"

    # --- transitions: they only set fields; ``transition_ticket`` runs them ---

    @transition(field=status, source=Status.NEW, target=Status.OPEN, permission=_system_only)
    def route(self, *, queue: Queue, now: datetime) -> None:
        self.queue = queue

    @transition(field=status, source=Status.OPEN, target=Status.ASSIGNED, permission=_staff)
    def assign(self, *, assignee, now: datetime) -> None:
        self.assignee = assignee

    @transition(field=status, source=list(WORKING), target=None, permission=_supervisor)
    def reassign(self, *, assignee, now: datetime) -> None:
        self.assignee = assignee

    @transition(field=status, source=Status.ASSIGNED, target=Status.OPEN, permission=_holder_or_supervisor)
    def release(self, *, now: datetime) -> None:
        self.assignee = None

    @transition(
        field=status, source=Status.ASSIGNED, target=Status.WAITING_MERCHANT,
        permission=_holder_or_supervisor, conditions=[_has_merchant],
    )
    def wait_merchant(self, *, now: datetime) -> None:
        if self.party == Party.BUYER:
            self.party = Party.BOTH

    @transition(field=status, source=Status.ASSIGNED, target=Status.WAITING_BUYER, permission=_holder_or_supervisor)
    def wait_buyer(self, *, now: datetime) -> None:
        self.pause_sla(now=now)

    @transition(
        field=status, source=[Status.WAITING_MERCHANT, Status.WAITING_BUYER], target=Status.ASSIGNED,
        permission=_holder_or_supervisor,
    )
    def resume(self, *, now: datetime) -> None:
        self.resume_sla(now=now)

    @transition(
        field=status, source=list(ACTIVE), target=None, permission=_escalator, conditions=[_below_top_tier]
    )
    def escalate(self, *, now: datetime) -> None:
        # each tier gets its own fresh deadline (a paused clock gets it back in full)
        self.tier += 1
        self.restart_sla(now=now)

    @transition(field=status, source=list(WORKING), target=Status.RESOLVED, permission=_settler)
    def resolve(self, *, now: datetime) -> None:
        self.resume_sla(now=now)
        self.resolved_at = now

    @transition(field=status, source=Status.RESOLVED, target=Status.CLOSED, permission=_staff_at_or_above_tier)
    def close(self, *, now: datetime) -> None:
        self.closed_at = now

    @transition(
        field=status, source=Status.RESOLVED, target=RETURN_VALUE(Status.OPEN, Status.ASSIGNED),
        permission=_owner_or_staff, conditions=[_within_reopen_window],
    )
    def reopen(self, *, now: datetime) -> str:
        self.resolved_at = None
        self.breached_at = None
        self.due_at = now + sla.deadline_for(self.grade)
        return self.Status.ASSIGNED if self.assignee_id else self.Status.OPEN

    @transition(field=status, source=list(ACTIVE), target=Status.MERGED, permission=_staff)
    def merge(self, *, into: Ticket, now: datetime) -> None:
        """A duplicate ends here; ``tickets.services.merge`` runs it (never by
        name from the transitions endpoint: it needs the target)."""
        self.merged_into = into
        self.closed_at = now
        self.due_at = None
        self.sla_paused_at = None
        self.sla_remaining_s = None

    # --- SLA clock (plain field arithmetic, used by the transitions above) ---

    def start_sla(self, *, now: datetime) -> None:
        self.due_at = now + sla.deadline_for(self.grade)

    def restart_sla(self, *, now: datetime) -> None:
        """A fresh deadline of the grade from ``now`` (kept whole while paused)."""
        if self.sla_paused_at is not None:
            self.sla_remaining_s = int(sla.deadline_for(self.grade).total_seconds())
        else:
            self.due_at = now + sla.deadline_for(self.grade)

    def pause_sla(self, *, now: datetime) -> None:
        if self.due_at is None:
            return
        self.sla_remaining_s = int((self.due_at - now).total_seconds())
        self.sla_paused_at = now
        self.due_at = None

    def resume_sla(self, *, now: datetime) -> None:
        if self.sla_paused_at is None:
            return
        self.due_at = now + timedelta(seconds=self.sla_remaining_s or 0)
        self.sla_paused_at = None
        self.sla_remaining_s = None

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def is_overdue(self, now: datetime | None = None) -> bool:
        return self.is_active and self.due_at is not None and self.due_at < (now or timezone.now())


class TicketTag(models.Model):
    """One tag on one ticket (issue #13 item 4). A row per tag rather than an
    array column: filtering by tag is one indexed lookup on every database
    (PostgreSQL's ArrayField and its GIN index do not exist on SQLite, the
    embedded default), and the names are normalised by ``tickets.tags``."""

    # indexed by tickettag_ticket_name_unique, which leads with it
    ticket = models.ForeignKey("Ticket", on_delete=models.CASCADE, db_index=False, related_name="tags")
    name = models.CharField(_("name"), max_length=32)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("ticket tag")
        verbose_name_plural = _("ticket tags")
        ordering = ["ticket", "name"]
        constraints = [models.UniqueConstraint(fields=["ticket", "name"], name="tickettag_ticket_name_unique")]
        indexes = [models.Index(fields=["name", "ticket"], name="tickettag_name_ticket")]

    def __str__(self) -> str:
        return f"#{self.ticket_id} {self.name}"


class SavedView(models.Model):
    """An agent's named queue filter (issue #13 item 4). ``filters`` holds only
    the known filter keys, as strings, validated by the same parser as the
    list's query (``tickets.filters``)."""

    # indexed by savedview_owner_name_unique, which leads with it
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False, related_name="saved_views"
    )
    name = models.CharField(_("name"), max_length=40)
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("saved view")
        verbose_name_plural = _("saved views")
        ordering = ["owner", "name", "id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="savedview_owner_name_unique")]

    def __str__(self) -> str:
        return f"{self.owner_id}: {self.name}"


class SearchFold(models.Model):
    """One row (pk 1): ``fold_search_text`` has looked at every message
    stamped before ``through`` (less its slack)."""

    through = models.DateTimeField(_("through"), null=True, blank=True)

    def __str__(self) -> str:
        return f"search folded through {self.through}"


class TicketEvent(models.Model):
    """The append-only timeline: who did what to the ticket, and when."""

    # indexed by ticketevent_ticket, which leads with it
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, db_index=False, related_name="events")
    kind = models.CharField(_("kind"), max_length=32)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    data = models.JSONField(_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("ticket event")
        verbose_name_plural = _("ticket events")
        ordering = ["ticket", "created_at", "id"]
        indexes = [models.Index(fields=["ticket", "id"], name="ticketevent_ticket")]

    def __str__(self) -> str:
        return f"{self.kind} on #{self.ticket_id}"


class Message(models.Model):
    class AuthorRole(models.TextChoices):
        BUYER = "buyer", _("Buyer")
        AGENT = "agent", _("Agent")
        MERCHANT = "merchant", _("Merchant")
        SYSTEM = "system", _("System")

    # indexed by message_ticket_seq_unique, which leads with it
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, db_index=False, related_name="messages")
    seq = models.PositiveIntegerField(_("seq"))
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    author_role = models.CharField(_("author role"), max_length=16, choices=AuthorRole.choices)
    body = models.TextField(_("body"))
    internal = models.BooleanField(_("internal note"), default=False)
    client_msg_id = models.CharField(_("client message id"), max_length=64, null=True, blank=True)
    # what a system message announces (assigned, merchant_invited, remedy_applied, resolved, reopened),
    # so clients can show it as a notice; empty for people's messages
    notice = models.CharField(_("notice"), max_length=32, blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    # on an agent's public reply in a chat ticket that ends a buyer's wait:
    # when the first unanswered buyer message of that wait was written (the
    # ticket's ``buyer_waiting_since`` then), so the chat response time is
    # ``created_at - waited_from``, stored by the write paths, summed in SQL
    waited_from = models.DateTimeField(_("buyer waited from"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["ticket", "seq"]
        indexes = [
            # the chat report's replies of a period, read from the index alone on PostgreSQL
            models.Index(fields=["created_at"], include=["waited_from", "author", "ticket"],
                         condition=models.Q(waited_from__isnull=False), name="message_chat_reply"),
            # what was said since the search fold's last run (``fold_search_text``)
            models.Index(fields=["created_at"], name="message_created"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["ticket", "seq"], name="message_ticket_seq_unique"),
            models.UniqueConstraint(
                fields=["ticket", "client_msg_id"], name="message_client_id_unique",
                condition=models.Q(client_msg_id__isnull=False),
            ),
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="message_seq_positive"),
        ]

    def __str__(self) -> str:
        return f"#{self.ticket_id}/{self.seq}"


class ReadMark(models.Model):
    """How far one person has read a ticket's conversation: the highest ``seq``
    they have seen. It only moves forward. Agents' marks give the console's
    unread counts; the buyer's and the merchant's give read receipts."""

    # indexed by read_mark_ticket_user_unique, which leads with it
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, db_index=False, related_name="read_marks")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveIntegerField(_("read up to seq"), default=0)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        verbose_name = _("read mark")
        verbose_name_plural = _("read marks")
        constraints = [models.UniqueConstraint(fields=["ticket", "user"], name="read_mark_ticket_user_unique")]

    def __str__(self) -> str:
        return f"#{self.ticket_id} read by {self.user_id} to {self.seq}"


class Rating(models.Model):
    """The buyer's 0–10 score, once, after resolution."""

    ticket = models.OneToOneField(Ticket, on_delete=models.CASCADE, related_name="rating")
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    score = models.PositiveSmallIntegerField(_("score"))
    comment = models.CharField(_("comment"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("rating")
        verbose_name_plural = _("ratings")
        # by time: the reports' period and the board's rolling CSAT
        indexes = [models.Index(fields=["created_at"], name="rating_created")]
        constraints = [
            models.CheckConstraint(condition=models.Q(score__gte=0, score__lte=10), name="rating_score_0_10"),
        ]

    def __str__(self) -> str:
        return f"#{self.ticket_id}: {self.score}"


class QuickReply(models.Model):
    """A canned answer; ``{buyer_name}``, ``{order_no}``, ``{eta}`` … are filled per ticket."""

    shortcut = models.SlugField(_("shortcut"), max_length=32, unique=True)
    title = models.CharField(_("title"), max_length=80)
    body = models.TextField(_("body"))
    category = models.CharField(_("category"), max_length=32, choices=Category.choices, blank=True)
    language = models.CharField(_("language"), max_length=8, choices=Language.choices, default=Language.ZH)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("quick reply")
        verbose_name_plural = _("quick replies")
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut} {self.title}"


class Playbook(models.Model):
    """A resolution playbook in the knowledge base; agents add to it."""

    title = models.CharField(_("title"), max_length=120)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices, blank=True)
    body = models.TextField(_("steps"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("playbook")
        verbose_name_plural = _("playbooks")
        ordering = ["category", "title"]

    def __str__(self) -> str:
        return self.title


class AgentProfile(models.Model):
    class Presence(models.TextChoices):
        ONLINE = "online", _("Online")
        AWAY = "away", _("Away")
        OFFLINE = "offline", _("Offline")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_profile")
    presence = models.CharField(_("presence"), max_length=16, choices=Presence.choices, default=Presence.OFFLINE)
    presence_changed_at = models.DateTimeField(_("presence changed at"), default=timezone.now)
    capacity = models.PositiveSmallIntegerField(_("capacity"), default=5)
    languages = models.CharField(_("languages"), max_length=64, default="zh-hans", help_text="comma separated")
    last_assigned_at = models.DateTimeField(_("last auto-assigned at"), null=True, blank=True)
    shift_reminded_on = models.DateField(_("shift reminder sent on"), null=True, blank=True)

    class Meta:
        verbose_name = _("agent profile")
        verbose_name_plural = _("agent profiles")

    def __str__(self) -> str:
        return f"{self.user} ({self.presence})"

    @property
    def language_list(self) -> list[str]:
        return [code.strip() for code in self.languages.split(",") if code.strip()]


class AgentSkill(models.Model):
    """An agent may be auto-assigned chats of this category."""

    # indexed by agentskill_unique, which leads with it
    profile = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, db_index=False, related_name="skills")
    category = models.CharField(_("category"), max_length=32, choices=Category.choices)

    class Meta:
        verbose_name = _("agent skill")
        verbose_name_plural = _("agent skills")
        constraints = [models.UniqueConstraint(fields=["profile", "category"], name="agentskill_unique")]

    def __str__(self) -> str:
        return f"{self.profile.user}: {self.category}"


class WorkSession(models.Model):
    """A stretch of time online; the shift counts them (continuous or split)."""

    # indexed by worksession_agent_start, which leads with it
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False, related_name="work_sessions"
    )
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("work session")
        verbose_name_plural = _("work sessions")
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["agent", "started_at"], name="worksession_agent_start")]
        constraints = [
            models.UniqueConstraint(
                fields=["agent"], condition=models.Q(ended_at__isnull=True), name="worksession_one_open"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent} {self.started_at:%H:%M}–{self.ended_at:%H:%M}" if self.ended_at else f"{self.agent} since {self.started_at:%H:%M}"


class OvertimeRequest(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        GRANTED = "granted", _("Granted")
        DENIED = "denied", _("Denied")

    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="overtime_requests")
    work_date = models.DateField(_("work date"))
    minutes = models.PositiveSmallIntegerField(_("minutes"))
    reason = models.CharField(_("reason"), max_length=255)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.REQUESTED)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("overtime request")
        verbose_name_plural = _("overtime requests")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(minutes__gte=1, minutes__lte=240), name="overtime_minutes_range"),
        ]

    def __str__(self) -> str:
        return f"{self.agent} +{self.minutes}min {self.work_date} ({self.status})"


class SlaBreach(models.Model):
    """One breach of one deadline: the unique key makes the sweep idempotent."""

    # indexed by slabreach_ticket_due_unique, which leads with it
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, db_index=False, related_name="breaches")
    due_at = models.DateTimeField(_("due at"))
    grade = models.CharField(_("grade"), max_length=8, choices=sla.GRADE_CHOICES)
    tier_before = models.PositiveSmallIntegerField(_("tier before"))
    tier_after = models.PositiveSmallIntegerField(_("tier after"))
    detected_at = models.DateTimeField(_("detected at"), default=timezone.now)

    class Meta:
        verbose_name = _("SLA breach")
        verbose_name_plural = _("SLA breaches")
        ordering = ["-detected_at"]
        constraints = [models.UniqueConstraint(fields=["ticket", "due_at"], name="slabreach_ticket_due_unique")]

    def __str__(self) -> str:
        return f"#{self.ticket_id} breached {self.due_at:%Y-%m-%d %H:%M}"


def evidence_path(instance: Evidence, filename: str) -> str:
    return f"evidence/{instance.ticket_id}/{timezone.now():%Y%m%d%H%M%S}-{filename[-60:]}"


class Evidence(models.Model):
    """An image a merchant (or buyer) attaches to back their side of a dispute."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="evidence")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    file = models.FileField(_("file"), upload_to=evidence_path)
    content_type = models.CharField(_("content type"), max_length=32)
    size = models.PositiveIntegerField(_("size (bytes)"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("evidence")
        verbose_name_plural = _("evidence")
        ordering = ["ticket", "created_at", "id"]

    def __str__(self) -> str:
        return f"evidence #{self.pk} on #{self.ticket_id}"


class PhoneCall(models.Model):
    """One call on the hotline, logged by the agent who took (or made) it: on
    a ``phone`` ticket it opened, or added to the buyer's open ticket."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", _("Inbound")
        OUTBOUND = "outbound", _("Outbound")

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="calls")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    direction = models.CharField(_("direction"), max_length=8, choices=Direction.choices, default=Direction.INBOUND)
    caller_phone = models.CharField(_("caller's number"), max_length=32, blank=True)
    started_at = models.DateTimeField(_("call started at"))
    duration_s = models.PositiveIntegerField(_("duration (seconds)"))
    notes = models.TextField(_("notes"))
    # the internal note that carries the call into the conversation
    message = models.OneToOneField(Message, on_delete=models.PROTECT, related_name="call", null=True, blank=True)
    created_at = models.DateTimeField(_("logged at"), default=timezone.now)

    class Meta:
        verbose_name = _("phone call")
        verbose_name_plural = _("phone calls")
        ordering = ["ticket", "started_at", "id"]
        indexes = [models.Index(fields=["started_at"], name="phonecall_started_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(duration_s__lte=4 * 3600), name="phonecall_duration_range"),
        ]

    def __str__(self) -> str:
        return f"call #{self.pk} on #{self.ticket_id}"


def attachment_path(instance: Attachment, filename: str) -> str:
    """The server names every stored file (never the client's filename):
    ``attachments/<ticket>/<random>.<ext of the type we stored>``."""
    return f"attachments/{instance.ticket_id}/{filename}"


class Attachment(models.Model):
    """A picture or PDF attached to a message (issue #13 item 3). Uploaded
    first (unclaimed: only its uploader and staff see it), then claimed by the
    uploader's next message on the same ticket; from then on it is seen by
    whoever sees that message (an internal note's by staff only). Files go
    through Django's storage API, served only by the scoped view."""

    # indexed by attachment_ticket_uploader, which leads with it
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, db_index=False, related_name="attachments")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="attachments",
        verbose_name=_("message"),
    )
    file = models.FileField(_("file"), upload_to=attachment_path, max_length=200)
    thumbnail = models.FileField(_("thumbnail"), upload_to=attachment_path, max_length=200, blank=True)
    content_type = models.CharField(_("content type"), max_length=32)
    size_bytes = models.PositiveIntegerField(_("size (bytes)"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        ordering = ["id"]
        indexes = [
            models.Index(fields=["ticket", "uploaded_by"], name="attachment_ticket_uploader"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(size_bytes__gte=1), name="attachment_size_positive"),
        ]

    def __str__(self) -> str:
        return f"attachment #{self.pk} on #{self.ticket_id}"

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")
