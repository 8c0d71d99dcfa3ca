"""The buyer's chat pages at /chat/: pick an order, start a chat (a chat
ticket, routed and offered to an agent), talk over the chat websocket, rate
the service at the end. Thin: selectors read, services write."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts import roles
from accounts.logins import ip_and_device
from core.errors import DomainError
from core.parsing import parse_int, parse_optional_id
from merchants.selectors import orders_visible_to
from tickets import rules, selectors, services
from tickets.errors import TicketNotFound
from tickets.models import Category, Channel, Ticket

CHAT_CATEGORIES = [Category.LOGISTICS_DELAY, Category.NOT_RECEIVED, Category.PARCEL_DAMAGED, Category.WRONG_ITEM,
                   Category.REFUND_REQUEST, Category.ORDER_CHANGE, Category.COUPON_FAILURE, Category.OTHER]


def buyer_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not roles.is_buyer(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@buyer_required
def home(request):
    """My orders to ask about, and my chats."""
    context = {
        "orders": orders_visible_to(user=request.user).order_by("-placed_at")[:20],
        "chats": selectors.tickets_visible_to(user=request.user).filter(channel=Channel.CHAT)
        .select_related("order").order_by("-created_at")[:20],
        "categories": [(c.value, c.label) for c in CHAT_CATEGORIES],
    }
    return render(request, "tickets/chat/home.html", context)


@require_POST
@buyer_required
def start(request):
    try:
        order_id = parse_optional_id(request.POST.get("order_id"), field="order_id")
        ip, device = ip_and_device(request)
        ticket = services.open_ticket(
            actor=request.user, category=request.POST.get("category", Category.OTHER),
            subject=(request.POST.get("body", "").strip()[:40] or "在线咨询"), body=request.POST.get("body", ""),
            order_id=order_id, channel=Channel.CHAT, ip=ip, device=device,
        )
    except (DomainError, ValueError) as error:
        context = {
            "orders": orders_visible_to(user=request.user).order_by("-placed_at")[:20], "chats": [],
            "categories": [(c.value, c.label) for c in CHAT_CATEGORIES],
            "error": getattr(error, "detail", str(error)),
        }
        return render(request, "tickets/chat/home.html", context, status=getattr(error, "status", 400))
    return redirect("chat:room", ticket_id=ticket.pk)


def _ticket(request, ticket_id: int) -> Ticket:
    try:
        ticket = selectors.get_ticket_for(user=request.user, ticket_id=ticket_id)
    except TicketNotFound:
        raise Http404 from None
    return ticket


@require_GET
@buyer_required
def room(request, ticket_id: int):
    """One conversation; the page streams over /ws/tickets/<id>/chat/. A
    ticket merged into another sends the buyer on to that one."""
    ticket = _ticket(request, ticket_id)
    if ticket.merged_into_id is not None:
        return redirect("chat:room", ticket_id=ticket.merged_into_id)
    messages = list(selectors.messages_visible_to(user=request.user, ticket=ticket))
    context = {
        "ticket": ticket,
        "conversation": messages,
        "last_seq": messages[-1].seq if messages else 0,
        "can_rate": rules.may_rate(viewer=rules.viewer_of(request.user), buyer_id=ticket.buyer_id, party=ticket.party,
                                   status=ticket.status, already_rated=hasattr(ticket, "rating")),
        "can_write": rules.may_write(status=ticket.status),
        "scores": range(11),
        "attachments_per_message": settings.ATTACHMENTS_PER_MESSAGE,
    }
    return render(request, "tickets/chat/room.html", context)


@require_POST
@buyer_required
def rate(request, ticket_id: int):
    ticket = _ticket(request, ticket_id)
    status, error = 200, None
    try:
        score = parse_int(request.POST.get("score", ""), field="score", minimum=0, maximum=10)
        services.rate_ticket(actor=request.user, ticket_id=ticket.pk, score=score, comment=request.POST.get("comment", ""))
    except DomainError as exc:
        status, error = exc.status, exc.detail
    return render(request, "tickets/chat/_rated.html", {"error": error}, status=status)
