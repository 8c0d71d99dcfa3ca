"""The console's pages about the work itself, beside the tickets: overtime
(asked from the shift bar, decided from the dashboard), the playbook
knowledge base (agents add and edit from the console) and the hotline
(an agent logs a call).

Thin like ``tickets.views``: reads through ``tickets.selectors``, writes
through ``tickets.services``; a ``DomainError`` is shown inline with its 4xx.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from core.errors import DomainError, InvalidInput, NotFound
from core.parsing import int_or_none, parse_int
from tickets import rules, selectors, services
from tickets.errors import TicketNotFound
from tickets.models import Category, OvertimeRequest, PhoneCall
from tickets.services import calls
from tickets.services.people import worked_seconds
from tickets.views import _agent_bar, _error_fragment, _hours_minutes, error_text, staff_required

PLAYBOOK_PAGE_SIZE = 100


# --- overtime --------------------------------------------------------------------


@require_GET
@staff_required
def agent_bar(request):
    """The shift bar again (after a team lead decides an overtime request)."""
    return render(request, "tickets/_agent_bar.html", {**_agent_bar(request), "oob": True})


@require_POST
@staff_required
def overtime_ask(request):
    """Ask the team lead for overtime from the shift bar; the bar shows the request waiting."""
    try:
        minutes = parse_int(request.POST.get("minutes"), field="minutes", minimum=1, maximum=240)
        services.request_overtime(agent=request.user, minutes=minutes, reason=request.POST.get("reason", ""))
    except DomainError as error:
        return _error_fragment(request, error, target="#agent-bar-error")
    return render(request, "tickets/_agent_bar.html", {**_agent_bar(request), "oob": True})


def _supervisor_only(request) -> None:
    if not roles.is_supervisor(request.user):
        raise PermissionDenied


def _overtime_context(request, *, error: DomainError | None = None) -> dict:
    now = timezone.now()
    requests = selectors.overtime_requests_of_today(now=now)
    worked = worked_seconds(agent_ids=sorted({r.agent_id for r in requests}), now=now)
    for row in requests:
        row.worked = _hours_minutes(worked.get(row.agent_id, 0))
        row.own = row.agent_id == request.user.pk
    return {
        "overtime_requests": requests,
        "waiting": sum(1 for r in requests if r.status == OvertimeRequest.Status.REQUESTED),
        "error": error, "error_text": error_text(error) if error else "",
    }


@require_GET
@staff_required
def overtime_requests(request):
    """Today's overtime requests on the dashboard, waiting ones first (team leads)."""
    _supervisor_only(request)
    return render(request, "tickets/_overtime_requests.html", _overtime_context(request))


@require_POST
@staff_required
def overtime_decide(request, request_id: int, decision: str):
    """Grant or decline one request; answer with the list again (and the refusal, if any)."""
    _supervisor_only(request)
    if decision not in ("grant", "deny"):
        raise Http404
    error = None
    try:
        services.decide_overtime(supervisor=request.user, request_id=request_id, grant=decision == "grant")
    except DomainError as exc:
        error = exc
    context = _overtime_context(request, error=error)
    return render(request, "tickets/_overtime_requests.html", context, status=error.status if error else 200)


# --- playbooks -------------------------------------------------------------------


def _playbook_form(request, playbook=None) -> dict:
    source = request.POST if request.method == "POST" else None
    return {
        "title": source.get("title", "") if source else (playbook.title if playbook else ""),
        "body": source.get("body", "") if source else (playbook.body if playbook else ""),
        "category": source.get("category", "") if source else (playbook.category if playbook else
                                                                  request.GET.get("category", "")),
    }


def _may_edit(request, playbook) -> bool:
    return rules.may_edit_playbook(actor_id=request.user.pk, author_id=playbook.created_by_id,
                                   is_supervisor=roles.is_supervisor(request.user))


@require_http_methods(["GET", "POST"])
@staff_required
def playbooks(request):
    """The knowledge base: search and filter by category, and add a playbook."""
    error, status, created = None, 200, None
    if request.method == "POST":
        try:
            created = services.add_playbook(actor=request.user, **_playbook_form(request))
        except DomainError as exc:
            error, status = exc, exc.status
    category = request.GET.get("category", "")
    if category not in Category.values:
        category = ""
    q = (request.GET.get("q") or "").strip()[:100]
    items = list(selectors.playbooks(category=category or None, q=q or None)[:PLAYBOOK_PAGE_SIZE])
    for item in items:
        item.editable = _may_edit(request, item)
    context = {
        **_agent_bar(request), "nav": "playbooks",
        "items": items, "categories": Category.choices, "category": category, "q": q,
        "form": {"title": "", "body": "", "category": category} if created else _playbook_form(request),
        "created": created, "error": error, "error_text": error_text(error) if error else "",
        "back": _safe_back(request),
    }
    return render(request, "tickets/playbooks.html", context, status=status)


@require_http_methods(["GET", "POST"])
@staff_required
def playbook_edit(request, playbook_id: int):
    """Edit one playbook (its author or a team lead); others see it read-only."""
    playbook = selectors.playbook_for_edit(playbook_id=playbook_id)
    if playbook is None:
        raise Http404
    error, status, saved = None, 200, False
    if request.method == "POST":
        try:
            playbook = services.edit_playbook(actor=request.user, playbook_id=playbook_id, **_playbook_form(request))
            saved = True
        except NotFound:
            raise Http404 from None
        except DomainError as exc:
            error, status = exc, exc.status
    context = {
        **_agent_bar(request), "nav": "playbooks",
        "playbook": playbook, "editable": _may_edit(request, playbook), "categories": Category.choices,
        "form": _playbook_form(request, playbook) if not saved else _playbook_form_of(playbook),
        "saved": saved, "error": error, "error_text": error_text(error) if error else "",
        "back": _safe_back(request),
    }
    return render(request, "tickets/playbook_edit.html", context, status=status)


def _playbook_form_of(playbook) -> dict:
    return {"title": playbook.title, "body": playbook.body, "category": playbook.category}


def _safe_back(request) -> str:
    """Back to the ticket the agent came from (``?ticket=<id>``), else nowhere."""
    ticket_id = int_or_none(request.GET.get("ticket"), minimum=1)
    return reverse("console:ticket", args=[ticket_id]) if ticket_id else ""


# --- the hotline -----------------------------------------------------------------


def _call_form(request) -> dict:
    """The form's fields; ``target`` is ``ticket:<id>`` (add the call to it)
    or ``buyer:<id>`` (open a phone ticket), ``?ticket=<id>`` on the way in."""
    source = request.POST if request.method == "POST" else request.GET
    form = {key: (source.get(key) or "").strip() for key in (
        "target", "order_id", "category", "subject", "notes", "caller_phone", "direction", "started_at", "duration",
    )}
    kind, _, pk = form["target"].partition(":")
    form["ticket_id"] = pk if kind == "ticket" else (request.GET.get("ticket") or "").strip()
    form["buyer_id"] = pk if kind == "buyer" else ""
    return form


def _parse_duration(raw: str) -> int:
    """``mm:ss``, ``h:mm:ss`` or whole minutes, as the agent types it off the phone's screen."""
    parts = raw.split(":") if raw else []
    if not parts or len(parts) > 3 or not all(p.strip().isdigit() for p in parts):
        raise InvalidInput("Duration is minutes, or mm:ss.", field="duration_s")
    numbers = [int(p) for p in parts]
    if len(numbers) == 1:
        return parse_int(numbers[0] * 60, field="duration_s", minimum=0, maximum=4 * 3600)
    seconds = 0
    for number in numbers:
        seconds = seconds * 60 + number
    if any(n >= 60 for n in numbers[1:]):
        raise InvalidInput("Duration is minutes, or mm:ss.", field="duration_s")
    return parse_int(seconds, field="duration_s", minimum=0, maximum=4 * 3600)


def _parse_started_at(raw: str, *, duration_s: int):
    """The call's start as the form sends it (a local ``datetime-local``),
    or, left empty, the moment the call ended minus its duration."""
    if not raw:
        return timezone.now() - timedelta(seconds=duration_s)
    parsed = parse_datetime(raw)
    if parsed is None:
        raise InvalidInput("started_at is a date and time.", field="started_at")
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


@require_http_methods(["GET", "POST"])
@staff_required
def log_call(request):
    """Log a call: find the buyer by phone or order no., then add the call to
    one of their open tickets or open a ``phone`` ticket; the page then moves
    to that ticket."""
    form = _call_form(request)
    error, status = None, 200
    if request.method == "POST":
        try:
            if not (form["ticket_id"] or form["buyer_id"]):
                raise InvalidInput("Pick the caller's ticket, or the buyer for a new one.", field="target")
            duration_s = _parse_duration(form["duration"])
            call = calls.log_call(
                actor=request.user, started_at=_parse_started_at(form["started_at"], duration_s=duration_s),
                duration_s=duration_s, notes=form["notes"], direction=form["direction"] or "inbound",
                caller_phone=form["caller_phone"], ticket_id=int_or_none(form["ticket_id"], minimum=1),
                buyer_id=int_or_none(form["buyer_id"], minimum=1), order_id=int_or_none(form["order_id"], minimum=1),
                category=form["category"] or None, subject=form["subject"],
            )
        except TicketNotFound:
            error = NotFound("No such ticket.")
            status = 404
        except DomainError as exc:
            error, status = exc, exc.status
        else:
            return redirect(reverse("console:ticket", args=[call.ticket_id]))
    ticket = None
    ticket_id = int_or_none(form["ticket_id"], minimum=1)
    if ticket_id:
        try:
            ticket = selectors.console_ticket(user=request.user, ticket_id=ticket_id)
        except TicketNotFound:
            ticket = None
    context = {
        **_agent_bar(request), "nav": "calls", "form": form, "ticket": ticket,
        "categories": Category.choices, "directions": PhoneCall.Direction.choices,
        "error": error, "error_text": error_text(error) if error else "",
        "callers": _callers(form["caller_phone"], request.GET.get("order_no", "")) if not ticket else [],
        "order_no": request.GET.get("order_no", ""),
    }
    return render(request, "tickets/log_call.html", context, status=status)


def _callers(phone: str, order_no: str) -> list:
    try:
        phone = calls.clean_phone(phone)
    except DomainError:
        return []
    order_no = (order_no or "").strip()[:32]
    return selectors.callers(phone=phone, order_no=order_no) if phone or order_no else []


@require_GET
@staff_required
def callers(request):
    """The lookup beside the call form (htmx): who may be calling."""
    phone = request.GET.get("caller_phone", "")
    order_no = request.GET.get("order_no", "")
    context = {"callers": _callers(phone, order_no), "searched": bool(phone.strip() or order_no.strip()),
               "form": {"caller_phone": phone}}
    return render(request, "tickets/_callers.html", context)
