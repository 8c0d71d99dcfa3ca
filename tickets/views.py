"""The agent console: pages and the htmx fragments they swap in.

Thin on purpose: reads go through ``tickets.selectors``, writes through
``tickets.services``; a ``DomainError`` becomes an inline message with its own
4xx status, never a 500. What is here only shapes data for display.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.urls import reverse
from django.http import QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts import roles
from core.errors import DomainError, InvalidInput
from core.money import format_fen
from core.parsing import parse_int, parse_optional_id, parse_optional_int
from merchants import rules as merchant_rules
from merchants import selectors as merchant_selectors
from merchants import services as merchant_services
from tickets import rules, selectors, services, sla
from tickets.api import parse_ticket_filters
from tickets.errors import TicketNotFound
from tickets.filters import FILTER_KEYS
from tickets.models import AgentProfile, Category, Channel, PhoneCall, Ticket
from tickets.selectors import TicketFilters

QUEUE_PAGE_SIZE = 50
QUEUE_TABLE_ID = "queue-table"

# what each transition's button says, in the order the page shows them
TRANSITION_LABELS = {
    "assign": gettext_lazy("Take ticket"),
    "resume": gettext_lazy("Resume"),
    "wait_buyer": gettext_lazy("Wait on buyer"),
    "wait_merchant": gettext_lazy("Ask merchant"),
    "resolve": gettext_lazy("Resolve"),
    "escalate": gettext_lazy("Escalate"),
    "release": gettext_lazy("Release to queue"),
    "reassign": gettext_lazy("Reassign"),
    "close": gettext_lazy("Close"),
    "reopen": gettext_lazy("Reopen"),
}
PRIMARY_TRANSITIONS = {"assign", "resolve", "resume", "reopen"}

EVENT_LABELS = {
    "created": gettext_lazy("Ticket created"),
    "route": gettext_lazy("Routed to a queue"),
    "assign": gettext_lazy("Assigned"),
    "reassign": gettext_lazy("Reassigned"),
    "release": gettext_lazy("Released to queue"),
    "wait_merchant": gettext_lazy("Waiting on merchant"),
    "wait_buyer": gettext_lazy("Waiting on buyer"),
    "resume": gettext_lazy("Resumed"),
    "escalate": gettext_lazy("Escalated"),
    "resolve": gettext_lazy("Resolved"),
    "close": gettext_lazy("Closed"),
    "reopen": gettext_lazy("Reopened"),
    "intercept_resend": gettext_lazy("Parcel intercepted, resend compelled"),
    "rated": gettext_lazy("Buyer rated the service"),
    "sla_breached": gettext_lazy("SLA breached"),
    "dispute_opened": gettext_lazy("Dispute opened"),
    "dispute_settled": gettext_lazy("Dispute settled"),
    "resend_missed": gettext_lazy("Merchant missed the resend deadline"),
    "remedy_requested": gettext_lazy("Remedy sent for approval"),
    "remedy_executed": gettext_lazy("Remedy granted"),
    "remedy_rejected": gettext_lazy("Remedy rejected"),
    "merchant_accept_refund": gettext_lazy("Merchant accepted the refund"),
    "merchant_contest": gettext_lazy("Merchant contested the claim"),
    "phone_call": gettext_lazy("Phone call"),
    "tags_changed": gettext_lazy("Tags changed"),
}
# the compensation app's words for what its timeline rows carry (tickets never imports it)
REMEDY_KINDS = {
    "refund": gettext_lazy("Refund"),
    "resend": gettext_lazy("Resend"),
    "coupon": gettext_lazy("Coupon"),
}
APPROVAL_REASONS = {
    "quota_exhausted": gettext_lazy("agent quota used up"),
    "over_value_cap": gettext_lazy("over the value cap"),
    "buyer_daily_cap": gettext_lazy("buyer's daily cap reached"),
    "breaker_open": gettext_lazy("budget breaker open"),
    "buyer_flagged": gettext_lazy("buyer flagged"),
}
EVENT_REASONS = {
    "sla_breach": gettext_lazy("SLA deadline passed"),
    "reported_up": gettext_lazy("reported up"),
    "resend_missed": gettext_lazy("resend deadline missed"),
    "buyer_replied": gettext_lazy("the buyer replied"),
    "merchant_replied": gettext_lazy("the merchant replied"),
    "merchant_accept_refund": gettext_lazy("the merchant accepted the refund"),
    "merchant_contest": gettext_lazy("the merchant contested"),
    "phone_call": gettext_lazy("taken on the phone"),
}
STATUS_LABELS = dict(Ticket.Status.choices)
DIRECTION_LABELS = dict(PhoneCall.Direction.choices)
ROLE_LABELS = {
    roles.AGENT: pgettext_lazy("role", "Agent"),
    roles.SUPERVISOR: pgettext_lazy("role", "Team lead"),
    roles.HEAD: pgettext_lazy("role", "Head of service"),
}
# the tiers by their own names ("Agent" alone is also a role and a message author)
TIER_LABELS = {
    sla.TIER_AGENT: pgettext_lazy("tier", "Agent"),
    sla.TIER_TEAM_LEAD: pgettext_lazy("tier", "Team lead"),
    sla.TIER_HEAD: pgettext_lazy("tier", "Head"),
    sla.TIER_ALL_LEVELS: pgettext_lazy("tier", "All levels"),
}


# --- access ----------------------------------------------------------------------


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def staff_required(view):
    """Anonymous → the login page; anyone who is not staff → the 403 page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if _is_htmx(request):
                # the session ran out under an open console: send the whole page to login
                current = urlsplit(request.headers.get("HX-Current-URL", ""))
                back_to = (current.path or "/") + (f"?{current.query}" if current.query else "")
                response = HttpResponse(status=401)
                response["HX-Redirect"] = redirect_to_login(back_to)["Location"]
                return response
            return redirect_to_login(request.get_full_path())
        if not roles.is_agent(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def _ticket_or_404(request, ticket_id: int) -> Ticket:
    try:
        return selectors.console_ticket(user=request.user, ticket_id=ticket_id)
    except TicketNotFound:
        raise Http404 from None


# what an agent reads when a service says no (the service's English detail is shown beside it)
ERROR_TEXTS = {
    "illegal_transition": gettext_lazy("Not possible in the ticket's current state; it may have just changed."),
    "transition_forbidden": gettext_lazy("You may not do this on this ticket."),
    "transition_refused": gettext_lazy("The ticket does not meet the conditions for this right now."),
    "unknown_transition": gettext_lazy("There is no such action."),
    "ticket_closed": gettext_lazy("The ticket is closed; the buyer can open a new one."),
    "held_by_other": gettext_lazy("Another agent holds this ticket. Reply anyway, beside them?"),
    "assignee_invalid": gettext_lazy("The assignee must be an active agent."),
    "permission_denied": gettext_lazy("You do not have permission to do this."),
    "not_found": gettext_lazy("Not found."),
    "below_ticket_tier": gettext_lazy("This ticket is above your tier: only its tier's owner or above resolves or "
                                      "closes it. Report it up instead."),
    "note_required": gettext_lazy("Write a note for the next tier: why are you reporting it up?"),
    "out_of_stock": gettext_lazy("That colour or size is out of stock: the variant was not changed."),
    "intercept_unavailable": gettext_lazy("Intercept-and-resend applies only while the parcel is in transit."),
    "already_intercepted": gettext_lazy("This parcel already has an intercept request."),
    "merge_into_self": gettext_lazy("A ticket cannot be merged into itself."),
    "merge_target_closed": gettext_lazy("That ticket is no longer open (resolved, closed or merged itself)."),
    "merge_buyer_mismatch": gettext_lazy("Only tickets of the same buyer can be merged."),
    "invalid_tag": gettext_lazy("A tag is 1–32 letters or digits, with - _ . : inside; separate tags with commas."),
    "too_many_tags": gettext_lazy("A ticket carries at most 10 tags."),
    "view_name_taken": gettext_lazy("You already have a view of that name."),
    "too_many_views": gettext_lazy("You have 30 views already: delete one first."),
    "invalid_view_filters": gettext_lazy("These filters cannot be saved as a view."),
}
REFUSAL_TEXTS = {
    "already_top_tier": gettext_lazy("It is already at the top tier."),
    "no_merchant": gettext_lazy("The ticket has no merchant to ask."),
    "reopen_window_passed": gettext_lazy("The reopen window has passed."),
}
FIELD_TEXTS = {
    "body": gettext_lazy("Write a message first (at most 5000 characters)."),
    "note": gettext_lazy("The note is at most 1000 characters."),
    "presence": gettext_lazy("Unknown presence."),
    "assignee_id": gettext_lazy("Pick an agent to reassign to."),
    "target": gettext_lazy("Pick the caller's ticket, or the buyer for a new phone ticket."),
    "duration_s": gettext_lazy("Duration is minutes, or mm:ss (at most 4 hours)."),
    "started_at": gettext_lazy("The call's start is within the last 7 days, not in the future."),
    "notes": gettext_lazy("Write what the call was about (at most 5000 characters)."),
    "caller_phone": gettext_lazy("The caller's number is digits, with an optional leading +."),
    "category": gettext_lazy("Pick the category of the new phone ticket."),
    "name": gettext_lazy("Name the view (at most 40 characters)."),
}


def error_text(error: DomainError) -> str:
    reason = error.extra.get("reason")
    if reason in REFUSAL_TEXTS:
        return str(REFUSAL_TEXTS[reason])
    field = error.extra.get("field")
    if field in FIELD_TEXTS:
        return str(FIELD_TEXTS[field])
    if error.code == "shift_limit_reached" and "worked_s" in error.extra:
        return _("You have worked %(worked)s h today, past your %(limit)s h limit. Take this ticket anyway? "
                 "The timeline records it; or ask your team lead for overtime.") % {
            "worked": _hours_minutes(error.extra["worked_s"]), "limit": _hours_minutes(error.extra["limit_s"])}
    if error.code == "held_by_other" and error.extra.get("holder"):
        return _("%(holder)s holds this ticket. Reply anyway, beside them?") % {"holder": error.extra["holder"]}
    return str(ERROR_TEXTS.get(error.code, error.detail))


def _error_fragment(request, error: DomainError, *, target: str) -> HttpResponse:
    """A domain error shown inline where the action was asked, with its own status."""
    context = {"error": error, "error_text": error_text(error)}
    response = render(request, "tickets/_error.html", context, status=error.status)
    response["HX-Retarget"] = target
    response["HX-Reswap"] = "innerHTML"
    return response


# --- the agent bar (presence, shift) shown in the header of every console page ---


def _agent_bar(request) -> dict:
    profile = selectors.agent_profile_of(agent=request.user)
    presence = profile.presence if profile else AgentProfile.Presence.OFFLINE
    now = timezone.now()
    shift = services.shift_status(agent=request.user, now=now)
    return {
        "agent_bar": True,
        "overtime": shift.latest_overtime,
        "overtime_minutes": OVERTIME_MINUTES,
        "presence": presence,
        "presence_choices": AgentProfile.Presence.choices,
        "shift": shift,
        "shift_worked": _hours_minutes(shift.worked_s),
        "shift_limit": _hours_minutes(shift.limit_s),
        "shift_percent": min(100, round(100 * shift.worked_s / shift.limit_s)) if shift.limit_s else 100,
    }


CHAT_FIRST_REPLY_TARGET_S = 60
# what the shift bar offers when an agent asks for overtime
OVERTIME_MINUTES = (30, 60, 90, 120)


def _span(delta) -> str:
    """``00:38``, ``12:05`` or ``1:02:03``: a duration as the countdowns show it."""
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def _hours_minutes(seconds: int) -> str:
    hours, rest = divmod(max(0, int(seconds)), 3600)
    return f"{hours}:{rest // 60:02d}"


@require_POST
@staff_required
def presence(request):
    """Switch presence (online starts a work session, anything else ends it)."""
    try:
        services.set_presence(agent=request.user, presence=request.POST.get("presence", ""))
    except DomainError as error:
        return _error_fragment(request, error, target="#agent-bar-error")
    return render(request, "tickets/_agent_bar.html", {**_agent_bar(request), "oob": True})


# --- the queue -------------------------------------------------------------------


@require_GET
@staff_required
def queue(request):
    """The queue table; an htmx request for the table gets only the table."""
    params = request.GET.copy()
    show_all = params.get("status") == "all"
    if show_all:
        params.pop("status")
    params.pop("active", None)
    filter_error, status = None, 200
    try:
        filters = parse_ticket_filters(params, user=request.user)
    except InvalidInput as exc:
        filter_error, status = str(exc.detail), 400
        filters = TicketFilters()
    if not filters.status and not show_all:
        filters = replace(filters, active_only=True)
    tickets = selectors.console_queue(user=request.user, filters=filters)
    page = Paginator(tickets, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    for row in selectors.with_tag_names(page):
        row.tier_label = TIER_LABELS.get(row.tier, row.tier)
        if row.first_response_at:
            waited = row.first_response_at - row.created_at
            row.first_reply = _span(waited)
            # a chat's first answer is meant to come in seconds (DESIGN: measured and shown)
            row.first_reply_slow = waited.total_seconds() > (CHAT_FIRST_REPLY_TARGET_S if row.channel == "chat" else 3600)
    keep = request.GET.copy()
    keep.pop("page", None)
    context = {
        "page": page,
        "now": timezone.now(),
        "filter_error": filter_error,
        "filters": {
            "status": request.GET.get("status", ""),
            "grade": request.GET.get("grade", ""),
            "queue": request.GET.get("queue", ""),
            "overdue": filters.overdue,
            "mine": request.GET.get("mine") in ("1", "true"),
            "q": filters.q or "",
            "category": request.GET.get("category", ""),
            "channel": request.GET.get("channel", ""),
            "tier": request.GET.get("tier", ""),
            "tag": request.GET.get("tag", ""),
            "buyer": request.GET.get("buyer", ""),
        },
        "querystring": keep.urlencode(),
        "table_id": QUEUE_TABLE_ID,
    }
    partial = (
        request.headers.get("HX-Target") == QUEUE_TABLE_ID
        and not request.headers.get("HX-History-Restore-Request")
    )
    if partial:
        response = render(request, "tickets/_queue_table.html", context, status=status)
    else:
        context.update(
            _agent_bar(request),
            statuses=Ticket.Status.choices,
            grades=sla.GRADE_CHOICES,
            queues=selectors.queues_for_console(),
            categories=Category.choices,
            channels=Channel.choices,
            tiers=[(tier, TIER_LABELS[tier]) for tier in TIER_LABELS],
        )
        response = render(request, "tickets/queue.html", context, status=status)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


# --- saved views (issue #13 item 4) ----------------------------------------------


def view_link(stored: dict) -> str:
    """The queue's query string for a view's stored filters. The console lists
    active tickets when no status is given and the API every status: a view
    stores ``active`` for the first, so a view without either means every
    status here too (``status=all``)."""
    params = QueryDict(mutable=True)
    for key, value in stored.items():
        if key != "active":
            params[key] = value
    if not stored.get("status") and not stored.get("active"):
        params["status"] = "all"
    return params.urlencode()


def filters_from_queue(source) -> dict[str, str]:
    """The queue's filter controls (or query string) as a view stores them."""
    stored = {key: source.get(key, "").strip() for key in FILTER_KEYS if source.get(key, "").strip()}
    if stored.get("status") == "all":
        stored.pop("status")
    elif not stored.get("status"):
        stored["active"] = "true"
    stored.pop("page", None)
    return stored


def _views_fragment(request, *, error: DomainError | None = None, status: int = 200) -> HttpResponse:
    views = list(selectors.saved_views_of(user=request.user))
    counts = selectors.view_counts(user=request.user, views=views,
                                   to_filters=lambda stored: parse_ticket_filters(stored, user=request.user))
    current = request.headers.get("HX-Current-URL", "")
    current_query = urlsplit(current).query if current else request.GET.urlencode()
    rows = []
    for view in views:
        link = view_link(view.filters)
        rows.append({"view": view, "count": counts.get(view.pk), "link": link,
                     "current": bool(current_query) and QueryDict(current_query) == QueryDict(link)})
    context = {"views": rows, "view_error": error_text(error) if error else "", "views_max": selectors.VIEWS_PER_AGENT}
    response = render(request, "tickets/_saved_views.html", context, status=status)
    patch_vary_headers(response, ["HX-Request", "HX-Current-URL"])
    return response


@staff_required
def saved_views(request):
    """GET: the agent's views with their counts (the queue page loads it and
    polls it every 15 s). POST: save the queue's current filters as a view."""
    if request.method == "GET":
        return _views_fragment(request)
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    try:
        services.create_saved_view(actor=request.user, name=request.POST.get("name", ""),
                                   filters=filters_from_queue(request.POST))
    except DomainError as error:
        if not _is_htmx(request):
            raise
        return _views_fragment(request, error=error, status=error.status)
    if not _is_htmx(request):
        return redirect(f"{reverse('console:queue')}?{view_link(filters_from_queue(request.POST))}")
    return _views_fragment(request)


@require_POST
@staff_required
def delete_view(request, view_id: int):
    try:
        services.delete_saved_view(actor=request.user, view_id=view_id)
    except DomainError as error:
        if error.code == "not_found":
            raise Http404 from None
        raise
    if not _is_htmx(request):
        return redirect("console:queue")
    return _views_fragment(request)


@require_POST
@staff_required
def set_tags(request, ticket_id: int):
    """The ticket page's tag box: comma-separated tags replace the set."""
    raw = request.POST.get("tags", "")
    names = [part for part in re.split(r"[,，、]", raw) if part.strip()]
    try:
        ticket = services.set_ticket_tags(actor=request.user, ticket_id=ticket_id, tags=names)
    except TicketNotFound:
        raise Http404 from None
    except DomainError as error:
        return _error_fragment(request, error, target="#tags-error")
    return render(request, "tickets/_ticket_tags.html", {"ticket": ticket, "tags": selectors.tag_names(ticket)})


# --- one ticket ------------------------------------------------------------------


@require_GET
@staff_required
def ticket(request, ticket_id: int):
    """The ticket page: header and actions, conversation and reply box, quick
    replies, order and shipment, timeline, playbooks."""
    ticket = _ticket_or_404(request, ticket_id)
    messages = list(selectors.messages_visible_to(user=request.user, ticket=ticket))
    last_seq = messages[-1].seq if messages else 0
    # a GET writes nothing: the page, once open and visible, marks what it shows
    # read (a "read" frame on its chat socket, else a POST to ``read``)
    context = {
        **_agent_bar(request),
        **_state_context(request, ticket),
        "conversation": messages,
        "last_seq": last_seq,
        "receipts": selectors.read_receipts(ticket=ticket),
        "quick_replies": _quick_replies(request, ticket),
        "order_panel": _order_panel(ticket),
        "playbooks": selectors.playbooks(category=ticket.category),
        "can_write": rules.may_write(status=ticket.status),
        "duplicates": selectors.likely_duplicates(ticket=ticket),
        "attachments_per_message": settings.ATTACHMENTS_PER_MESSAGE,
        "tags": selectors.tag_names(ticket),
    }
    return render(request, "tickets/ticket.html", context)


@require_POST
@staff_required
def mark_read(request, ticket_id: int):
    """The open ticket page has shown the conversation up to ``seq``: its chat
    tab's unread count drops to zero. The page posts this when it opens and
    when new messages show while its chat socket is away (connected, it sends
    a "read" frame instead). Answers the read mark now stored."""
    try:
        seq = parse_int(request.POST.get("seq"), field="seq", minimum=0)
        stored = services.mark_read(actor=request.user, ticket_id=ticket_id, seq=seq)
    except TicketNotFound:
        raise Http404 from None
    except DomainError as error:
        return JsonResponse({"code": error.code, "detail": str(error.detail)}, status=error.status)
    return JsonResponse({"seq": stored})


@require_GET
@staff_required
def ticket_state(request, ticket_id: int):
    """Header, actions and timeline again (the live refresh after a change)."""
    ticket = _ticket_or_404(request, ticket_id)
    return render(request, "tickets/_ticket_state.html", {**_state_context(request, ticket), "oob": True})


@require_POST
@staff_required
def transition(request, ticket_id: int, name: str):
    """Run one transition; answer with the fresh header, actions and timeline,
    and with the refusal inline when the service says no."""
    error = None
    try:
        assignee_id = parse_optional_id(request.POST.get("assignee_id"), field="assignee_id")
        services.transition_ticket(
            actor=request.user, ticket_id=ticket_id, name=name, assignee_id=assignee_id,
            note=request.POST.get("note", ""), confirm_past_shift=request.POST.get("confirm_past_shift") == "1",
        )
    except TicketNotFound:
        raise Http404 from None
    except DomainError as exc:
        error = exc
    return _state_answer(request, ticket_id, error)


def _state_answer(request, ticket_id: int, error: DomainError | None):
    """What a state change from the ticket page answers: the state bar again
    (out of band), with the refusal when there was one and its status."""
    ticket = _ticket_or_404(request, ticket_id)
    context = {
        **_state_context(request, ticket), "oob": True,
        "error": error, "error_text": error_text(error) if error else "",
    }
    return render(request, "tickets/_ticket_state.html", context, status=error.status if error else 200)


@require_POST
@staff_required
def report_up(request, ticket_id: int):
    """上报 from the console: escalate one tier with the note; answer like a transition."""
    error = None
    try:
        services.report_up(actor=request.user, ticket_id=ticket_id, note=request.POST.get("note", ""))
    except TicketNotFound:
        raise Http404 from None
    except DomainError as exc:
        error = exc
    return _state_answer(request, ticket_id, error)


@require_POST
@staff_required
def merge(request, ticket_id: int):
    """"Merge into #N" from the duplicates list: this ticket ends merged and
    the page moves to the target; a refusal shows where the list is."""
    try:
        into = parse_int(request.POST.get("into", ""), field="into_ticket_id", minimum=1)
        services.merge_tickets(actor=request.user, ticket_id=ticket_id, into_ticket_id=into)
    except TicketNotFound:
        raise Http404 from None
    except DomainError as error:
        return _error_fragment(request, error, target="#merge-error")
    response = HttpResponse(status=204)
    response["HX-Redirect"] = reverse("console:ticket", args=[into])
    return response


@require_POST
@staff_required
def reply(request, ticket_id: int):
    """Post a reply or an internal note; answer with the new message to append.

    A reply (not a note) on a ticket another agent holds is refused until the
    agent confirms: two agents answering one buyer at once is the mistake."""
    try:
        attachment_ids = [parse_int(raw, field="attachment_ids", minimum=1)
                          for raw in request.POST.getlist("attachment_ids")[:50]]
        message = services.post_message(
            actor=request.user, ticket_id=ticket_id, body=request.POST.get("body", ""),
            internal=request.POST.get("internal") in ("on", "1", "true"),
            client_msg_id=(request.POST.get("client_msg_id") or None),
            confirm_held=request.POST.get("confirm_held") == "1", attachment_ids=attachment_ids,
        )
    except TicketNotFound:
        raise Http404 from None
    except DomainError as error:
        return _error_fragment(request, error, target="#reply-error")
    # the header changes too (first response, a resumed ticket): swap it out of band
    ticket = _ticket_or_404(request, ticket_id)
    context = {
        **_state_context(request, ticket, with_timeline=False),
        "conversation": [message], "clear_error": True, "oob_head": True,
    }
    return render(request, "tickets/_messages.html", context)


@require_GET
@staff_required
def new_messages(request, ticket_id: int):
    """Messages after ``after_seq`` (the page polls so a buyer's answer shows up)."""
    ticket = _ticket_or_404(request, ticket_id)
    after_seq = parse_optional_int(request.GET.get("after_seq"), field="after_seq", minimum=0) or 0
    messages = list(selectors.new_messages_for(user=request.user, ticket=ticket, after_seq=after_seq)[:200])
    if not messages:
        return HttpResponse(status=204)
    return render(request, "tickets/_messages.html", {"conversation": messages})


@require_GET
@staff_required
def chat_tabs(request):
    """The strip of chats this agent holds, with unread counts (refreshed live)."""
    return render(request, "tickets/_chat_tabs.html", {
        "tabs": selectors.chat_tabs(user=request.user),
        "current_id": parse_optional_id(request.GET.get("current"), field="current"),
    })


# --- display helpers ---------------------------------------------------------------


def _state_context(request, ticket: Ticket, *, with_timeline: bool = True) -> dict:
    names = selectors.available_transitions(ticket=ticket, user=request.user)
    actions = [
        {"name": name, "label": TRANSITION_LABELS[name], "primary": name in PRIMARY_TRANSITIONS}
        for name in TRANSITION_LABELS
        if name in names
    ]
    ladder = _tier_ladder(ticket)
    return {
        "ticket": ticket,
        "actions": [a for a in actions if a["name"] != "escalate"],
        # 上报: escalating by hand is reporting up, with a note for the next tier
        "can_report_up": "escalate" in names,
        "next_tier_label": TIER_LABELS.get(ticket.tier + 1, ""),
        "ladder": ladder,
        "below_tier": (roles.is_agent(request.user) and ticket.is_active
                       and not rules.may_settle(rank=roles.staff_rank(request.user), tier=ticket.tier)),
        "reassign_to": selectors.agents_for_assignment() if "reassign" in names else [],
        "timeline": _timeline(ticket) if with_timeline else [],
        "tier_label": TIER_LABELS.get(ticket.tier, ticket.tier),
        "first_response": _span(ticket.first_response_at - ticket.created_at) if ticket.first_response_at else "",
        "now": timezone.now(),
    }


def _tier_ladder(ticket: Ticket) -> list[dict]:
    """Who owns each tier of the ladder, the ticket's own marked."""
    people = selectors.tier_owners()
    ladder = []
    for tier, label in TIER_LABELS.items():
        role = rules.TIER_OWNER_ROLES[tier]
        if tier == sla.TIER_AGENT:
            owners = [ticket.assignee.name] if ticket.assignee_id else [str(_("any agent"))]
        elif tier == sla.TIER_ALL_LEVELS:
            owners = people[roles.HEAD] + people[roles.SUPERVISOR]
        else:
            owners = people[role]
        ladder.append({"tier": tier, "label": label, "role": ROLE_LABELS[role], "owners": owners,
                       "current": tier == ticket.tier, "passed": tier < ticket.tier})
    return ladder


def _timeline(ticket: Ticket) -> list[dict]:
    entries = []
    for event in selectors.ticket_timeline(ticket=ticket):
        data = event.data if isinstance(event.data, dict) else {}
        entries.append({
            "kind": event.kind,
            "label": EVENT_LABELS.get(event.kind) or event.kind.replace("_", " "),
            "actor": event.actor.name if event.actor_id else _("System"),
            "created_at": event.created_at,
            "details": _event_details(ticket, event.kind, data),
            "note": data.get("note") or data.get("text") or "",
            "evidence": [pk for pk in data.get("evidence_ids", []) if isinstance(pk, int)],
        })
    return entries


def _event_details(ticket: Ticket, kind: str, data: dict) -> list[str]:
    """One event's data in words: status and tier moves, queue, reason, money."""
    details = []
    if "from" in data and "to" in data and data["from"] != data["to"]:
        details.append(
            _("%(before)s → %(after)s")
            % {"before": STATUS_LABELS.get(data["from"], data["from"]),
               "after": STATUS_LABELS.get(data["to"], data["to"])}
        )
    if "tier_from" in data or "tier_before" in data:
        before = data.get("tier_from", data.get("tier_before"))
        after = data.get("tier_to", data.get("tier_after"))
        if before != after:
            details.append(
                _("tier %(before)s → %(after)s")
                % {"before": TIER_LABELS.get(before, before), "after": TIER_LABELS.get(after, after)}
            )
    if data.get("queue"):
        name = ticket.queue.name if ticket.queue and ticket.queue.code == data["queue"] else data["queue"]
        details.append(_("queue %(queue)s") % {"queue": name})
    if data.get("reason") in EVENT_REASONS:
        details.append(str(EVENT_REASONS[data["reason"]]))
    amount = data.get("amount_fen")
    if kind.startswith("dispute_"):
        if amount:
            details.append(
                (_("hold released %(amount)s") if data.get("released") else _("held %(amount)s"))
                % {"amount": format_fen(amount)}
            )
        if data.get("escrow") == "kept_in_escrow":
            details.append(_("money kept in escrow"))
    elif kind.startswith("remedy_"):
        label = REMEDY_KINDS.get(data.get("kind"), data.get("kind") or "")
        details.append(f"{label} {format_fen(amount)}".strip() if amount else str(label))
        if data.get("with_coupon"):
            details.append(str(REMEDY_KINDS["coupon"]))
        reasons = [str(APPROVAL_REASONS.get(r, r)) for r in data.get("reasons", []) if isinstance(r, str)]
        if reasons:
            details.append(_("needs approval: %(reasons)s") % {"reasons": ", ".join(reasons)})
    if "score" in data:
        details.append(_("score %(score)s/10") % {"score": data["score"]})
    if kind == "phone_call":
        direction = DIRECTION_LABELS.get(data.get("direction"), data.get("direction") or "")
        details.append(f"{direction} · {_span(timedelta(seconds=int(data.get('duration_s') or 0)))}")
        if data.get("caller_phone"):
            details.append(str(data["caller_phone"]))
    if data.get("past_shift"):
        details.append(_("taken past the shift (%(worked)s h worked)") % {"worked": _hours_minutes(data.get("worked_s", 0))})
    return [d for d in details if d]


PLACEHOLDER = re.compile(r"(\{\w+\})")


def _quick_replies(request, ticket: Ticket) -> list[dict]:
    """Each quick reply filled for this ticket, its unfilled placeholders marked."""
    replies = []
    for reply in selectors.quick_replies_for(ticket=ticket):
        text, missing = services.render_quick_reply(reply=reply, ticket=ticket, agent=request.user)
        unfilled = {f"{{{name}}}" for name in missing}
        parts = [
            {"text": part, "missing": part in unfilled}
            for part in PLACEHOLDER.split(text)
            if part
        ]
        replies.append({
            "shortcut": reply.shortcut, "title": reply.title, "text": text, "parts": parts,
            "missing": missing, "category": Category(reply.category).label if reply.category else "",
        })
    # the ones written for this ticket's category first, then the general ones
    return sorted(replies, key=lambda r: not r["category"])


def _order_panel(ticket: Ticket) -> dict | None:
    order = ticket.order if ticket.order_id else None
    if order is None:
        return None
    items = [
        {
            "name": item.get("name", ""),
            "variant": item.get("variant", ""),
            "sku": item.get("sku", ""),
            "qty": item.get("qty", 1),
            "price": format_fen(item.get("price_fen")),
            "total": format_fen((item.get("price_fen") or 0) * (item.get("qty") or 1)),
        }
        for item in (order.items or [])
        if isinstance(item, dict)
    ]
    try:
        shipment = order.shipment
    except ObjectDoesNotExist:
        shipment = None
    stock = merchant_selectors.variant_stock_for(order=order)
    for item in items:
        item["stock"] = [{"variant": variant, "on_hand": on_hand, "current": variant == item["variant"],
                          "allows": merchant_rules.stock_allows(on_hand=on_hand, qty=item["qty"])}
                         for variant, on_hand in stock.get(item["sku"], [])]
        if item["stock"] and not any(option["current"] for option in item["stock"]):
            # the current variant stays selectable (and unchanged) even when the merchant keeps none of it
            item["stock"].insert(0, {"variant": item["variant"], "on_hand": 0, "current": True, "allows": False})
    intercept = merchant_selectors.intercept_of(order=order)
    return {
        "order": order,
        "items": items,
        "intercept": intercept,
        # after shipment, while the parcel travels: intercept it and compel a resend (one action)
        "can_intercept": intercept is None and merchant_rules.intercept_allowed(
            order_status=order.status, shipment_status=shipment.status if shipment else None),
        "amount": format_fen(order.amount_fen),
        "shipment": shipment,
        "tracking": selectors.shipment_events_for(ticket=ticket),
        # before shipment the agent may change it; after, the options that remain
        "changeable": merchant_rules.order_changeable(status=order.status),
        "remaining": (None if merchant_rules.order_changeable(status=order.status)
                      else merchant_selectors.options_after_shipment(order)),
        "changes": merchant_selectors.order_changes_for(order=order),
        # the merchant's credit and what it does now (disputes held at once, payouts reviewed, resends sooner)
        "credit": merchant_selectors.credit_standing_for(merchant=order.merchant),
    }


@require_POST
@staff_required
def change_order(request, ticket_id: int):
    """Change the ticket's order before shipment (address, variants); answer
    with the order panel again, the refusal inline with its status."""
    ticket = _ticket_or_404(request, ticket_id)
    if not ticket.order_id:
        raise Http404
    # the form repeats every field; only what differs from the order is a change
    address, variants = merchant_rules.requested_changes(
        items=ticket.order.items, shipping_address=ticket.order.shipping_address,
        address=request.POST.get("address"),
        variants={key.removeprefix("variant:"): value for key, value in request.POST.items()
                  if key.startswith("variant:")},
    )
    status, notice, error = 200, None, None
    try:
        merchant_services.change_order(actor=request.user, order_id=ticket.order_id, address=address,
                                       variants=variants or None, ticket_id=ticket.pk)
        notice = _("Order changed; the merchant has been told.")
    except DomainError as exc:
        status, error = exc.status, exc
    ticket = _ticket_or_404(request, ticket_id)  # re-read: the order may have changed or shipped
    context = {"ticket": ticket, "order_panel": _order_panel(ticket), "change_notice": notice,
               "change_error": error, "change_error_text": error_text(error) if error else ""}
    return render(request, "tickets/_order_panel.html", context, status=status)


@require_POST
@staff_required
def intercept_resend(request, ticket_id: int):
    """Intercept the ticket's parcel and compel the merchant to resend; answer
    with the order panel again, the refusal inline with its status."""
    ticket = _ticket_or_404(request, ticket_id)
    if not ticket.order_id:
        raise Http404
    status, notice, error = 200, None, None
    try:
        services.intercept_and_resend(actor=request.user, ticket_id=ticket.pk, reason=request.POST.get("reason", ""))
        notice = _("Intercept requested from the carrier; the merchant must resend.")
    except TicketNotFound:
        raise Http404 from None
    except DomainError as exc:
        status, error = exc.status, exc
    ticket = _ticket_or_404(request, ticket_id)
    context = {"ticket": ticket, "order_panel": _order_panel(ticket), "change_notice": notice,
               "change_error": error, "change_error_text": error_text(error) if error else ""}
    # the header and timeline follow by the console socket's ticket.changed frame
    return render(request, "tickets/_order_panel.html", context, status=status)


__all__ = [
    "change_order", "intercept_resend", "new_messages", "presence", "queue", "reply", "report_up", "staff_required", "ticket", "ticket_state", "transition",
]
