"""The merchant portal's ticket pages (``/merchant/tickets/``).

Merchant staff see the tickets that involve their merchant
(``tickets.selectors.tickets_visible_to``), the conversation without internal
notes, a reply box, and the two answers to a claim: accept the refund, or
contest it with text and images. Thin like the console: reads through
``tickets.selectors``, writes through ``tickets.services``; a ``DomainError``
is an inline message with its own 4xx status. The access check is the money
pages' (``merchants.views.merchant_staff_required``).
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from core.errors import DomainError
from core.money import format_fen
from core.parsing import parse_optional_int
from merchants import selectors as merchant_selectors
from merchants.views import is_htmx, merchant_staff_required
from tickets import rules, selectors, services
from tickets.errors import TicketNotFound
from tickets.models import Ticket
from tickets.services.merchant_side import MAX_IMAGE_BYTES, MAX_IMAGES

LIST_PAGE_SIZE = 50
SUMMARY_SHOWN = 5
IMAGE_TYPES = "image/jpeg,image/png,image/webp"

ERROR_TEXTS = {
    "ticket_closed": gettext_lazy("The ticket is closed; nothing more can be added."),
    "conflict": gettext_lazy("This ticket no longer waits for your answer."),
    "permission_denied": gettext_lazy("You do not have permission to do this."),
    "not_found": gettext_lazy("Not found."),
}
FIELD_TEXTS = {
    "body": gettext_lazy("Write a message first (at most 5000 characters)."),
    "text": gettext_lazy("Say why you contest the claim (at most 2000 characters)."),
    "action": gettext_lazy("Choose to accept the refund or to contest it."),
}


def _error(error: DomainError) -> dict:
    field = error.extra.get("field")
    if field == "images":
        # the service names the file and what is wrong with it
        text = gettext_lazy("Images must be JPEG, PNG or WebP, at most 5 MB each, at most 4.")
        return {"code": error.code, "text": f"{text} ({error.detail})"}
    if field in FIELD_TEXTS:
        return {"code": error.code, "text": str(FIELD_TEXTS[field])}
    return {"code": error.code, "text": str(ERROR_TEXTS.get(error.code, error.detail))}


def _error_fragment(request, error: DomainError, *, target: str) -> HttpResponse:
    response = render(request, "merchants/_error.html", {"error": _error(error)}, status=error.status)
    response["HX-Retarget"] = target
    response["HX-Reswap"] = "innerHTML"
    return response


def _merchant_tickets(request):
    """The merchant's tickets, the ones waiting on it first, then the active
    ones, then the rest; newest first within each."""
    return (
        selectors.tickets_visible_to(user=request.user)
        .select_related("order", "buyer")
        .annotate(
            need=Case(
                When(status=Ticket.Status.WAITING_MERCHANT, then=Value(0)),
                When(status__in=Ticket.ACTIVE, then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        )
        .order_by("need", "-created_at", "-id")
    )


# --- the list ---------------------------------------------------------------------


@require_GET
@merchant_staff_required
def ticket_list(request, merchant):
    show = request.GET.get("show", "")
    tickets = _merchant_tickets(request)
    waiting_count = tickets.filter(status=Ticket.Status.WAITING_MERCHANT).count()
    if show == "waiting":
        tickets = tickets.filter(status=Ticket.Status.WAITING_MERCHANT)
    elif show == "active":
        tickets = tickets.filter(status__in=Ticket.ACTIVE)
    else:
        show = ""
    page = Paginator(tickets, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "merchant": merchant, "nav": "tickets", "page": page, "show": show, "waiting_count": waiting_count,
    }
    return render(request, "tickets/portal/list.html", context)


@require_GET
@merchant_staff_required
def ticket_summary(request, merchant):
    """The overview's panel: how many tickets wait on the merchant, the first few."""
    waiting = _merchant_tickets(request).filter(status=Ticket.Status.WAITING_MERCHANT)
    context = {"count": waiting.count(), "tickets": list(waiting[:SUMMARY_SHOWN])}
    return render(request, "tickets/portal/_summary.html", context)


# --- one ticket ---------------------------------------------------------------------


def _ticket_or_404(request, ticket_id: int) -> Ticket:
    try:
        return selectors.console_ticket(user=request.user, ticket_id=ticket_id)
    except TicketNotFound:
        raise Http404 from None


@require_GET
@merchant_staff_required
def ticket_detail(request, merchant, ticket_id: int):
    ticket = _ticket_or_404(request, ticket_id)
    messages = list(selectors.messages_visible_to(user=request.user, ticket=ticket))
    hold = merchant_selectors.active_hold_for_ticket(merchant=merchant, ticket_id=ticket.pk)
    order = ticket.order if ticket.order_id else None
    context = {
        "merchant": merchant,
        "nav": "tickets",
        "ticket": ticket,
        "order": order,
        "order_amount": format_fen(order.amount_fen) if order else "",
        "items": [
            {"name": item.get("name", ""), "variant": item.get("variant", ""), "qty": item.get("qty", 1),
             "price": format_fen(item.get("price_fen"))}
            for item in (order.items or []) if isinstance(item, dict)
        ] if order else [],
        "conversation": messages,
        "evidence": selectors.evidence_for(ticket=ticket),
        "hold_amount": format_fen(hold.amount_fen) if hold else "",
        "can_write": rules.may_write(status=ticket.status),
        "can_answer": ticket.is_active,
        "waiting": ticket.status == Ticket.Status.WAITING_MERCHANT,
        "image_types": IMAGE_TYPES,
        "max_images": MAX_IMAGES,
    }
    return render(request, "tickets/portal/detail.html", context)


@require_POST
@merchant_staff_required
def reply(request, merchant, ticket_id: int):
    """Post to the conversation; answer with the new message to append."""
    try:
        message = services.post_message(
            actor=request.user, ticket_id=ticket_id, body=request.POST.get("body", ""),
            client_msg_id=(request.POST.get("client_msg_id") or None),
        )
    except TicketNotFound:
        raise Http404 from None
    except DomainError as error:
        if is_htmx(request):
            return _error_fragment(request, error, target="#reply-error")
        return render(request, "tickets/portal/error_page.html",
                      {"merchant": merchant, "nav": "tickets", "error": _error(error), "ticket_id": ticket_id},
                      status=error.status)
    if is_htmx(request):
        return render(request, "tickets/portal/_messages.html", {"conversation": [message], "clear_error": True})
    return redirect(reverse("portal_tickets:detail", args=[ticket_id]) + f"#msg-{message.seq}")


@require_GET
@merchant_staff_required
def new_messages(request, merchant, ticket_id: int):
    """Messages after ``after_seq`` (the page polls so an agent's answer shows up)."""
    ticket = _ticket_or_404(request, ticket_id)
    after_seq = parse_optional_int(request.GET.get("after_seq"), field="after_seq", minimum=0) or 0
    messages = list(selectors.new_messages_for(user=request.user, ticket=ticket, after_seq=after_seq)[:200])
    if not messages:
        return HttpResponse(status=204)
    return render(request, "tickets/portal/_messages.html", {"conversation": messages})


@require_POST
@merchant_staff_required
def respond(request, merchant, ticket_id: int):
    """Accept the refund, or contest with text and images (multipart)."""
    files = request.FILES.getlist("images")[: MAX_IMAGES + 1]
    # read at most one byte past the limit: the service refuses what is too large
    uploads = [
        services.Upload(name=f.name or "evidence", content_type=f.content_type or "", data=f.read(MAX_IMAGE_BYTES + 1))
        for f in files
    ]
    try:
        services.respond_as_merchant(
            actor=request.user, ticket_id=ticket_id, action=request.POST.get("action", ""),
            text=request.POST.get("text", ""), images=uploads,
        )
    except TicketNotFound:
        raise Http404 from None
    except DomainError as error:
        if is_htmx(request):
            return _error_fragment(request, error, target="#answer-error")
        return render(request, "tickets/portal/error_page.html",
                      {"merchant": merchant, "nav": "tickets", "error": _error(error), "ticket_id": ticket_id},
                      status=error.status)
    url = reverse("portal_tickets:detail", args=[ticket_id]) + "?answered=1"
    if is_htmx(request):
        response = HttpResponse(status=200)
        response["HX-Redirect"] = url
        return response
    return redirect(url)
